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
}

/// Reads a topology file (see the crate documentation); errors name the line.
pub fn parse_topology(text: &str) -> anyhow::Result<Topology> {
    let mut topology = Topology {
        bitrate_bps: mesh::radio::DEFAULT_BITRATE_BPS,
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
