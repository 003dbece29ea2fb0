//! Command-line flags, each with an environment-variable equivalent.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// FieldMesh: offline-first chat for the field.
///
/// Runs the chat server: it serves the web app that phones install, stores every message in a
/// SQLite file under the data directory, and relays messages between everyone connected.
/// Every flag can also be set through the environment variable shown beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "fieldmesh", version, about, long_about, max_term_width = 100)]
pub struct Config {
    /// Address and port to listen on. 0.0.0.0 lets phones on the local network connect;
    /// 127.0.0.1 keeps the server private to this machine. Port 0 picks a free port.
    #[arg(
        long,
        env = "FIELDMESH_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,

    /// Folder for the message database. Created if missing; back it up to keep history.
    #[arg(
        long,
        env = "FIELDMESH_DATA_DIR",
        value_name = "DIR",
        default_value = "fieldmesh-data"
    )]
    pub data_dir: PathBuf,

    /// Folder holding the built web app (the `pkg/` directory with Wasm, JavaScript and CSS).
    /// `./x run` builds it into target/site.
    #[arg(
        long,
        env = "FIELDMESH_SITE_ROOT",
        value_name = "DIR",
        default_value = "target/site"
    )]
    pub site_root: PathBuf,

    /// How many of a room's newest messages a phone receives when it joins (1 to 200).
    #[arg(
        long,
        env = "FIELDMESH_HISTORY_PAGE",
        value_name = "COUNT",
        default_value_t = 50,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(mesh::wire::MAX_HISTORY_PAGE))
    )]
    pub history_page: u16,

    /// What to log, as a tracing filter: error, warn, info, debug, or per module such as
    /// "info,server::ws=debug".
    #[arg(
        long,
        env = "FIELDMESH_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,
}
