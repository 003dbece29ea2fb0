//! Load figures: N phones (real WebSocket clients, real device keys, signed and sealed
//! envelopes, one process) in one room of a release server on loopback. One phone sends 500
//! messages, one every 5 ms; every phone notes when each arrives. Printed for N = 50 and 200:
//! delivery p50/p99/max, acknowledgement p50/p99, deliveries per second and the server's peak
//! memory. Then a burst: 5,000 messages as fast as they go to 50 phones, checked exactly once
//! each. Beside it, a bare broadcast server (a few dozen lines of axum below: no storage, no
//! checks) under the same driver, and FieldMesh's delivery p99 as a multiple of its (five
//! rounds each, taking turns: FIELDMESH_BENCH_LOAD_ROUNDS).
//!
//! Then 200 phones joining one room (presence traffic), and a soak: 1,000 phones in 50 rooms
//! for 10 minutes, each room written to every second, memory sampled, nothing lost.
//!
//! `cargo bench -p server --bench load` (or `./x bench`). FIELDMESH_BENCH_LOAD_MESSAGES sets
//! the paced messages (default 500), FIELDMESH_BENCH_LOAD_BURST the burst (default 5,000),
//! FIELDMESH_BENCH_SOAK_PHONES and FIELDMESH_BENCH_SOAK_SECONDS the soak (1,000 and 600).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use mesh::{ClientFrame, MessageId, ServerFrame};
use support::{room, text_message_with_id, TestServer};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Arrival times of messages at one phone, by message id.
type Arrivals = Arc<Mutex<HashMap<[u8; 16], Vec<Instant>>>>;

/// Which server the driver talks to.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    FieldMesh,
    Bare,
}

async fn open(addr: &str) -> Ws {
    let stream = TcpStream::connect(addr).await.expect("tcp connects");
    stream.set_nodelay(true).unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket connects");
    ws
}

/// A phone that only reads: joins the room (FieldMesh) and notes each message's arrival.
async fn reader(
    kind: Kind,
    addr: String,
    camp: mesh::RoomId,
    arrivals: Arrivals,
) -> tokio::task::JoinHandle<()> {
    let mut ws = open(&addr).await;
    if kind == Kind::FieldMesh {
        let challenge = welcome(&mut ws).await;
        let join = support::join_frame(camp, None, "reader", challenge);
        ws.send(Message::Binary(join.encode().unwrap().into()))
            .await
            .unwrap();
        // Until the first page of history: then the phone follows the room.
        loop {
            if let ServerFrame::History { .. } = next(&mut ws).await {
                break;
            }
        }
    }
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Binary(bytes) = message else {
                continue;
            };
            let now = Instant::now();
            let id = match kind {
                Kind::FieldMesh => match ServerFrame::decode(&bytes) {
                    Ok(ServerFrame::Message(stored)) => stored.envelope.id.0,
                    _ => continue,
                },
                Kind::Bare => match bytes.get(..16).and_then(|id| id.try_into().ok()) {
                    Some(id) => id,
                    None => continue,
                },
            };
            arrivals.lock().unwrap().entry(id).or_default().push(now);
        }
    })
}

async fn welcome(ws: &mut Ws) -> [u8; 32] {
    match next(ws).await {
        ServerFrame::Welcome { challenge, .. } => challenge,
        other => panic!("expected a welcome, got {other:?}"),
    }
}

async fn next(ws: &mut Ws) -> ServerFrame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("readable");
        if let Message::Binary(bytes) = message {
            return ServerFrame::decode(&bytes).expect("frames decode");
        }
    }
}

struct Figures {
    delivery: Vec<Duration>,
    acks: Vec<Duration>,
    delivered: usize,
    duplicates: usize,
    elapsed: Duration,
    peak_kb: Option<u64>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs one load: `phones` readers, `count` messages `every` apart (none: as fast as they go),
/// written by `authors` devices (each device may send 2,000 at once) over one connection.
async fn run(
    kind: Kind,
    addr: &str,
    pid: Option<u32>,
    phones: usize,
    (count, authors): (usize, usize),
    every: Option<Duration>,
    round: usize,
) -> Figures {
    let camp = room(&format!("load {phones} {count} {round}"));
    let mut tasks = Vec::new();
    let mut all = Vec::new();
    for _ in 0..phones {
        let arrivals: Arrivals = Arc::default();
        tasks.push(reader(kind, addr.to_string(), camp, Arc::clone(&arrivals)).await);
        all.push(arrivals);
    }
    // Presence settles (it is sent at most every 250 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;

    let mut sender = open(addr).await;
    if kind == Kind::FieldMesh {
        welcome(&mut sender).await;
    }
    // Signed before the clock starts, as a phone's outbox holds them.
    let messages: Vec<(MessageId, Vec<u8>)> = (0..count)
        .map(|n| {
            let id = MessageId(rand_id(n));
            let author = format!("Sender {}", n % authors);
            let envelope = text_message_with_id(camp, &author, &format!("load message {n}"), id);
            let bytes = match kind {
                Kind::FieldMesh => ClientFrame::Publish(envelope).encode().unwrap(),
                Kind::Bare => [&id.0[..], &envelope.encode().unwrap()].concat(),
            };
            (id, bytes)
        })
        .collect();
    let sent_at: Arc<Mutex<HashMap<[u8; 16], Instant>>> = Arc::default();
    let (mut sink, mut stream) = sender.split();
    let acks: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let ack_task = {
        let (sent_at, acks) = (Arc::clone(&sent_at), Arc::clone(&acks));
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Binary(bytes) = message else {
                    continue;
                };
                if let Ok(ServerFrame::Ack { id, .. }) = ServerFrame::decode(&bytes) {
                    if let Some(at) = sent_at.lock().unwrap().get(&id.0) {
                        acks.lock().unwrap().push(at.elapsed());
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let mut pace = every.map(tokio::time::interval);
    for (id, bytes) in messages {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        sent_at.lock().unwrap().insert(id.0, Instant::now());
        sink.send(Message::Binary(bytes.into())).await.unwrap();
    }
    // Until every phone has every message, or 60 s.
    let want = phones * count;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: usize = all.iter().map(|a| a.lock().unwrap().len()).sum();
        if got >= want || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let peak_kb = pid.and_then(peak_memory_kb);
    let sent_at = sent_at.lock().unwrap().clone();
    let mut delivery = Vec::new();
    let (mut delivered, mut duplicates) = (0, 0);
    for arrivals in &all {
        for (id, times) in arrivals.lock().unwrap().iter() {
            delivered += 1;
            duplicates += times.len() - 1;
            if let Some(sent) = sent_at.get(id) {
                delivery.push(times[0].saturating_duration_since(*sent));
            }
        }
    }
    delivery.sort();
    let mut acks = acks.lock().unwrap().clone();
    acks.sort();
    for task in tasks {
        task.abort();
    }
    ack_task.abort();
    Figures {
        delivery,
        acks,
        delivered,
        duplicates,
        elapsed,
        peak_kb,
    }
}

/// Presence traffic of `phones` phones joining one room one after another, `every` apart:
/// each phone applies what it is sent, as the page does. Returns the presence frames and
/// bytes sent to all phones, and how many phones end up listing every phone.
async fn joins(addr: &str, phones: usize, every: Duration) -> (usize, usize, usize) {
    let camp = room(&format!("joins {phones}"));
    let counted: Arc<Mutex<(usize, usize)>> = Arc::default();
    let mut views = Vec::new();
    let mut tasks = Vec::new();
    let mut pace = tokio::time::interval(every);
    for n in 0..phones {
        pace.tick().await;
        let mut ws = open(addr).await;
        let challenge = welcome(&mut ws).await;
        let join = support::join_frame(camp, None, &format!("phone {n}"), challenge);
        ws.send(Message::Binary(join.encode().unwrap().into()))
            .await
            .unwrap();
        let view: Arc<Mutex<Vec<mesh::Member>>> = Arc::default();
        views.push(Arc::clone(&view));
        let counted = Arc::clone(&counted);
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                let Message::Binary(bytes) = message else {
                    continue;
                };
                let members = &mut *view.lock().unwrap();
                match ServerFrame::decode(&bytes) {
                    Ok(ServerFrame::Presence { members: all, .. }) => *members = all,
                    Ok(ServerFrame::PresenceChanged { joined, left, .. }) => {
                        mesh::apply_presence_changes(members, &joined, &left)
                    }
                    _ => continue,
                }
                let mut counted = counted.lock().unwrap();
                counted.0 += 1;
                counted.1 += bytes.len();
            }
        }));
    }
    // Settles: presence goes out at most every 250 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let complete = views
        .iter()
        .filter(|view| view.lock().unwrap().len() == phones)
        .count();
    for task in tasks {
        task.abort();
    }
    let (frames, bytes) = *counted.lock().unwrap();
    (frames, bytes, complete)
}

fn rand_id(n: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let salt = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    id[8..].copy_from_slice(&salt.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    id
}

/// The server's peak resident memory (VmHWM), in kB.
fn peak_memory_kb(pid: u32) -> Option<u64> {
    support::memory_kb(pid, "VmHWM")
}

/// The bare broadcast server: every binary frame one client sends goes to every other.
async fn bare_server() -> SocketAddr {
    use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
    use axum::extract::State;
    let (tx, _) = broadcast::channel::<axum::body::Bytes>(1 << 16);
    let app =
        axum::Router::new()
            .route(
                "/ws",
                axum::routing::get(
                    |ws: WebSocketUpgrade,
                     State(tx): State<broadcast::Sender<axum::body::Bytes>>| async move {
                        ws.on_upgrade(move |socket| async move {
                            let (mut out, mut inc) = socket.split();
                            let mut rx = tx.subscribe();
                            let forward = tokio::spawn(async move {
                                while let Ok(bytes) = rx.recv().await {
                                    if out.send(AxumMessage::Binary(bytes)).await.is_err() {
                                        return;
                                    }
                                }
                            });
                            while let Some(Ok(message)) = inc.next().await {
                                if let AxumMessage::Binary(bytes) = message {
                                    let _ = tx.send(bytes);
                                }
                            }
                            forward.abort();
                        })
                    },
                ),
            )
            .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // TCP_NODELAY as FieldMesh sets it, so the two differ only in what they do.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

fn report(label: &str, figures: &Figures, phones: usize, count: usize) {
    let d = &figures.delivery;
    let acks = if figures.acks.is_empty() {
        "no acks".to_string()
    } else {
        format!(
            "ack p50 {} p99 {}",
            ms(percentile(&figures.acks, 0.5)),
            ms(percentile(&figures.acks, 0.99))
        )
    };
    println!(
        "  {label:<34} delivery p50 {} p99 {} max {}; {acks}; {} of {} delivered, {} twice; {:.0} deliveries/s{}",
        ms(percentile(d, 0.5)),
        ms(percentile(d, 0.99)),
        ms(d.last().copied().unwrap_or_default()),
        figures.delivered,
        phones * count,
        figures.duplicates,
        figures.delivered as f64 / figures.elapsed.as_secs_f64(),
        figures
            .peak_kb
            .map(|kb| format!("; server peak {:.1} MB", kb as f64 / 1024.0))
            .unwrap_or_default(),
    );
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // 1,000 phones and their senders are open files of this process too.
    server::admit::open_file_room(4_096);
    let count = setting("FIELDMESH_BENCH_LOAD_MESSAGES", 500);
    let rounds = setting("FIELDMESH_BENCH_LOAD_ROUNDS", 5).max(1);
    let burst = setting("FIELDMESH_BENCH_LOAD_BURST", 5_000);
    println!("FieldMesh load (release server, loopback, one process of real WebSocket clients)");
    let bare = bare_server().await.to_string();
    for phones in [50, 200] {
        let dir = tempfile::tempdir().unwrap();
        // One address carries every phone here: say so, as a camp behind one NAT would.
        let server = TestServer::start_with(dir.path(), &["--phones-per-address", "100"]);
        let paced = Some(Duration::from_millis(5));
        println!("N = {phones} phones, {count} messages one every 5 ms, {rounds} rounds:");
        // A p99 of a few milliseconds moves with whatever else the machine does: the two
        // servers take turns, and the ratio of each round is printed, then their median.
        let mut ratios = Vec::new();
        for round in 0..rounds {
            let fieldmesh = run(
                Kind::FieldMesh,
                &server.addr,
                Some(server.pid()),
                phones,
                (count, 1),
                paced,
                round,
            )
            .await;
            let baseline = run(Kind::Bare, &bare, None, phones, (count, 1), paced, round).await;
            report("FieldMesh", &fieldmesh, phones, count);
            report("bare broadcast (stores nothing)", &baseline, phones, count);
            ratios.push(
                percentile(&fieldmesh.delivery, 0.99).as_secs_f64()
                    / percentile(&baseline.delivery, 0.99).as_secs_f64().max(1e-6),
            );
        }
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "  FieldMesh delivery p99 / bare p99 by round: {}; median {:.2}×",
            shown.join(", "),
            ratios[ratios.len() / 2]
        );
        server.stop();
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--phones-per-address", "100"]);
    let (frames, bytes, complete) = joins(&server.addr, 200, Duration::from_millis(50)).await;
    println!(
        "200 phones join one room, one every 50 ms: {frames} presence frames, {:.1} MB to all \
         phones; {complete} of 200 list all 200",
        bytes as f64 / 1e6
    );
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--phones-per-address", "100"]);
    let authors = burst.div_ceil(1_000);
    let figures = run(
        Kind::FieldMesh,
        &server.addr,
        Some(server.pid()),
        50,
        (burst, authors),
        None,
        0,
    )
    .await;
    println!("Burst: {burst} messages from {authors} devices as fast as they go to 50 phones:");
    report("FieldMesh", &figures, 50, burst);
    let exact = figures.delivered == 50 * burst && figures.duplicates == 0;
    println!(
        "  every phone got every message exactly once: {}",
        if exact { "yes" } else { "NO" }
    );
    server.stop();

    let soak = support::soak::Soak {
        phones: setting("FIELDMESH_BENCH_SOAK_PHONES", 1_000),
        rooms: 50,
        duration: Duration::from_secs(setting("FIELDMESH_BENCH_SOAK_SECONDS", 600) as u64),
        every: Duration::from_secs(1),
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--phones-per-address", "125"]);
    let figures = support::soak::run(&server, &soak).await;
    let mb = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
    println!(
        "Soak: {} phones in {} rooms for {} s, a message a second in each room:",
        soak.phones,
        soak.rooms,
        soak.duration.as_secs()
    );
    println!(
        "  {} messages stored; {} of {} deliveries, {} twice; server memory {} MB with every \
         phone in, {} MB at the end (each tenth: {}), peak {} MB",
        figures.sent,
        figures.delivered,
        figures.due,
        figures.duplicates,
        mb(figures.memory_kb[0]),
        mb(*figures.memory_kb.last().unwrap()),
        figures
            .memory_kb
            .iter()
            .map(|kb| mb(*kb))
            .collect::<Vec<_>>()
            .join(", "),
        mb(figures.peak_kb),
    );
    server.stop();
}
