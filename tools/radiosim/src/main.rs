//! `fieldmesh-radiosim`: simulated LoRa radios on pseudo-terminals (see the `radiosim` crate).

use std::path::PathBuf;

use anyhow::Context;
use clap::builder::TypedValueParser as _;
use clap::Parser;
use mesh::serial::Protocol;
use radiosim::{parse_topology, Radios};

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
        default_value_t = mesh::serial::Protocol::default(),
        value_parser = clap::builder::PossibleValuesParser::new(Protocol::ALL.map(|p| p.name()))
            .try_map(|name| name.parse::<Protocol>())
    )]
    protocol: Protocol,
    /// Seed for loss decisions (the same seed and traffic give the same losses).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.topology)
        .with_context(|| format!("cannot read {}", args.topology.display()))?;
    let topology = parse_topology(&text)?;
    let radios = Radios::start(topology, &args.dir, args.protocol, args.seed)?;
    for (name, link) in &radios.ports {
        let target = std::fs::read_link(link).unwrap_or_default();
        match radios.tcp_address(name) {
            Some(address) => println!(
                "{name} {} -> {} and tcp://{address}",
                link.display(),
                target.display()
            ),
            None => println!("{name} {} -> {}", link.display(), target.display()),
        }
    }
    let topology = radios.topology();
    println!(
        "{} radios ready ({}, {} bit/s, duty cycle {}); Ctrl-C stops",
        topology.nodes.len(),
        args.protocol,
        topology.bitrate_bps,
        topology.duty_cycle
    );
    tokio::signal::ctrl_c().await?;
    radios.write_stats();
    Ok(())
}
