//! Simulated ESP32 LoRa radios for trying FieldMesh's mesh without hardware, and for its
//! tests and benchmarks (`fieldmesh-radiosim` is the command; [`Radios`] runs it in-process).
//!
//! Each node of a topology file gets a pseudo-terminal that speaks the device side of a
//! radio protocol (`kiss` like RNode firmware, or `line` like the DIY sketch); a FieldMesh
//! server opens it with `--radio`. A frame one node transmits reaches the nodes that hear it
//! after the link's latency plus its airtime at the chosen bitrate, unless the link loses it
//! or it collides with another frame at the receiver (radios are half duplex too). Each node
//! waits out its duty cycle between frames.
//!
//! ```text
//! # chain.topology: A hears B, B hears A and C, …
//! bitrate 5470          # bit/s over the air
//! duty-cycle 0.1        # share of time each node may transmit
//! default loss=0 latency=20
//! link A B
//! link B C loss=0.2
//! link C D latency=50
//! link D > E            # E hears D, D does not hear E
//! node F                # a node that hears nobody
//! ```
//!
//! Run `fieldmesh-radiosim --topology chain.topology --dir /tmp/radios` (or
//! `cargo run -p radiosim -- …`), then start one server per node with `--radio /tmp/radios/A`
//! and so on. Counters are written to `DIR/stats` every half second.

#![warn(missing_docs, unreachable_pub)]

pub mod meshtastic;
mod topology;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mesh::serial::{kiss_encode, KissDecoder, LineDecoder, Protocol, CMD_DATA};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_serial::SerialStream;

pub use topology::{parse_topology, LinkSpec, MeshtasticRole, NodeOptions, Topology};

/// Simulated radios, running on the current tokio runtime until dropped.
pub struct Radios {
    /// Each node's name and the path of its serial port (a link to a pseudo-terminal).
    pub ports: Vec<(String, PathBuf)>,
    sim: Arc<Sim>,
    stats: PathBuf,
    tasks: Vec<JoinHandle<()>>,
    /// The simulator keeps the pseudo-terminals' host ends open so they stay up between
    /// server runs; it never reads from them.
    _hosts: Vec<SerialStream>,
    /// Meshtastic nodes' TCP ports (device mode `meshtastic` only), by node.
    tcp: Vec<TcpPort>,
    devices: Vec<Arc<meshtastic::Device>>,
}

/// A Meshtastic node's TCP port on 127.0.0.1 (as a networked node's port 4403).
struct TcpPort {
    name: String,
    address: std::net::SocketAddr,
    /// Unplugged: connections are closed and new ones refused.
    unplugged: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

/// Frames, bytes and airtime sent by every node together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AirTotals {
    /// Frames put on the air.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their airtime in milliseconds.
    pub airtime_ms: u64,
    /// Receptions: frames heard whole by a node.
    pub heard: u64,
    /// Receptions lost to another frame overlapping at the receiver.
    pub collided: u64,
}

impl Radios {
    /// Makes one pseudo-terminal per node in `dir` (`dir/NAME`) speaking `protocol` on the
    /// device side, and starts the air between them. `seed` makes losses repeatable.
    pub fn start(
        topology: Topology,
        dir: &Path,
        protocol: Protocol,
        seed: u64,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut devices = Vec::new();
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        let mut to_host_rx = Vec::new();
        let mut to_host = Vec::new();
        for name in &topology.nodes {
            let (device, host) = SerialStream::pair().context("cannot open a pseudo-terminal")?;
            let host_path =
                tokio_serial::SerialPort::name(&host).context("the pseudo-terminal has no name")?;
            let link = dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&host_path, &link)
                .with_context(|| format!("cannot link {}", link.display()))?;
            ports.push((name.clone(), link));
            devices.push(device);
            hosts.push(host);
            let (tx, rx) = mpsc::channel(256);
            to_host.push(tx);
            to_host_rx.push(rx);
        }
        let sim = Arc::new(Sim {
            counters: topology.nodes.iter().map(|_| Counters::default()).collect(),
            protocol,
            air: Mutex::new(Air::default()),
            to_host,
            rng: Mutex::new(seed.max(1)),
            topology,
        });
        let mut tasks = Vec::new();
        let mut tcp = Vec::new();
        let mut meshtastic_devices = Vec::new();
        for (node, (device, to_host)) in devices.into_iter().zip(to_host_rx).enumerate() {
            let (to_air, air_rx) = mpsc::channel(TX_QUEUE);
            if protocol == Protocol::Meshtastic {
                let name = sim.topology.nodes[node].clone();
                let mesh_device = meshtastic::Device::new(
                    &name,
                    &sim.topology.options(&name),
                    &sim.topology.nodes,
                );
                let port = serve_meshtastic(
                    Arc::clone(&sim),
                    Arc::clone(&mesh_device),
                    device,
                    to_host,
                    to_air,
                    &mut tasks,
                )?;
                tcp.push(port);
                meshtastic_devices.push(mesh_device);
            } else {
                tasks.push(tokio::spawn(serve_host(
                    Arc::clone(&sim),
                    node,
                    device,
                    to_host,
                    to_air,
                )));
            }
            tasks.push(tokio::spawn(transmitter(Arc::clone(&sim), node, air_rx)));
        }
        let stats = dir.join("stats");
        let writer = {
            let (sim, stats) = (Arc::clone(&sim), stats.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(500));
                loop {
                    every.tick().await;
                    sim.write_stats(&stats);
                }
            })
        };
        tasks.push(writer);
        Ok(Self {
            ports,
            sim,
            stats,
            tasks,
            _hosts: hosts,
            tcp,
            devices: meshtastic_devices,
        })
    }

    /// Node `name`'s TCP address on 127.0.0.1 (device mode `meshtastic` only).
    pub fn tcp_address(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.tcp.iter().find(|t| t.name == name).map(|t| t.address)
    }

    /// Pulls the network cable of Meshtastic node `name`: its TCP connections close and new
    /// ones are refused until [`Radios::replug_tcp`].
    pub fn unplug_tcp(&self, name: &str) {
        if let Some(port) = self.tcp.iter().find(|t| t.name == name) {
            port.unplugged.store(true, Ordering::Relaxed);
            for connection in port.connections.lock().unwrap().drain(..) {
                connection.abort();
            }
        }
    }

    /// Plugs Meshtastic node `name`'s network cable back in.
    pub fn replug_tcp(&self, name: &str) {
        if let Some(port) = self.tcp.iter().find(|t| t.name == name) {
            port.unplugged.store(false, Ordering::Relaxed);
        }
    }

    /// Meshtastic node `name` hands its hosts these bytes as they are (debug text, a broken
    /// frame), for tests of what hosts make of them.
    pub fn inject(&self, name: &str, bytes: &[u8]) {
        if let Some(node) = self.sim.topology.nodes.iter().position(|n| n == name) {
            if let Some(device) = self.devices.get(node) {
                device.inject(bytes);
            }
        }
    }

    /// The serial port path of node `name`.
    pub fn port(&self, name: &str) -> Option<&Path> {
        self.ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, path)| path.as_path())
    }

    /// The topology being simulated.
    pub fn topology(&self) -> &Topology {
        &self.sim.topology
    }

    /// What every node sent so far.
    pub fn totals(&self) -> AirTotals {
        self.sim
            .counters
            .iter()
            .fold(AirTotals::default(), |t, c| AirTotals {
                frames: t.frames + c.frames_sent.load(Ordering::Relaxed),
                bytes: t.bytes + c.bytes_sent.load(Ordering::Relaxed),
                airtime_ms: t.airtime_ms + c.airtime_ms.load(Ordering::Relaxed),
                heard: t.heard + c.heard.load(Ordering::Relaxed),
                collided: t.collided + c.collided.load(Ordering::Relaxed),
            })
    }

    /// Each node's counters as a table (also written to `DIR/stats` twice a second).
    pub fn stats_table(&self) -> String {
        self.sim.stats_table()
    }

    /// Writes the counters now.
    pub fn write_stats(&self) {
        self.sim.write_stats(&self.stats);
    }
}

impl Drop for Radios {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Counters of one node.
#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    airtime_ms: AtomicU64,
    heard: AtomicU64,
    lost: AtomicU64,
    collided: AtomicU64,
    queue_full: AtomicU64,
}

struct Reception {
    start: Instant,
    end: Instant,
    corrupted: Arc<AtomicBool>,
}

/// What is on the air around each node.
#[derive(Default)]
struct Air {
    receiving: HashMap<usize, Vec<Reception>>,
    transmitting: HashMap<usize, (Instant, Instant)>,
}

struct Sim {
    topology: Topology,
    protocol: Protocol,
    air: Mutex<Air>,
    counters: Vec<Counters>,
    to_host: Vec<mpsc::Sender<Vec<u8>>>,
    rng: Mutex<u64>,
}

impl Sim {
    fn random(&self) -> f64 {
        let mut state = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    fn airtime(&self, bytes: usize) -> Duration {
        // Payload plus preamble, header and CRC, at the bitrate.
        Duration::from_micros(
            (bytes as u64 + 13) * 8 * 1_000_000 / u64::from(self.topology.bitrate_bps),
        )
    }

    /// Until when the channel sounds busy at `node` (listen before talk, as RNode firmware
    /// does): the end of the frames it is hearing now, if any.
    fn busy_until(&self, node: usize) -> Option<Instant> {
        let now = Instant::now();
        let air = self.air.lock().unwrap_or_else(|p| p.into_inner());
        air.receiving
            .get(&node)?
            .iter()
            .filter(|r| r.start <= now && now < r.end)
            .map(|r| r.end)
            .max()
    }

    /// One node puts a frame on the air now; it reaches whoever hears it.
    fn transmit(self: &Arc<Self>, from: usize, frame: Vec<u8>) -> Duration {
        let airtime = self.airtime(frame.len());
        let now = Instant::now();
        let counters = &self.counters[from];
        counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_sent
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        counters
            .airtime_ms
            .fetch_add(airtime.as_millis() as u64, Ordering::Relaxed);
        let name = &self.topology.nodes[from];
        let mut deliveries = Vec::new();
        {
            let mut air = self.air.lock().unwrap_or_else(|p| p.into_inner());
            // Half duplex: what this node was receiving is lost.
            for reception in air.receiving.entry(from).or_default().iter() {
                if reception.end > now {
                    reception.corrupted.store(true, Ordering::Relaxed);
                }
            }
            air.transmitting.insert(from, (now, now + airtime));
            for (to_name, spec) in self.topology.links.get(name).into_iter().flatten() {
                let Some(to) = self.topology.nodes.iter().position(|n| n == to_name) else {
                    continue;
                };
                if self.random() < spec.loss {
                    self.counters[to].lost.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let start = now + spec.latency;
                let end = start + airtime;
                let corrupted = Arc::new(AtomicBool::new(false));
                if air
                    .transmitting
                    .get(&to)
                    .is_some_and(|(s, e)| *s < end && start < *e)
                {
                    corrupted.store(true, Ordering::Relaxed);
                }
                let receptions = air.receiving.entry(to).or_default();
                receptions.retain(|r| r.end + Duration::from_secs(1) > now);
                for other in receptions.iter() {
                    if other.start < end && start < other.end {
                        other.corrupted.store(true, Ordering::Relaxed);
                        corrupted.store(true, Ordering::Relaxed);
                    }
                }
                receptions.push(Reception {
                    start,
                    end,
                    corrupted: Arc::clone(&corrupted),
                });
                deliveries.push((to, end, corrupted));
            }
        }
        for (to, end, corrupted) in deliveries {
            let sim = Arc::clone(self);
            let frame = frame.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(end).await;
                if corrupted.load(Ordering::Relaxed) {
                    sim.counters[to].collided.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                sim.counters[to].heard.fetch_add(1, Ordering::Relaxed);
                let _ = sim.to_host[to].try_send(sim.device_frame(&frame));
            });
        }
        airtime
    }

    /// A frame heard over the air, as the radio hands it to its host (a Meshtastic node
    /// reads it itself first).
    fn device_frame(&self, frame: &[u8]) -> Vec<u8> {
        match self.protocol {
            Protocol::Meshtastic => frame.to_vec(),
            Protocol::Kiss => kiss_encode(CMD_DATA, frame),
            Protocol::Line => {
                let mut line = frame.to_vec();
                line.push(b'\n');
                line
            }
        }
    }

    fn write_stats(&self, path: &Path) {
        let temporary = path.with_extension("tmp");
        if std::fs::write(&temporary, self.stats_table()).is_ok() {
            let _ = std::fs::rename(temporary, path);
        }
    }

    fn stats_table(&self) -> String {
        let mut text =
            String::from("node frames_sent bytes_sent airtime_ms heard lost collided queue_full\n");
        for (name, c) in self.topology.nodes.iter().zip(&self.counters) {
            text.push_str(&format!(
                "{name} {} {} {} {} {} {} {}\n",
                c.frames_sent.load(Ordering::Relaxed),
                c.bytes_sent.load(Ordering::Relaxed),
                c.airtime_ms.load(Ordering::Relaxed),
                c.heard.load(Ordering::Relaxed),
                c.lost.load(Ordering::Relaxed),
                c.collided.load(Ordering::Relaxed),
                c.queue_full.load(Ordering::Relaxed),
            ));
        }
        text
    }
}

/// Largest frame a simulated radio accepts from its host (LoRa's 255-byte limit).
const MAX_AIR_FRAME: usize = mesh::radio::MAX_FRAME_BYTES;
/// Frames a node queues for the air before it drops new ones.
const TX_QUEUE: usize = 64;

/// The device side of one node's serial port: frames from the host go on the air.
async fn serve_host(
    sim: Arc<Sim>,
    node: usize,
    master: SerialStream,
    mut to_host: mpsc::Receiver<Vec<u8>>,
    to_air: mpsc::Sender<Vec<u8>>,
) {
    let (mut reader, mut writer) = tokio::io::split(master);
    let echo = sim.to_host[node].clone();
    let protocol = sim.protocol;
    let counters_sim = Arc::clone(&sim);
    tokio::spawn(async move {
        while let Some(bytes) = to_host.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                // Nobody has the port open: the frame is lost, as with a real radio.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let mut kiss = KissDecoder::new(MAX_AIR_FRAME + 1);
    let mut lines = LineDecoder::new(MAX_AIR_FRAME);
    let mut buffer = vec![0u8; 1024];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                // No host has the port open yet (or it closed it): wait and read again.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Ok(n) => n,
        };
        let frames: Vec<Vec<u8>> = match protocol {
            Protocol::Kiss => kiss
                .push(&buffer[..n])
                .into_iter()
                .flatten()
                .filter_map(|frame| {
                    if frame.command == CMD_DATA {
                        Some(frame.payload)
                    } else {
                        // RNode answers a setting with the value it took.
                        let _ = echo.try_send(kiss_encode(frame.command, &frame.payload));
                        None
                    }
                })
                .collect(),
            Protocol::Line => lines.push(&buffer[..n]).into_iter().flatten().collect(),
            Protocol::Meshtastic => unreachable!("Meshtastic nodes are served by `meshtastic`"),
        };
        for frame in frames {
            if frame.is_empty() || frame.len() > MAX_AIR_FRAME {
                continue;
            }
            if to_air.try_send(frame).is_err() {
                counters_sim.counters[node]
                    .queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A Meshtastic node: its host on the pty and on TCP, and what it hears on the air.
fn serve_meshtastic(
    sim: Arc<Sim>,
    device: Arc<meshtastic::Device>,
    pty: SerialStream,
    mut heard: mpsc::Receiver<Vec<u8>>,
    to_air: mpsc::Sender<Vec<u8>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<TcpPort> {
    tasks.push(tokio::spawn(meshtastic::serve_host(
        Arc::clone(&device),
        pty,
        to_air.clone(),
        true,
    )));
    {
        let (device, to_air) = (Arc::clone(&device), to_air.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(frame) = heard.recv().await {
                device.hear(&sim, &frame, &to_air);
            }
        }));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot listen on TCP")?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let port = TcpPort {
        name: device.name().to_string(),
        address: listener.local_addr()?,
        unplugged: Arc::new(AtomicBool::new(false)),
        connections: Arc::new(Mutex::new(Vec::new())),
    };
    let (unplugged, connections) = (Arc::clone(&port.unplugged), Arc::clone(&port.connections));
    tasks.push(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if unplugged.load(Ordering::Relaxed) {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let task = tokio::spawn(meshtastic::serve_host(
                Arc::clone(&device),
                stream,
                to_air.clone(),
                false,
            ));
            let mut connections = connections.lock().unwrap();
            connections.retain(|c| !c.is_finished());
            connections.push(task.abort_handle());
        }
    }));
    Ok(port)
}

/// Sends a node's queued frames one at a time, keeping its duty cycle, after listening that
/// nobody it hears is transmitting (then waiting a random part of a frame's airtime more).
/// Nodes that do not hear each other can still collide at a third: the hidden terminal.
async fn transmitter(sim: Arc<Sim>, node: usize, mut to_air: mpsc::Receiver<Vec<u8>>) {
    let mut next_allowed = Instant::now();
    while let Some(frame) = to_air.recv().await {
        tokio::time::sleep_until(next_allowed).await;
        while let Some(busy) = sim.busy_until(node) {
            let backoff = sim.airtime(frame.len()).mul_f64(sim.random());
            tokio::time::sleep_until(busy + backoff).await;
        }
        let airtime = sim.transmit(node, frame);
        tokio::time::sleep(airtime).await;
        let off = airtime.mul_f64(1.0 / sim.topology.duty_cycle - 1.0);
        next_allowed = Instant::now() + off;
    }
}
