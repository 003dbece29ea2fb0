//! Camps on simulated radios: the simulator (`radiosim`, real pseudo-terminals, run in this
//! process) and one real server process per node, each with its own data folder and radio.
//! Written once for the radio tests and the radio benchmark.

use std::collections::BTreeMap;

use mesh::serial::Protocol;
use mesh::ServerFrame;
use radiosim::{parse_topology, Radios};

use super::{Client, TestServer, WAIT};

/// A folder of camps: the simulated air (once started) and the servers on it, by node name.
pub struct Camps {
    /// Servers' data folders and the radios' links live here.
    pub dir: tempfile::TempDir,
    /// The simulated radios, once started.
    pub radios: Option<Radios>,
    servers: BTreeMap<String, TestServer>,
    protocol: Protocol,
    bitrate: u32,
}

/// Ten camps in two lines of five, neighbours linked across (A–E over F–J), every frame lost
/// with probability `loss` on every link.
pub fn ladder_topology(bitrate: u32, loss: f64) -> String {
    let mut topology = format!("bitrate {bitrate}\nduty-cycle 1\ndefault loss={loss} latency=10\n");
    for (a, b) in [
        ("A", "B"),
        ("B", "C"),
        ("C", "D"),
        ("D", "E"),
        ("F", "G"),
        ("G", "H"),
        ("H", "I"),
        ("I", "J"),
        ("A", "F"),
        ("B", "G"),
        ("C", "H"),
        ("D", "I"),
        ("E", "J"),
    ] {
        topology.push_str(&format!("link {a} {b}\n"));
    }
    topology
}

/// Twelve camps in a grid of three rows of four (A–D over E–H over I–L), each hearing the
/// camps beside, above and below it, every frame lost with probability `loss` on every link.
pub fn grid_topology(bitrate: u32, loss: f64) -> String {
    let mut topology = format!("bitrate {bitrate}\nduty-cycle 1\ndefault loss={loss} latency=10\n");
    let name = |row: usize, col: usize| char::from(b'A' + (row * 4 + col) as u8);
    for row in 0..3 {
        for col in 0..4 {
            if col < 3 {
                topology.push_str(&format!("link {} {}\n", name(row, col), name(row, col + 1)));
            }
            if row < 2 {
                topology.push_str(&format!("link {} {}\n", name(row, col), name(row + 1, col)));
            }
        }
    }
    topology
}

/// Four camps in a line, each hearing only its neighbours, every frame lost with probability
/// `loss` on every link.
pub fn chain_topology(bitrate: u32, loss: f64) -> String {
    format!(
        "bitrate {bitrate}\nduty-cycle 1\ndefault loss={loss} latency=10\n\
         link A B\nlink B C\nlink C D\n"
    )
}

impl Camps {
    /// An empty folder of camps whose radios speak `protocol` at `bitrate` bit/s.
    pub fn new(protocol: Protocol, bitrate: u32) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            radios: None,
            servers: BTreeMap::new(),
            protocol,
            bitrate,
        }
    }

    /// Camps A–D in a chain ([`chain_topology`]), radios and servers started.
    pub fn chain(protocol: Protocol, bitrate: u32, loss: f64, seed: u64) -> Self {
        let mut camps = Self::new(protocol, bitrate);
        camps.start_radios(&chain_topology(bitrate, loss), seed);
        for name in ["A", "B", "C", "D"] {
            camps.start(name);
        }
        camps
    }

    /// Starts the simulated radios of `topology` (must run inside a tokio runtime).
    pub fn start_radios(&mut self, topology: &str, seed: u64) {
        let topology = parse_topology(topology).expect("the topology parses");
        let radios = Radios::start(
            topology,
            &self.dir.path().join("radios"),
            self.protocol,
            seed,
        )
        .expect("the simulated radios start");
        self.radios = Some(radios);
    }

    /// Starts (or restarts) the server of camp `name` on its radio port, which need not exist
    /// yet: the server looks for it every second.
    pub fn start(&mut self, name: &str) -> &TestServer {
        self.start_with(name, &[])
    }

    /// [`Camps::start`] with more server arguments.
    pub fn start_with(&mut self, name: &str, extra: &[&str]) -> &TestServer {
        let radio = self.dir.path().join("radios").join(name);
        let bitrate = self.bitrate.to_string();
        let key = mesh::radio::NetworkKey::from_bytes(*b"camps share this").to_words();
        let mut args = vec![
            "--radio",
            radio.to_str().unwrap(),
            "--radio-protocol",
            self.protocol.name(),
            "--radio-bitrate",
            &bitrate,
            "--radio-network-key",
            &key,
        ];
        args.extend_from_slice(extra);
        let server = TestServer::start_with(&self.dir.path().join(format!("data-{name}")), &args);
        self.servers.insert(name.to_string(), server);
        &self.servers[name]
    }

    /// Stops camp `name`'s server with SIGTERM.
    pub fn stop(&mut self, name: &str) {
        if let Some(server) = self.servers.remove(name) {
            server.stop();
        }
    }

    /// The simulated radios.
    pub fn radios(&self) -> &Radios {
        self.radios.as_ref().expect("the radios were started")
    }

    /// The server of camp `name`.
    pub fn server(&self, name: &str) -> &TestServer {
        &self.servers[name]
    }

    /// A phone on camp `name` whose server's radio is ready.
    pub async fn phone(&self, name: &str) -> Client {
        let mut client = self.server(name).client().await;
        radio_ready(&mut client).await;
        client
    }
}

/// Waits until the client's server says its radio is ready.
pub async fn radio_ready(client: &mut Client) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, client.recv_any())
            .await
            .expect("the radio became ready in time");
        if let ServerFrame::Radio(status) = frame {
            if status.state == mesh::RadioState::Ready {
                return;
            }
        }
    }
}
