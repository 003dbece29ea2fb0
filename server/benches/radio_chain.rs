//! Radio figures for a four-camp chain A–B–C–D on the simulator (each camp hears only its
//! neighbours), at LoRa SF7/125 kHz speed: frames and airtime per delivered message, and the
//! share of messages that arrive, with clean links and with 20% of frames lost on every link.
//!
//! `cargo bench -p server --bench radio_chain` (or `./x bench`). FIELDMESH_BENCH_MESSAGES
//! sets how many messages each run sends (default 200).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesh::{ClientFrame, Kind, ServerFrame};
use support::*;

const BITRATE: u32 = 5470;

struct Run {
    sent: usize,
    delivered: usize,
    duplicates: usize,
    confirmed: usize,
    frames: u64,
    airtime_ms: u64,
    bytes: u64,
    elapsed: Duration,
}

fn simulator(dir: &Path, loss: f64) -> Child {
    let topology = format!(
        "bitrate {BITRATE}\nduty-cycle 1\ndefault loss={loss} latency=20\nlink A B\nlink B C\nlink C D\n"
    );
    std::fs::write(dir.join("topology"), topology).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldmesh-radiosim"))
        .arg("--topology")
        .arg(dir.join("topology"))
        .arg("--dir")
        .arg(dir.join("radios"))
        .args(["--seed", "11"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the simulator starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines
        .next()
        .expect("simulator output")
        .unwrap()
        .contains("radios ready")
    {}
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Sums the simulator's counters over every node: (frames, bytes, airtime ms).
fn air_totals(dir: &Path) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(dir.join("radios").join("stats")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some((*fields.first()?, *fields.get(1)?, *fields.get(2)?))
        })
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

async fn run(loss: f64, count: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = simulator(dir.path(), loss);
    let servers: Vec<TestServer> = ["A", "B", "C", "D"]
        .iter()
        .map(|name| {
            let radio = dir.path().join("radios").join(name);
            TestServer::start_with(
                &dir.path().join(format!("data-{name}")),
                &[
                    "--radio",
                    radio.to_str().unwrap(),
                    "--radio-bitrate",
                    &BITRATE.to_string(),
                ],
            )
        })
        .collect();
    let room = emergency_room();
    let mut on_a = servers[0].client().await;
    let mut on_d = servers[3].client().await;
    on_a.join(room).await;
    on_d.join(room).await;
    // Let every radio open before the clock starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let started = Instant::now();
    let mut texts = Vec::new();
    for n in 0..count {
        let text = format!("Status {n:03} from camp A: 14 people, water ok, need insulin");
        let (envelope, radio) = radio_message(room, "Ana", &text);
        on_a.send(&ClientFrame::Publish(envelope)).await;
        on_a.send(&radio).await;
        texts.push(text);
        // About one message every 1.5 s from the camp: a busy but plausible channel.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut confirmed = 0;
    let mut last_news = Instant::now();
    while seen.len() < count && last_news.elapsed() < Duration::from_secs(60) {
        tokio::select! {
            frame = on_d.next_frame() => {
                if let Some(ServerFrame::Message(stored)) = frame {
                    if stored.envelope.kind == Kind::Radio {
                        last_news = Instant::now();
                        if !seen.insert(radio_text_of(&stored.envelope).1) {
                            duplicates += 1;
                        }
                    }
                }
            }
            frame = on_a.next_frame() => {
                if let Some(ServerFrame::Relayed { .. }) = frame {
                    confirmed += 1;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    // Let retries and acknowledgements settle, then read the air counters.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(ServerFrame::Relayed { .. })) =
            tokio::time::timeout(Duration::from_millis(500), on_a.next_frame()).await
        {
            confirmed += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (frames, bytes, airtime_ms) = air_totals(dir.path());
    let _ = sim.kill();
    let _ = sim.wait();
    Run {
        sent: count,
        delivered: seen.len(),
        duplicates,
        confirmed,
        frames,
        airtime_ms,
        bytes,
        elapsed,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::var("FIELDMESH_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let sample = radio_message(emergency_room(), "Ana", &"x".repeat(57)).1;
    let ClientFrame::SendRadio { payload, .. } = sample else {
        unreachable!()
    };
    println!(
        "radio form: {} B fixed overhead per message (12 header + 4 time + 16 tag), +1+name; \
         a 57-character message by \"Ana\" is a {}-byte frame",
        mesh::radio::MESSAGE_OVERHEAD_BYTES,
        payload.len() + mesh::radio::HEADER_BYTES
    );
    for loss in [0.0, 0.2] {
        let r = run(loss, count).await;
        let per = |x: u64| x as f64 / r.delivered.max(1) as f64;
        println!(
            "chain A-B-C-D, {BITRATE} bit/s, loss {:>3.0}% per link: delivered {}/{} ({:.1}%), \
             {} duplicates shown, {} confirmed at A; {:.2} frames and {:.0} ms airtime \
             ({:.0} bytes) per delivered message; {:.0} s",
            loss * 100.0,
            r.delivered,
            r.sent,
            r.delivered as f64 * 100.0 / r.sent as f64,
            r.duplicates,
            r.confirmed,
            per(r.frames),
            per(r.airtime_ms),
            per(r.bytes),
            r.elapsed.as_secs_f64()
        );
    }
}
