//! Federation figures: ten camps on loopback, each with the leaf `nats-server` FieldMesh
//! starts for it, linked to one hub through cables this bench cuts. Half the camps lose their
//! link; 1,000 messages are written, spread over all ten camps (phones publishing real
//! signed envelopes); the link comes back. Printed: how long the writes took on each side of
//! the partition (storing never waits on the link), and the time from the link's return until
//! every camp holds all 1,000 (each camp's phone counts what it is handed live).
//!
//! `cargo bench -p server --bench federation` (or `./x bench`). FIELDMESH_BENCH_CAMPS and
//! FIELDMESH_BENCH_MESSAGES change the ten and the 1,000.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mesh::{MessageId, ServerFrame};
use support::nats::{creds, Cable, NatsHub};
use support::{room, text_message, Client, TestServer};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Counts the distinct messages `phone` is handed until it has `want`; returns when.
async fn count_until(mut phone: Client, want: usize) -> Instant {
    let mut seen: HashSet<MessageId> = HashSet::new();
    loop {
        match phone.next_or_quiet().await {
            Ok(Some(ServerFrame::Message(stored))) => {
                seen.insert(stored.envelope.id);
                if seen.len() >= want {
                    return Instant::now();
                }
            }
            Ok(_) => {}
            Err(()) => panic!("a camp closed its phone's connection"),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let camps = setting("FIELDMESH_BENCH_CAMPS", 10).max(2);
    let total = setting("FIELDMESH_BENCH_MESSAGES", 1_000);
    let dir = tempfile::tempdir().unwrap();
    let logins: Vec<(String, String)> = (0..camps)
        .map(|n| (format!("camp{n}"), format!("secret{n}")))
        .collect();
    let login_refs: Vec<(&str, &str)> = logins
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let hub = NatsHub::start(&dir.path().join("hub"), &login_refs);
    let mut cables = Vec::new();
    let mut servers = Vec::new();
    let started = Instant::now();
    for (n, (user, password)) in logins.iter().enumerate() {
        let cable = Cable::to(([127, 0, 0, 1], hub.leaf_port).into()).await;
        let login = creds(&dir.path().join("logins"), user, password);
        let name = format!("Camp {n}");
        let url = format!("nats-leaf://127.0.0.1:{}", cable.port);
        servers.push(TestServer::start_with(
            &dir.path().join(format!("camp-{n}")),
            &[
                "--camp-name",
                &name,
                "--federation-hub",
                &url,
                "--federation-creds",
                login.to_str().unwrap(),
            ],
        ));
        cables.push(cable);
    }
    println!(
        "{camps} camps started (each with its leaf nats-server) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let room = room("federation bench");
    // Every camp linked and in the hub's sources: one message from each reaches all.
    let mut phones = Vec::new();
    for server in &servers {
        let mut phone = server.client().await;
        phone.join(room).await;
        phones.push(phone);
    }
    let warm: Vec<_> = phones
        .into_iter()
        .map(|phone| tokio::spawn(count_until(phone, camps)))
        .collect();
    for (n, server) in servers.iter().enumerate() {
        let mut writer = server.client().await;
        writer
            .publish(&text_message(room, "Bench", &format!("camp {n} here")))
            .await;
    }
    for counter in warm {
        tokio::time::timeout(Duration::from_secs(120), counter)
            .await
            .expect("every camp linked within 2 minutes")
            .unwrap();
    }
    println!(
        "all linked (each camp has every camp's first message) {:.1} s after start",
        started.elapsed().as_secs_f64()
    );

    // The partition: the second half of the camps lose their link.
    let away = camps / 2..camps;
    for n in away.clone() {
        cables[n].cut();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut counters = Vec::new();
    for server in &servers {
        let mut phone = server.client().await;
        phone.join(room).await;
        counters.push(tokio::spawn(count_until(phone, total)));
    }
    // The writes: spread over every camp, each camp's in one go from one phone.
    let per_camp = total.div_ceil(camps);
    let mut written = 0;
    let mut linked_ms = Vec::new();
    let mut apart_ms = Vec::new();
    for (n, server) in servers.iter().enumerate() {
        let count = per_camp.min(total - written);
        let mut writer = server.client().await;
        let at = Instant::now();
        for k in 0..count {
            writer
                .publish(&text_message(
                    room,
                    "Bench",
                    &format!("camp {n} message {k}"),
                ))
                .await;
        }
        let ms = at.elapsed().as_secs_f64() * 1000.0 / count.max(1) as f64;
        if away.contains(&n) {
            apart_ms.push(ms);
        } else {
            linked_ms.push(ms);
        }
        written += count;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "{written} messages written: {:.2} ms each at linked camps, {:.2} ms each at cut-off camps",
        mean(&linked_ms),
        mean(&apart_ms)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The link comes back.
    let healed = Instant::now();
    for n in away {
        cables[n].mend();
    }
    let mut times = Vec::new();
    for counter in counters {
        let done = tokio::time::timeout(Duration::from_secs(600), counter)
            .await
            .expect("every camp has every message within 10 minutes")
            .unwrap();
        times.push(done.saturating_duration_since(healed).as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "after the partition healed, every camp had all {written} messages in {:.1} s \
         (first camp {:.1} s, median {:.1} s)",
        times[times.len() - 1],
        times[0],
        times[times.len() / 2]
    );
}
