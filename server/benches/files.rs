//! Shared files on loopback: a 10 MB file sealed on the sending side (`mesh::file`, natively:
//! the browser's Wasm is slower), its pieces uploaded two at a time to a release server
//! (asking first which it lacks, as a phone does), then fetched back two at a time and
//! opened. Five rounds, each a new file; the median and the range are printed.
//!
//! `cargo bench -p server --bench files` (or `./x bench`). FIELDMESH_BENCH_FILE_MB sets the
//! file's size (default 10).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use support::http::{missing, put, request, seal};
use support::TestServer;

const ROUNDS: usize = 5;

#[tokio::main]
async fn main() {
    let megabytes: usize = std::env::var("FIELDMESH_BENCH_FILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--files-quota-mb", "100000"]);
    let (mut sealing, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let data: Vec<u8> = (0..megabytes * 1_000_000)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .rotate_left(round as u32) as u8
            })
            .collect();

        let started = Instant::now();
        let (manifest, pieces) = seal(&data, round as u8 + 1);
        sealing.push(started.elapsed());

        let started = Instant::now();
        let lacking = missing(&server.addr, &manifest.chunks, None).await;
        assert_eq!(lacking.len(), manifest.chunks.len());
        let addr = &server.addr;
        let statuses: Vec<u16> = futures::stream::iter(manifest.chunks.iter().zip(&pieces))
            .map(|(id, piece)| async move { put(addr, id, piece, None).await.status })
            .buffered(2)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
        up.push(started.elapsed());

        let started = Instant::now();
        let fetched: Vec<Vec<u8>> = futures::stream::iter(manifest.chunks.iter().enumerate())
            .map(|(index, id)| {
                let manifest = &manifest;
                async move {
                    let answer = request(addr, "GET", &format!("/chunks/{id}"), None, &[]).await;
                    manifest.open(index, &answer.body).expect("the piece opens")
                }
            })
            .buffered(2)
            .collect()
            .await;
        down.push(started.elapsed());
        assert_eq!(fetched.concat(), data, "the file came back whole");
    }
    println!(
        "files: a {megabytes} MB file in {} pieces, {ROUNDS} rounds (median, range)",
        mesh::file::chunk_count(megabytes as u64 * 1_000_000)
    );
    for (what, times) in [
        ("sealed (native)", &mut sealing),
        ("uploaded (ask, then 2 at a time)", &mut up),
        ("fetched and opened (2 at a time)", &mut down),
    ] {
        times.sort();
        println!(
            "  {what:34} {} (from {} to {})",
            ms(times[ROUNDS / 2]),
            ms(times[0]),
            ms(times[ROUNDS - 1])
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
