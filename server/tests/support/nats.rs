//! Real `nats-server` processes for the federation tests: a hub with JetStream and a
//! leaf-node port, camps' logins, and a cable to cut between a camp and the hub.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `nats-server` program (`FIELDMESH_NATS_SERVER`, or the one on PATH).
pub fn program() -> PathBuf {
    std::env::var_os("FIELDMESH_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| "nats-server".into())
}

/// A hub: JetStream in the domain "hub", account FIELDMESH for the camps' leaf links. A leaf
/// also tries the address its hub advertises: here one where nothing listens, so a camp
/// behind a [`Cable`] cannot go round it.
pub struct NatsHub {
    child: Child,
    /// Where clients of the hub connect (the admin user below).
    pub client_port: u16,
    /// Where camps' leaf servers connect.
    pub leaf_port: u16,
    pub dir: PathBuf,
}

/// The hub's own user in the FIELDMESH account (tests use it to play a rogue camp).
pub const ADMIN: (&str, &str) = ("admin", "admin-secret");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsHub {
    /// Starts a hub that lets in the camps `logins` (user, password).
    pub fn start(dir: &Path, logins: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (client_port, leaf_port) = (free_port(), free_port());
        let users: Vec<String> = logins
            .iter()
            .map(|(user, password)| {
                format!("{{ user: \"{user}\", password: \"{password}\", account: FIELDMESH }}")
            })
            .collect();
        let conf = format!(
            "server_name: hub\nlisten: \"127.0.0.1:{client_port}\"\n\
             jetstream {{ store_dir: \"{store}\", domain: hub }}\n\
             accounts {{\n  FIELDMESH {{ jetstream: enabled, users: [ {{ user: \"{}\", password: \"{}\" }} ] }}\n}}\n\
             leafnodes {{\n  listen: \"127.0.0.1:{leaf_port}\"\n  advertise: \"127.0.0.1:1\"\n  authorization {{ users: [ {} ] }}\n}}\n",
            ADMIN.0,
            ADMIN.1,
            users.join(", "),
            store = dir.join("jetstream").display(),
        );
        let path = dir.join("hub.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(program())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (apt-get install nats-server)");
        // Dropped (killed and waited for) if it never listens.
        let hub = Self {
            child,
            client_port,
            leaf_port,
            dir: dir.to_path_buf(),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", leaf_port)).is_ok() {
                return hub;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the NATS hub did not listen");
    }

    /// A NATS client of the hub as its admin user.
    pub async fn admin(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .user_and_password(ADMIN.0.into(), ADMIN.1.into())
            .connect(format!("nats://127.0.0.1:{}", self.client_port))
            .await
            .expect("the hub's admin connects")
    }
}

impl Drop for NatsHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a credentials file "USER:PASSWORD" in `dir`.
pub fn creds(dir: &Path, user: &str, password: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{user}.login"));
    std::fs::write(&path, format!("{user}:{password}\n")).unwrap();
    path
}

/// A TCP cable between a camp and the hub that a test can cut and mend: while cut, open
/// connections are closed and new ones refused (as a link that went down).
pub struct Cable {
    pub port: u16,
    up: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Cable {
    /// A cable to `target`, listening on a free port.
    pub async fn to(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let cable = Self {
            port,
            up: Arc::clone(&up),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        cable
    }

    /// The link goes down.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The link comes back.
    pub fn mend(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
