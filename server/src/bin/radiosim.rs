//! `fieldmesh-radiosim`: simulated ESP32 LoRa radios for trying FieldMesh's mesh without
//! hardware, and for its tests.
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
//! Run `fieldmesh-radiosim --topology chain.topology --dir /tmp/radios`, then start one server
//! per node with `--radio /tmp/radios/A` and so on. Counters are written to `DIR/stats` every
//! half second.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::builder::TypedValueParser as _;
use clap::Parser;
use mesh::serial::Protocol;
use mesh::serial::{kiss_encode, KissDecoder, LineDecoder, CMD_DATA};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_serial::SerialStream;

/// Simulated LoRa radios on pseudo-terminals.
#[derive(Debug, Parser)]
#[command(
    name = "fieldmesh-radiosim",
    version,
    about,
    long_about,
    max_term_width = 100
)]
struct Args {
    /// The topology file: nodes, links, loss, latency, bitrate, duty cycle.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Folder for one link per node (DIR/A → /dev/pts/N) and the `stats` file.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// What the simulated radios speak on their serial side.
    #[arg(
        long,
        default_value = "kiss",
        value_parser = clap::builder::PossibleValuesParser::new(Protocol::ALL.map(|p| p.name()))
            .try_map(|name| name.parse::<Protocol>())
    )]
    protocol: Protocol,
    /// Seed for loss decisions (the same seed and traffic give the same losses).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct LinkSpec {
    loss: f64,
    latency: Duration,
}

#[derive(Debug)]
struct Topology {
    bitrate_bps: u32,
    duty_cycle: f64,
    nodes: Vec<String>,
    /// Who hears whom: `links[from][to]`.
    links: BTreeMap<String, BTreeMap<String, LinkSpec>>,
}

fn parse_topology(text: &str) -> anyhow::Result<Topology> {
    let mut topology = Topology {
        bitrate_bps: 5470,
        duty_cycle: 1.0,
        nodes: Vec::new(),
        links: BTreeMap::new(),
    };
    let mut default = LinkSpec {
        loss: 0.0,
        latency: Duration::from_millis(20),
    };
    let add_node = |nodes: &mut Vec<String>, name: &str| -> anyhow::Result<()> {
        if name.is_empty()
            || name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("node names are 1 to 32 letters, digits, '-' or '_': {name:?}");
        }
        if !nodes.iter().any(|n| n == name) {
            nodes.push(name.to_string());
        }
        Ok(())
    };
    for (number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let context = || format!("line {}: {raw:?}", number + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let spec = |options: &[&str], base: LinkSpec| -> anyhow::Result<LinkSpec> {
            let mut spec = base;
            for option in options {
                let (key, value) = option
                    .split_once('=')
                    .with_context(|| format!("expected key=value, got {option:?}"))?;
                match key {
                    "loss" => {
                        spec.loss = value.parse().context("loss is a number from 0 to 1")?;
                        if !(0.0..=1.0).contains(&spec.loss) {
                            bail!("loss is a number from 0 to 1");
                        }
                    }
                    "latency" => {
                        let ms: u64 = value
                            .trim_end_matches("ms")
                            .parse()
                            .context("latency is in milliseconds")?;
                        spec.latency = Duration::from_millis(ms.min(60_000));
                    }
                    other => bail!("unknown link option {other:?}"),
                }
            }
            Ok(spec)
        };
        match words.as_slice() {
            ["bitrate", value] => {
                topology.bitrate_bps = value.parse().with_context(context)?;
                if !(50..=1_000_000).contains(&topology.bitrate_bps) {
                    bail!("{}: bitrate is 50 to 1000000 bit/s", context());
                }
            }
            ["duty-cycle", value] => {
                topology.duty_cycle = value.parse().with_context(context)?;
                if !(0.001..=1.0).contains(&topology.duty_cycle) {
                    bail!("{}: duty-cycle is 0.001 to 1", context());
                }
            }
            ["default", options @ ..] => default = spec(options, default).with_context(context)?,
            ["node", name] => add_node(&mut topology.nodes, name).with_context(context)?,
            ["link", a, ">", b, options @ ..] | ["link", a, b, options @ ..] => {
                let one_way = words.get(2) == Some(&">");
                let spec = spec(options, default).with_context(context)?;
                add_node(&mut topology.nodes, a).with_context(context)?;
                add_node(&mut topology.nodes, b).with_context(context)?;
                if a == b {
                    bail!("{}: a node does not link to itself", context());
                }
                let mut link = |from: &str, to: &str| {
                    topology
                        .links
                        .entry(from.to_string())
                        .or_default()
                        .insert(to.to_string(), spec);
                };
                link(a, b);
                if !one_way {
                    link(b, a);
                }
            }
            _ => bail!("{}: not understood", context()),
        }
    }
    if topology.nodes.is_empty() {
        bail!("the topology has no nodes");
    }
    Ok(topology)
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

    /// A frame heard over the air, as the radio hands it to its host.
    fn device_frame(&self, frame: &[u8]) -> Vec<u8> {
        match self.protocol {
            Protocol::Kiss => kiss_encode(CMD_DATA, frame),
            Protocol::Line => {
                let mut line = frame.to_vec();
                line.push(b'\n');
                line
            }
        }
    }

    fn write_stats(&self, path: &Path) {
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
        let temporary = path.with_extension("tmp");
        if std::fs::write(&temporary, text).is_ok() {
            let _ = std::fs::rename(temporary, path);
        }
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.topology)
        .with_context(|| format!("cannot read {}", args.topology.display()))?;
    let topology = parse_topology(&text)?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut ports = Vec::new();
    let mut to_host_rx = Vec::new();
    let mut to_host = Vec::new();
    for name in &topology.nodes {
        let (master, slave) = SerialStream::pair().context("cannot open a pseudo-terminal")?;
        let slave_path =
            tokio_serial::SerialPort::name(&slave).context("the pseudo-terminal has no name")?;
        let link = args.dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&slave_path, &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
        println!("{name} {} -> {slave_path}", link.display());
        ports.push((master, slave));
        let (tx, rx) = mpsc::channel(256);
        to_host.push(tx);
        to_host_rx.push(rx);
    }
    let sim = Arc::new(Sim {
        counters: topology.nodes.iter().map(|_| Counters::default()).collect(),
        protocol: args.protocol,
        air: Mutex::new(Air::default()),
        to_host,
        rng: Mutex::new(args.seed.max(1)),
        topology,
    });
    let mut slaves = Vec::new();
    for (node, ((master, slave), to_host)) in ports.into_iter().zip(to_host_rx).enumerate() {
        // The simulator keeps its own slave handle open so the pseudo-terminal stays up
        // between server runs; it never reads from it.
        slaves.push(slave);
        let (to_air, air_rx) = mpsc::channel(TX_QUEUE);
        tokio::spawn(serve_host(Arc::clone(&sim), node, master, to_host, to_air));
        tokio::spawn(transmitter(Arc::clone(&sim), node, air_rx));
    }
    println!(
        "{} radios ready ({:?}, {} bit/s, duty cycle {}); Ctrl-C stops",
        sim.topology.nodes.len(),
        args.protocol,
        sim.topology.bitrate_bps,
        sim.topology.duty_cycle
    );
    let stats = args.dir.join("stats");
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = every.tick() => sim.write_stats(&stats),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    sim.write_stats(&stats);
    drop(slaves);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_files_parse_with_defaults_and_one_way_links() {
        let topology = parse_topology(
            "bitrate 1000\nduty-cycle 0.1\ndefault loss=0.2\nlink A B\nlink B > C latency=5ms\nnode D # alone\n",
        )
        .unwrap();
        assert_eq!(topology.nodes, ["A", "B", "C", "D"]);
        assert_eq!(topology.bitrate_bps, 1000);
        assert_eq!(topology.links["A"]["B"].loss, 0.2);
        assert_eq!(topology.links["B"]["A"].loss, 0.2);
        assert_eq!(topology.links["B"]["C"].latency, Duration::from_millis(5));
        assert!(!topology.links.contains_key("C"));
    }

    #[test]
    fn bad_topology_lines_say_where() {
        for bad in [
            "link A",
            "link A A",
            "bitrate fast",
            "link A B loss=2",
            "node ../x",
            "",
            "frob",
        ] {
            let error = parse_topology(bad).unwrap_err();
            assert!(!format!("{error:#}").is_empty());
        }
        let error = parse_topology("node A\nlink A B loss=x").unwrap_err();
        assert!(format!("{error:#}").contains("line 2"));
    }
}
