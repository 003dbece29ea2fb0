//! A soak: phones spread over rooms (and over loopback addresses, as phones of a camp are),
//! each room's sender writing steadily; every phone is checked to get every message of its
//! room exactly once, and the server's memory is sampled as it goes. The figures of
//! `./x bench` (1,000 phones, 50 rooms, 10 minutes) and a scaled-down test share it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh::{ClientFrame, RoomId, ServerFrame};

use super::{memory_kb, room, text_message, Client, TestServer};

/// The shape of a soak.
pub struct Soak {
    pub phones: usize,
    pub rooms: usize,
    pub duration: Duration,
    /// Pause between two messages of one room.
    pub every: Duration,
}

/// What a soak measured.
pub struct SoakFigures {
    /// Messages acknowledged (stored) by the server.
    pub sent: usize,
    /// Deliveries due: each room's messages times its phones.
    pub due: usize,
    pub delivered: usize,
    pub duplicates: usize,
    /// Server memory (resident, KiB) once every phone is in, then at each tenth of the run.
    pub memory_kb: Vec<u64>,
    /// Its peak over the whole run.
    pub peak_kb: u64,
}

/// How often a phone got each message, by id.
type Counts = Arc<Mutex<HashMap<[u8; 16], usize>>>;

/// Phones of one loopback address at most (the server's per-address bound is 256).
const PHONES_PER_ADDRESS: usize = 125;

/// Runs `soak` against `server`, which must allow [`PHONES_PER_ADDRESS`] phones per address.
pub async fn run(server: &TestServer, soak: &Soak) -> SoakFigures {
    let rooms: Vec<RoomId> = (0..soak.rooms)
        .map(|n| room(&format!("soak room {n}")))
        .collect();
    // Each phone's room, and its count of each message id.
    let mut seen: Vec<(usize, Counts)> = Vec::new();
    let mut readers = Vec::new();
    for n in 0..soak.phones {
        let address = Ipv4Addr::new(127, 0, 0, 2 + (n / PHONES_PER_ADDRESS) as u8);
        let (mut phone, _) = Client::connect_from(&server.addr, address).await;
        let which = n % soak.rooms;
        phone.join(rooms[which]).await;
        let counts: Counts = Arc::default();
        seen.push((which, Arc::clone(&counts)));
        readers.push(tokio::spawn(async move {
            // Until closed: a closed connection shows as missing deliveries.
            while let Ok(frame) = phone.next_or_quiet().await {
                if let Some(ServerFrame::Message(stored)) = frame {
                    *counts
                        .lock()
                        .unwrap()
                        .entry(stored.envelope.id.0)
                        .or_default() += 1;
                }
            }
        }));
    }
    let pid = server.pid();
    let mut memory = vec![memory_kb(pid, "VmRSS").unwrap_or(0)];
    let sent: Vec<Arc<Mutex<Vec<[u8; 16]>>>> = (0..soak.rooms).map(|_| Arc::default()).collect();
    let started = Instant::now();
    let mut senders = Vec::new();
    for (which, camp) in rooms.iter().copied().enumerate() {
        let mut sender = server.client().await;
        let (sent, duration, every) = (Arc::clone(&sent[which]), soak.duration, soak.every);
        senders.push(tokio::spawn(async move {
            let mut pace = tokio::time::interval(every);
            let mut n = 0;
            while started.elapsed() < duration {
                pace.tick().await;
                let envelope = text_message(camp, &format!("Sender {which}"), &format!("soak {n}"));
                sender.send(&ClientFrame::Publish(envelope.clone())).await;
                loop {
                    match sender.recv().await {
                        ServerFrame::Ack { id, .. } if id == envelope.id => break,
                        ServerFrame::Error { detail, .. } => {
                            panic!("a soak message refused: {detail}")
                        }
                        _ => {}
                    }
                }
                sent.lock().unwrap().push(envelope.id.0);
                n += 1;
            }
        }));
    }
    for tenth in 1..=10 {
        tokio::time::sleep_until((started + soak.duration * tenth / 10).into()).await;
        memory.push(memory_kb(pid, "VmRSS").unwrap_or(0));
    }
    for sender in senders {
        sender.await.expect("a sender ran to the end");
    }
    let sent: Vec<Vec<[u8; 16]>> = sent.iter().map(|s| s.lock().unwrap().clone()).collect();
    let due: usize = seen.iter().map(|(which, _)| sent[*which].len()).sum();
    // Until every phone has every message of its room, or 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = || -> (usize, usize) {
        let (mut delivered, mut duplicates) = (0, 0);
        for (which, counts) in &seen {
            let counts = counts.lock().unwrap();
            for id in &sent[*which] {
                if let Some(&count) = counts.get(id) {
                    delivered += 1;
                    duplicates += count - 1;
                }
            }
        }
        (delivered, duplicates)
    };
    while delivered().0 < due && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (delivered, duplicates) = delivered();
    for reader in readers {
        reader.abort();
    }
    SoakFigures {
        sent: sent.iter().map(Vec::len).sum(),
        due,
        delivered,
        duplicates,
        memory_kb: memory,
        peak_kb: memory_kb(pid, "VmHWM").unwrap_or(0),
    }
}
