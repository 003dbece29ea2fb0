//! One WebSocket connection to a FieldMesh server, as the web app speaks it: the welcome, the
//! join code or device token, then frames both ways.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use mesh::crypto::{Identity, RoomKey};
use mesh::hex::{decode as unhex, encode as hex};
use mesh::presence::PresenceCard;
use mesh::wire::MAX_SERVER_FRAME_BYTES;
use mesh::{ClientFrame, ErrorCode, RoomId, ServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::home::Server;
use crate::tls::{fingerprint, Pinning, Trust, SYSTEM};
use crate::{random, Exit};

/// How long connecting and the welcome may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection, past the welcome and the join code.
pub struct Link {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// This connection's challenge (room proofs and presence cards are made for it).
    pub challenge: [u8; 32],
    /// The server's message store.
    pub store_id: [u8; 16],
    /// The server's origin.
    pub origin: String,
    /// A device token the join code gave on this connection (hex), to keep.
    pub learned_token: Option<String>,
    /// What the first connection decided to trust (see [`Server::ca`]), to keep.
    pub learned_trust: Option<String>,
    /// When anything last came from the server (a ping too).
    last_heard: Instant,
}

impl Link {
    /// Connects to `server`, presenting its device token, else `code`.
    pub async fn connect(server: &Server, code: Option<&str>) -> Result<Self, Exit> {
        Self::connect_within(server, code, CONNECT_TIMEOUT).await
    }

    /// [`Link::connect`], giving up after `wait`.
    pub async fn connect_within(
        server: &Server,
        code: Option<&str>,
        wait: Duration,
    ) -> Result<Self, Exit> {
        tokio::time::timeout(wait, Self::connect_now(server, code))
            .await
            .map_err(|_| {
                Exit::unreachable(format!(
                    "{} did not answer within {:.1} s",
                    server.origin,
                    wait.as_secs_f32()
                ))
            })?
    }

    async fn connect_now(server: &Server, code: Option<&str>) -> Result<Self, Exit> {
        let url = format!("{}/ws", server.origin.replacen("http", "ws", 1));
        let trust = server.trust()?;
        let pinning = Pinning::new(&trust).map_err(|why| {
            Exit::broken(format!(
                "{}: {why}; join again with --ca FILE (from the camp's landing page)",
                server.origin
            ))
        })?;
        let connector = if server.origin.starts_with("https://") {
            let config = pinning
                .config()
                .map_err(|e| Exit::broken(format!("TLS set-up: {e}")))?;
            Connector::Rustls(Arc::new(config))
        } else {
            Connector::Plain
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_SERVER_FRAME_BYTES + 1024))
            .max_frame_size(Some(MAX_SERVER_FRAME_BYTES + 1024));
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            Some(config),
            true,
            Some(connector),
        )
        .await
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("certificate") || text.contains("Certificate") {
                Exit::refused(format!(
                    "{} showed a certificate this device does not trust ({text}). If the camp \
                     made a new certificate authority, compare its fingerprint on the landing \
                     page and join again with --ca FILE.",
                    server.origin
                ))
            } else {
                Exit::unreachable(format!("cannot reach {}: {text}", server.origin))
            }
        })?;
        let learned = pinning
            .learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let learned_trust = match learned {
            Some(Trust::Authority(authority)) => {
                eprintln!(
                    "Trusting {}'s certificate authority from now on. Its SHA-256 fingerprint \
                     is\n  {}\nCompare it with the one on the camp's landing page.",
                    server.origin,
                    fingerprint(&authority)
                );
                Some(hex(&authority))
            }
            Some(Trust::System) => Some(SYSTEM.to_string()),
            _ => None,
        };
        let mut link = Self {
            ws,
            challenge: [0; 32],
            store_id: [0; 16],
            origin: server.origin.clone(),
            learned_token: None,
            learned_trust,
            last_heard: Instant::now(),
        };
        let (code_required, store_id, challenge) = match link.next().await? {
            Some(ServerFrame::Welcome {
                code_required,
                store_id,
                challenge,
                ..
            }) => (code_required, store_id, challenge),
            Some(_) => {
                return Err(Exit::refused(format!(
                    "{} is not a FieldMesh server this version understands",
                    link.origin
                )))
            }
            None => {
                return Err(Exit::unreachable(format!(
                    "{} closed the connection",
                    link.origin
                )))
            }
        };
        link.challenge = challenge;
        link.store_id = store_id;
        if code_required {
            link.unlock(code, server.token.as_deref()).await?;
        }
        Ok(link)
    }

    async fn unlock(&mut self, code: Option<&str>, token: Option<&str>) -> Result<(), Exit> {
        let token = token.and_then(unhex::<32>);
        let frame = match (code, token) {
            (Some(code), _) => ClientFrame::Unlock {
                code: code.to_string(),
                device: mesh::SenderId(random()),
            },
            (None, Some(token)) => ClientFrame::Authenticate { token },
            (None, None) => {
                return Err(Exit::refused(format!(
                    "{} asks for the camp's join code: join again with --code CODE",
                    self.origin
                )))
            }
        };
        self.send(&frame).await?;
        loop {
            match self.next().await? {
                Some(ServerFrame::Access { token }) => {
                    if code.is_some() {
                        self.learned_token = Some(hex(&token));
                    }
                    return Ok(());
                }
                Some(ServerFrame::Error {
                    code: ErrorCode::WrongCode,
                    ..
                }) => {
                    return Err(Exit::refused(if code.is_some() {
                        "the join code is wrong".to_string()
                    } else {
                        format!(
                            "{} no longer knows this device: join again with --code CODE",
                            self.origin
                        )
                    }))
                }
                Some(ServerFrame::Error { detail, .. }) => return Err(Exit::refused(detail)),
                Some(_) => continue,
                None => {
                    return Err(Exit::unreachable(format!(
                        "{} closed the connection",
                        self.origin
                    )))
                }
            }
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), Exit> {
        let bytes = frame
            .encode()
            .map_err(|e| Exit::usage(format!("cannot encode a frame: {e}")))?;
        self.ws
            .send(Message::binary(bytes))
            .await
            .map_err(|e| Exit::unreachable(format!("lost {}: {e}", self.origin)))
    }

    /// The next frame from the server; `None` when it closed the connection. Frames that do
    /// not decode are skipped (a newer server may send more kinds).
    pub async fn next(&mut self) -> Result<Option<ServerFrame>, Exit> {
        loop {
            let message = self.ws.next().await;
            self.last_heard = Instant::now();
            let message = match message {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Exit::unreachable(format!("lost {}: {e}", self.origin)))
                }
                Some(Ok(message)) => message,
            };
            match message {
                Message::Binary(bytes) => {
                    if let Ok(frame) = ServerFrame::decode(&bytes) {
                        return Ok(Some(frame));
                    }
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
    }

    /// The next frame within `wait`; `Ok(None)` when the server closed, `Err` on silence.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<ServerFrame>, Exit> {
        tokio::time::timeout(wait, self.next()).await.map_err(|_| {
            Exit::unreachable(format!(
                "{} stopped answering ({} s)",
                self.origin,
                wait.as_secs()
            ))
        })?
    }

    /// How long the server has been silent.
    pub fn silent_for(&self) -> Duration {
        self.last_heard.elapsed()
    }

    /// Follows `room` as `name` (presence card and room proof for this connection), from
    /// after `after_seq` or from its newest page.
    pub async fn join(
        &mut self,
        identity: &Identity,
        name: &str,
        key: &RoomKey,
        after_seq: Option<u64>,
    ) -> Result<(), Exit> {
        let member = PresenceCard::seal(identity, key, self.challenge, name, random())
            .map_err(|e| Exit::usage(format!("cannot make the presence card: {e}")))?;
        self.send(&ClientFrame::Join {
            room: key.room_id(),
            after_seq,
            member,
            proof: key.prove(&self.challenge),
        })
        .await
    }

    /// Asks for up to `limit` messages of `room` before `before_seq`.
    pub async fn history(
        &mut self,
        key: &RoomKey,
        before_seq: u64,
        limit: u16,
    ) -> Result<(), Exit> {
        let room: RoomId = key.room_id();
        self.send(&ClientFrame::History {
            room,
            before_seq,
            limit,
            proof: key.prove(&self.challenge),
        })
        .await
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
