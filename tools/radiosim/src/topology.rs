//! The topology file: nodes, who hears whom, loss, latency, bitrate, duty cycle.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};

/// How one node hears another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkSpec {
    /// Share of frames lost on this link (0 to 1).
    pub loss: f64,
    /// Delay before the frame starts arriving.
    pub latency: Duration,
}

/// A Meshtastic node's role, for how it floods (device mode `meshtastic` only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MeshtasticRole {
    /// Rebroadcasts after a short wait, unless it hears another node do it first.
    #[default]
    Client = 0,
    /// Never rebroadcasts.
    ClientMute = 1,
    /// Rebroadcasts at once, always.
    Router = 2,
}

/// How one node is set up, in device mode `meshtastic`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOptions {
    /// Its role.
    pub role: MeshtasticRole,
    /// Its channels by index (the first is the primary; "LongFast" is the preset's name).
    pub channels: Vec<String>,
    /// Hop limit of the packets it sends.
    pub hop_limit: u32,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            role: MeshtasticRole::Client,
            channels: vec!["LongFast".into(), "FieldMesh".into()],
            hop_limit: 3,
        }
    }
}

/// Nodes, who hears whom, and the radio settings they share.
#[derive(Debug)]
pub struct Topology {
    /// Over-the-air bitrate in bit/s.
    pub bitrate_bps: u32,
    /// Share of time a node may transmit.
    pub duty_cycle: f64,
    /// Node names, in the order first named.
    pub nodes: Vec<String>,
    /// Who hears whom: `links[from][to]`.
    pub links: BTreeMap<String, BTreeMap<String, LinkSpec>>,
    /// Each node's Meshtastic set-up (`node NAME role=router channels=LongFast,FieldMesh
    /// hops=3`; `channels A B` sets every node's default).
    pub options: BTreeMap<String, NodeOptions>,
}

impl Topology {
    /// Node `name`'s Meshtastic set-up.
    pub fn options(&self, name: &str) -> NodeOptions {
        self.options.get(name).cloned().unwrap_or_default()
    }
}

/// Reads a topology file (see the crate documentation); errors name the line.
pub fn parse_topology(text: &str) -> anyhow::Result<Topology> {
    let mut topology = Topology {
        bitrate_bps: mesh::radio::DEFAULT_BITRATE_BPS,
        duty_cycle: 1.0,
        nodes: Vec::new(),
        links: BTreeMap::new(),
        options: BTreeMap::new(),
    };
    let mut defaults = NodeOptions::default();
    let mut set_up: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
            ["node", name, options @ ..] => {
                add_node(&mut topology.nodes, name).with_context(context)?;
                if !options.is_empty() {
                    node_options(options, &NodeOptions::default()).with_context(context)?;
                    set_up.insert(
                        name.to_string(),
                        options.iter().map(|o| o.to_string()).collect(),
                    );
                }
            }
            ["channels", names @ ..] if !names.is_empty() => {
                defaults.channels = channel_names(&names.join(",")).with_context(context)?;
            }
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
    for name in &topology.nodes {
        let options = match set_up.get(name) {
            Some(words) => {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                node_options(&words, &defaults)?
            }
            None => defaults.clone(),
        };
        topology.options.insert(name.clone(), options);
    }
    Ok(topology)
}

fn channel_names(list: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
    if names.is_empty() || names.len() > 8 || names.iter().any(|n| n.is_empty() || n.len() > 11) {
        bail!("channels are 1 to 8 names of 1 to 11 characters");
    }
    Ok(names)
}

fn node_options(words: &[&str], base: &NodeOptions) -> anyhow::Result<NodeOptions> {
    let mut options = base.clone();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .with_context(|| format!("expected key=value, got {word:?}"))?;
        match key {
            "role" => {
                options.role = match value {
                    "client" => MeshtasticRole::Client,
                    "client-mute" => MeshtasticRole::ClientMute,
                    "router" => MeshtasticRole::Router,
                    other => bail!("role is client, client-mute or router, not {other:?}"),
                }
            }
            "channels" => options.channels = channel_names(value)?,
            "hops" => {
                options.hop_limit = value.parse().context("hops is 0 to 7")?;
                if options.hop_limit > 7 {
                    bail!("hops is 0 to 7");
                }
            }
            other => bail!("unknown node option {other:?}"),
        }
    }
    Ok(options)
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
    fn meshtastic_nodes_take_a_role_channels_and_hops() {
        let topology = parse_topology(
            "channels LongFast,FieldMesh\nnode B role=router channels=LongFast hops=5\nlink A B\n",
        )
        .unwrap();
        assert_eq!(topology.options("A"), NodeOptions::default());
        let b = topology.options("B");
        assert_eq!(
            (b.role, b.channels.as_slice(), b.hop_limit),
            (MeshtasticRole::Router, &["LongFast".to_string()][..], 5)
        );
        assert!(parse_topology("node B role=boss").is_err());
        assert!(parse_topology("node B hops=9").is_err());
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
