//! Shared files against a real server process over real sockets: pieces sealed with
//! `mesh::file` go up, are asked for, come back and open; the server's data folder holds none
//! of the file's bytes; damaged, oversized, unknown and unauthorised pieces are refused with a
//! reason; an upload cut by a crash resumes with what is missing, nothing sent twice.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;

use mesh::file::{ChunkId, CHUNK_BYTES, SEALED_CHUNK_BYTES};
use mesh::{ClientFrame, SenderId, ServerFrame};
use support::http::{connect_from, missing, put, request, request_on, seal};
use support::{Client, TestServer};
use tokio::io::AsyncWriteExt;

/// A "photo": a recognisable pattern the data folder must never show.
fn photo(size: usize) -> Vec<u8> {
    const MARK: &[u8] = b"FIELDMESH-TEST-PHOTO:blocked road at km 12;";
    MARK.iter().copied().cycle().take(size).collect()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if std::fs::read(&path)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_file_goes_up_in_pieces_comes_back_whole_and_the_server_holds_only_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let data = photo(2 * CHUNK_BYTES + 5_000);
    let (manifest, pieces) = seal(&data, 1);
    assert_eq!(pieces.len(), 3);

    assert_eq!(
        missing(&server.addr, &manifest.chunks, None).await,
        manifest.chunks
    );
    for (id, piece) in manifest.chunks.iter().zip(&pieces).take(2) {
        let answer = put(&server.addr, id, piece, None).await;
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    // Only what is missing is asked for again; sending a piece twice stores it once.
    assert_eq!(
        missing(&server.addr, &manifest.chunks, None).await,
        vec![manifest.chunks[2]]
    );
    assert_eq!(
        put(&server.addr, &manifest.chunks[2], &pieces[2], None)
            .await
            .status,
        201
    );
    assert_eq!(
        put(&server.addr, &manifest.chunks[2], &pieces[2], None)
            .await
            .status,
        200
    );
    assert!(missing(&server.addr, &manifest.chunks, None)
        .await
        .is_empty());

    // Another page fetches the pieces and opens them with the manifest from the message.
    let mut opened = Vec::new();
    for (index, id) in manifest.chunks.iter().enumerate() {
        let answer = request(&server.addr, "GET", &format!("/chunks/{id}"), None, &[]).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            answer.header("content-type"),
            Some("application/octet-stream")
        );
        opened.extend(manifest.open(index, &answer.body).unwrap());
    }
    assert_eq!(opened, data);

    // Nothing of the photo is anywhere in the server's data folder.
    server.stop();
    assert!(files_containing(dir.path(), b"FIELDMESH-TEST-PHOTO").is_empty());
    assert!(files_containing(dir.path(), &data[1000..1032]).is_empty());
}

#[tokio::test]
async fn damaged_oversized_unknown_and_badly_named_pieces_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let (manifest, pieces) = seal(&photo(CHUNK_BYTES + 10), 2);
    let id = manifest.chunks[0];

    let mut damaged = pieces[0].clone();
    damaged[77] ^= 0x20;
    let answer = put(&server.addr, &id, &damaged, None).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.text().contains("damaged or cut short"),
        "{}",
        answer.text()
    );
    let answer = put(&server.addr, &id, &pieces[0][..1000], None).await;
    assert_eq!(answer.status, 400, "a truncated piece: {}", answer.text());

    let huge = vec![0u8; SEALED_CHUNK_BYTES + 1];
    let answer = put(&server.addr, &ChunkId::of(&huge), &huge, None).await;
    assert_eq!(answer.status, 413, "{}", answer.text());

    let answer = request(&server.addr, "GET", &format!("/chunks/{id}"), None, &[]).await;
    assert_eq!(answer.status, 404);
    assert!(answer.text().contains("does not have that piece"));
    let answer = request(&server.addr, "GET", "/chunks/not-hex", None, &[]).await;
    assert_eq!(answer.status, 400);
    let answer = request(&server.addr, "POST", "/chunks/missing", None, &[1; 33]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        request(
            &server.addr,
            "POST",
            "/chunks/missing",
            None,
            &vec![1; 32 * 1025]
        )
        .await
        .status,
        400
    );

    // None of it was stored, not even in part.
    assert_eq!(
        missing(&server.addr, &manifest.chunks, None).await,
        manifest.chunks
    );
    let chunks = dir.path().join("chunks");
    assert!(files_containing(&chunks, &pieces[0][..64]).is_empty());
}

#[tokio::test]
async fn a_full_server_refuses_new_pieces_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--files-quota-mb", "1"]);
    let (manifest, pieces) = seal(&photo(6 * CHUNK_BYTES), 3);
    let mut statuses = Vec::new();
    for (id, piece) in manifest.chunks.iter().zip(&pieces) {
        let answer = put(&server.addr, id, piece, None).await;
        if answer.status == 507 {
            assert!(
                answer.text().contains("room for files (1 MB) is full"),
                "{}",
                answer.text()
            );
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [201, 201, 201, 507, 507, 507]);
}

#[tokio::test]
async fn with_a_join_code_only_a_device_with_a_pass_stores_or_asks() {
    const CODE: &str = "river stone 42";
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--join-code", CODE]);
    let (manifest, pieces) = seal(&photo(100), 4);
    let id = manifest.chunks[0];

    for token in [None, Some([7; 32])] {
        let answer = put(&server.addr, &id, &pieces[0], token).await;
        assert_eq!(answer.status, 401);
        assert!(answer.text().contains("join code"), "{}", answer.text());
        let body: Vec<u8> = id.0.to_vec();
        let asked = request(&server.addr, "POST", "/chunks/missing", token, &body).await;
        assert_eq!(asked.status, 401);
    }

    let (mut phone, _) = Client::connect_from(&server.addr, Ipv4Addr::LOCALHOST).await;
    phone
        .send(&ClientFrame::Unlock {
            code: CODE.into(),
            device: SenderId([9; 32]),
        })
        .await;
    let ServerFrame::Access { token } = phone.recv().await else {
        panic!("the code unlocks")
    };
    assert_eq!(missing(&server.addr, &[id], Some(token)).await, vec![id]);
    assert_eq!(
        put(&server.addr, &id, &pieces[0], Some(token)).await.status,
        201
    );
    // Fetching needs no pass: a piece's name comes only from a sealed message.
    let answer = request(&server.addr, "GET", &format!("/chunks/{id}"), None, &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(manifest.open(0, &answer.body).unwrap(), photo(100));
}

#[tokio::test]
async fn an_upload_cut_by_a_crash_resumes_with_what_is_missing_and_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = photo(4 * CHUNK_BYTES + 1);
    let (manifest, pieces) = seal(&data, 5);
    let mut sent = 0;

    // The phone sends what the server lacks; the server dies after two pieces.
    let server = TestServer::start(dir.path());
    let lacking = missing(&server.addr, &manifest.chunks, None).await;
    for id in lacking.iter().take(2) {
        let index = manifest.chunks.iter().position(|c| c == id).unwrap();
        assert_eq!(
            put(&server.addr, id, &pieces[index], None).await.status,
            201
        );
        sent += 1;
    }
    drop(server); // SIGKILL: no clean shutdown

    // After the restart it asks again and sends only the rest.
    let server = TestServer::start(dir.path());
    let lacking = missing(&server.addr, &manifest.chunks, None).await;
    assert_eq!(lacking, manifest.chunks[2..].to_vec());
    for id in &lacking {
        let index = manifest.chunks.iter().position(|c| c == id).unwrap();
        assert_eq!(
            put(&server.addr, id, &pieces[index], None).await.status,
            201
        );
        sent += 1;
    }
    assert_eq!(sent, manifest.chunks.len(), "each piece went up once");
    let mut opened = Vec::new();
    for (index, id) in manifest.chunks.iter().enumerate() {
        let answer = request(&server.addr, "GET", &format!("/chunks/{id}"), None, &[]).await;
        opened.extend(manifest.open(index, &answer.body).unwrap());
    }
    assert_eq!(opened, data);
}

#[tokio::test]
async fn an_address_that_drips_its_uploads_holds_up_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let (manifest, pieces) = seal(&photo(CHUNK_BYTES), 6);
    let id = manifest.chunks[0];

    // The attacker starts uploads that announce a whole piece and send ten bytes of it.
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut dripping = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_from(&server.addr, attacker).await;
        let head = format!(
            "PUT /chunks/{id} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            pieces[0].len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&pieces[0][..10]).await.unwrap();
        dripping.push(stream);
    }
    // Let the server take them up before the next one.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // One more from the same address is refused at once, with a reason.
    let stream = connect_from(&server.addr, attacker).await;
    let answer = request_on(stream, "PUT", &format!("/chunks/{id}"), None, &pieces[0]).await;
    assert_eq!(answer.status, 429, "{}", answer.text());
    assert!(
        answer.text().contains("at once from one address"),
        "{}",
        answer.text()
    );
    // Everyone else uploads at once.
    let started = std::time::Instant::now();
    let answer = put(&server.addr, &id, &pieces[0], None).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    drop(dripping);
}
