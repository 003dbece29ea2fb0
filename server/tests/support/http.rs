//! Plain HTTP/1.1 over real sockets (one request per connection, as a browser's fetch of a
//! file's piece would be) and files sealed whole with `mesh::file`.

use std::net::Ipv4Addr;

use mesh::file::{ChunkId, Manifest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP answer: status code, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on its own connection.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<[u8; 32]>,
    body: &[u8],
) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    request_on(stream, method, path, token, body).await
}

/// A connection to the server from the local address `source`.
pub async fn connect_from(addr: &str, source: Ipv4Addr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

/// One HTTP/1.1 request on `stream`.
pub async fn request_on(
    mut stream: tokio::net::TcpStream,
    method: &str,
    path: &str,
    token: Option<[u8; 32]>,
    body: &[u8],
) -> Answer {
    let auth = token
        .map(|t| format!("Authorization: Bearer {}\r\n", mesh::hex::encode(&t)))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A refused upload may be answered before the body is read: a broken pipe is fine.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

pub async fn put(addr: &str, id: &ChunkId, bytes: &[u8], token: Option<[u8; 32]>) -> Answer {
    request(addr, "PUT", &format!("/chunks/{id}"), token, bytes).await
}

pub async fn missing(addr: &str, ids: &[ChunkId], token: Option<[u8; 32]>) -> Vec<ChunkId> {
    let body: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
    let answer = request(addr, "POST", "/chunks/missing", token, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer
        .body
        .chunks_exact(32)
        .map(|b| ChunkId(b.try_into().unwrap()))
        .collect()
}

/// The file sealed whole: its manifest and sealed pieces in order.
pub fn seal(data: &[u8], random: u8) -> (Manifest, Vec<Vec<u8>>) {
    mesh::file::seal_whole(data, [random; 32], 25 << 20).unwrap()
}
