//! Radio figures on the simulator at LoRa SF7/125 kHz speed, with clean links and with 20% of
//! frames lost on every link: a four-camp chain A–B–C–D (each camp hears only its
//! neighbours), and two meshes with loops, hop limit 7, three camps sending: a ladder of ten
//! camps (A–E over F–J, linked across) and a grid of twelve (three rows of four). Per run: the
//! share of messages that arrive (per camp on the meshes), duplicates, frames and airtime per
//! delivered (message, camp) pair, collisions, and how long the last camp waited for each
//! message.
//!
//! `cargo bench -p server --bench radio_chain` (or `./x bench`). FIELDMESH_BENCH_MESSAGES
//! sets how many messages each run sends (default 200); FIELDMESH_BENCH_CHAIN=0,
//! FIELDMESH_BENCH_LADDER=0 and FIELDMESH_BENCH_GRID=0 skip a topology.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use mesh::serial::Protocol;
use mesh::{ClientFrame, Kind, ServerFrame};
use support::camps::{grid_topology, ladder_topology, Camps};
use support::*;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// LoRa at SF7, 125 kHz: the speed the relay's timing is designed for.
const BITRATE: u32 = mesh::radio::DEFAULT_BITRATE_BPS;

struct Run {
    sent: usize,
    delivered: usize,
    duplicates: usize,
    confirmed: usize,
    frames: u64,
    airtime_ms: u64,
    bytes: u64,
    elapsed: Duration,
    /// The simulator's per-node counters.
    stats: String,
}

/// A phone that reads all the time (a bench must never stall the server's writer): frames to
/// send go in, every frame received comes out.
async fn phone(
    addr: &str,
) -> (
    mpsc::UnboundedSender<ClientFrame>,
    mpsc::UnboundedReceiver<ServerFrame>,
    [u8; 32],
) {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket connects");
    let (mut sink, mut stream) = ws.split();
    let challenge = loop {
        if let Some(Ok(Message::Binary(bytes))) = stream.next().await {
            if let Ok(ServerFrame::Welcome { challenge, .. }) = ServerFrame::decode(&bytes) {
                break challenge;
            }
        }
    };
    let (to_server, mut outgoing) = mpsc::unbounded_channel::<ClientFrame>();
    let (incoming, from_server) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut ping = tokio::time::interval(Duration::from_secs(5));
        loop {
            let frame = tokio::select! {
                frame = outgoing.recv() => match frame { Some(f) => f, None => return },
                _ = ping.tick() => ClientFrame::Ping { nonce: 0 },
            };
            if sink
                .send(Message::Binary(frame.encode().unwrap().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Binary(bytes) = message {
                if let Ok(frame) = ServerFrame::decode(&bytes) {
                    if incoming.send(frame).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (to_server, from_server, challenge)
}

async fn run(loss: f64, count: usize) -> Run {
    let camps = Camps::chain(Protocol::Kiss, BITRATE, loss, 11);
    // A camps' coordination room (the public Emergency room limits each sender to a message
    // every 15 s after the first 20, which a status every 3 s would meet).
    let room = room("camps");
    let (to_a, mut from_a, challenge_a) = phone(&camps.server("A").addr).await;
    let (to_d, mut from_d, challenge_d) = phone(&camps.server("D").addr).await;
    to_a.send(join_frame(room, None, "Ana", challenge_a))
        .unwrap();
    to_d.send(join_frame(room, None, "Dev", challenge_d))
        .unwrap();
    // Let every radio open before the clock starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // D's phone counts arrivals, A's counts "relayed by radio" notices, all the while.
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let arrivals = std::sync::Arc::clone(&arrived);
    let counting_d = tokio::spawn(async move {
        let mut seen = HashSet::new();
        let mut duplicates = 0;
        while let Some(frame) = from_d.recv().await {
            if let ServerFrame::Message(stored) = frame {
                if stored.envelope.kind == Kind::Radio
                    && !seen.insert(radio_text_of(&stored.envelope).1)
                {
                    duplicates += 1;
                }
                arrivals.store(seen.len(), std::sync::atomic::Ordering::Relaxed);
            }
        }
        (seen.len(), duplicates)
    });
    let confirmed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&confirmed);
    tokio::spawn(async move {
        while let Some(frame) = from_a.recv().await {
            if matches!(frame, ServerFrame::Relayed { .. }) {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });

    let started = Instant::now();
    for n in 0..count {
        let text = format!("Status {n:03} from camp A: 14 people, water ok, need insulin");
        let (envelope, radio) = radio_message(room, "Ana", &text);
        to_a.send(ClientFrame::Publish(envelope)).unwrap();
        to_a.send(radio).unwrap();
        // One message every 3 s from the camp, all crossing three hops: a busy channel for
        // LoRa (each is four transmissions, and B and C hear three of them).
        tokio::time::sleep(Duration::from_millis(3000)).await;
    }
    // Wait until every message reached D and was confirmed at A, or four minutes pass
    // without either moving (relays retry for about a minute; catch-up summaries come a
    // minute or two apart once the messages stop).
    let mut last = ((0, 0), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (
            confirmed.load(std::sync::atomic::Ordering::Relaxed),
            arrived.load(std::sync::atomic::Ordering::Relaxed),
        );
        if now != last.0 {
            last = (now, Instant::now());
        }
        if (now.0 >= count && now.1 >= count) || last.1.elapsed() > Duration::from_secs(240) {
            break;
        }
    }
    let elapsed = started.elapsed();
    // Let the last acknowledgements settle, then read the counters.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let radios = camps.radios.as_ref().expect("the chain has radios");
    let totals = radios.totals();
    let stats = radios.stats_table();
    drop(to_d);
    drop(camps);
    let (delivered, duplicates) = counting_d.await.unwrap();
    let confirmed = confirmed.load(std::sync::atomic::Ordering::Relaxed);
    Run {
        sent: count,
        delivered,
        duplicates,
        confirmed,
        frames: totals.frames,
        airtime_ms: totals.airtime_ms,
        bytes: totals.bytes,
        elapsed,
        stats,
    }
}

/// A mesh with loops.
struct Mesh {
    /// As the report names it.
    name: &'static str,
    /// The simulator's topology for a loss per link.
    topology: fn(u32, f64) -> String,
    /// Its camps, named A, B, C and on.
    camps: usize,
    /// The camps that send, each in turn.
    senders: &'static [usize],
}

/// Two lines of five camps, linked across; A, E and H send.
const LADDER: Mesh = Mesh {
    name: "ladder of 10",
    topology: ladder_topology,
    camps: 10,
    senders: &[0, 4, 7],
};

/// Three rows of four camps; A, L and F send.
const GRID: Mesh = Mesh {
    name: "grid of 12",
    topology: grid_topology,
    camps: 12,
    senders: &[0, 11, 5],
};

/// A mesh of real servers on the simulator, hop limit 7, its senders each sending in turn, one
/// message every 3 s in all. Returns the printed report.
async fn run_mesh(mesh: &Mesh, loss: f64, count: usize) -> String {
    const ALL: [&str; 12] = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L"];
    let names = &ALL[..mesh.camps];
    let senders_at = mesh.senders;
    let mut camps = Camps::new(Protocol::Kiss, BITRATE);
    camps.start_radios(&(mesh.topology)(BITRATE, loss), 17);
    for name in names {
        camps.start_with(name, &["--radio-hops", "7"]);
    }
    // A camps' coordination room (the public Emergency room limits each sender to a message
    // every 15 s after the first 20, which a status every 3 s would meet).
    let room = room("camps");
    let mut phones = Vec::new();
    for name in names {
        let (to, from, challenge) = phone(&camps.server(name).addr).await;
        to.send(join_frame(room, None, name, challenge)).unwrap();
        phones.push((to, from));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Each camp's phone notes when each radio message first arrived, and repeats.
    let started = Instant::now();
    let mut counters = Vec::new();
    let mut senders = Vec::new();
    for (to, mut from) in phones {
        senders.push(to);
        counters.push(tokio::spawn(async move {
            let mut first = std::collections::HashMap::new();
            let mut duplicates = 0;
            while let Some(frame) = from.recv().await {
                if let ServerFrame::Message(stored) = frame {
                    if stored.envelope.kind == Kind::Radio {
                        let text = radio_text_of(&stored.envelope).1;
                        if first.insert(text, started.elapsed()).is_some() {
                            duplicates += 1;
                        }
                    }
                }
            }
            (first, duplicates)
        }));
    }
    let mut sent_at = Vec::new();
    for n in 0..count {
        let from = senders_at[n % senders_at.len()];
        let text = format!("Status {n:03} from camp {}: water ok", names[from]);
        let (envelope, radio) = radio_message(room, names[from], &text);
        senders[from].send(ClientFrame::Publish(envelope)).unwrap();
        senders[from].send(radio).unwrap();
        sent_at.push((text, from, started.elapsed()));
        tokio::time::sleep(Duration::from_millis(3000)).await;
    }
    // Catch-up runs about once a minute: give it a few rounds.
    tokio::time::sleep(Duration::from_secs(240)).await;
    let radios = camps.radios.as_ref().expect("the mesh has radios");
    let totals = radios.totals();
    let stats = radios.stats_table();
    drop(senders);
    drop(camps);
    let mut report = stats;
    let mut pairs = 0usize;
    let mut per_camp = Vec::new();
    let mut waits = Vec::new();
    let mut duplicates = 0;
    let mut results = Vec::new();
    for counter in counters {
        results.push(counter.await.unwrap());
    }
    for (camp, (first, dups)) in results.iter().enumerate() {
        duplicates += dups;
        let expected: Vec<&(String, usize, Duration)> = sent_at
            .iter()
            .filter(|(_, from, _)| *from != camp)
            .collect();
        let got = expected
            .iter()
            .filter(|(text, _, _)| first.contains_key(text))
            .count();
        pairs += got;
        per_camp.push(format!(
            "{} {:.0}%",
            names[camp],
            got as f64 * 100.0 / expected.len().max(1) as f64
        ));
    }
    for (text, from, at) in &sent_at {
        let last = results
            .iter()
            .enumerate()
            .filter(|(camp, _)| camp != from)
            .map(|(_, (first, _))| first.get(text).map(|t| t.saturating_sub(*at)))
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().max());
        if let Some(last) = last {
            waits.push(last.as_secs_f64());
        }
    }
    waits.sort_by(f64::total_cmp);
    let all = count * (names.len() - 1);
    let per = |x: u64| x as f64 / pairs.max(1) as f64;
    let receptions = totals.heard + totals.collided;
    report.push_str(&format!(
        "{}, hop limit 7, {BITRATE} bit/s, loss {:>3.0}% per link: {pairs}/{all} \
         (message, camp) pairs ({:.1}%), {duplicates} duplicates shown; per camp: {}; {:.2} \
         frames and {:.0} ms airtime per delivered pair; {} of {receptions} receptions \
         collided ({:.1}%); the last camp had a message after {:.1} s (median), {:.1} s \
         (slowest of the {} that reached every camp)\n",
        mesh.name,
        loss * 100.0,
        pairs as f64 * 100.0 / all as f64,
        per_camp.join(", "),
        per(totals.frames),
        per(totals.airtime_ms),
        totals.collided,
        totals.collided as f64 * 100.0 / receptions.max(1) as f64,
        waits.get(waits.len() / 2).copied().unwrap_or(f64::NAN),
        waits.last().copied().unwrap_or(f64::NAN),
        waits.len(),
    ));
    report
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
        "radio form: {} B fixed overhead per message (12 header + 4 time + 16 room-key tag + \
         8 network tag), +1+name; a 57-character message by \"Ana\" is a {}-byte frame",
        mesh::radio::MESSAGE_OVERHEAD_BYTES,
        payload.len() + mesh::radio::FRAMING_BYTES
    );
    // Both channels at once: they are separate simulations, and the machine is mostly idle.
    let chain = std::env::var("FIELDMESH_BENCH_CHAIN").as_deref() != Ok("0");
    let runs = if chain {
        let (clean, lossy) = tokio::join!(run(0.0, count), run(0.2, count));
        vec![(0.0, clean), (0.2, lossy)]
    } else {
        Vec::new()
    };
    for (loss, r) in runs {
        print!("{}", r.stats);
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
    for (mesh, switch) in [
        (LADDER, "FIELDMESH_BENCH_LADDER"),
        (GRID, "FIELDMESH_BENCH_GRID"),
    ] {
        if std::env::var(switch).as_deref() != Ok("0") {
            let (clean, lossy) =
                tokio::join!(run_mesh(&mesh, 0.0, count), run_mesh(&mesh, 0.2, count));
            print!("{clean}{lossy}");
        }
    }
}
