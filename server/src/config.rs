//! Command-line flags, each with an environment-variable equivalent.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// FieldMesh: offline-first chat for the field.
///
/// Runs the chat server: it serves the web app that phones install, stores every message in a
/// SQLite file under the data directory, and relays messages between everyone connected.
///
/// By default it serves the app over HTTPS with its own local certificate authority (made on
/// first start and kept in the data directory), and a plain-HTTP landing page that helps phones
/// install that authority. Every flag can also be set through the environment variable shown
/// beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "fieldmesh", version, about, long_about, max_term_width = 100)]
pub struct Config {
    /// Address and port of the app (HTTPS, or plain HTTP with --tls off). 0.0.0.0 lets phones
    /// on the local network connect; 127.0.0.1 keeps it private to this machine. Port 0 picks
    /// a free port.
    #[arg(
        long,
        env = "FIELDMESH_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:8443"
    )]
    pub listen: SocketAddr,

    /// Address and port of the plain-HTTP landing page, which explains how to install the
    /// certificate authority, offers it for download and links to the app. Not used with
    /// --tls off.
    #[arg(
        long,
        env = "FIELDMESH_HTTP_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:8080"
    )]
    pub http_listen: SocketAddr,

    /// How to serve the app: "local-ca" makes and keeps a certificate authority and a
    /// certificate for this machine's addresses; "off" serves plain HTTP (only for localhost,
    /// or behind a reverse proxy that does TLS). Giving --tls-cert and --tls-key uses those.
    #[arg(
        long,
        env = "FIELDMESH_TLS",
        value_enum,
        value_name = "MODE",
        default_value = "local-ca"
    )]
    pub tls: TlsMode,

    /// Your own certificate chain (PEM) instead of the local authority's. Needs --tls-key.
    #[arg(
        long,
        env = "FIELDMESH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "FIELDMESH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Extra host names for the certificate (for example fieldmesh.local); repeat the flag or
    /// separate with commas. localhost and this machine's addresses are always included.
    #[arg(
        long = "hostname",
        env = "FIELDMESH_HOSTNAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub hostnames: Vec<String>,

    /// Folder for the message database and the certificates. Created if missing; back it up
    /// to keep history. Default: the per-user data folder (~/.local/share/fieldmesh on Linux).
    #[arg(long, env = "FIELDMESH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Serve the web app from this folder instead of the copy built into the binary (for
    /// development: `./x site` builds it into target/site).
    #[arg(long, env = "FIELDMESH_SITE_ROOT", value_name = "DIR")]
    pub site_root: Option<PathBuf>,

    /// A code people must enter before their device may read or send anything. Stored only as
    /// an argon2 hash. Without it, anyone on the network can chat.
    #[arg(
        long,
        env = "FIELDMESH_JOIN_CODE",
        value_name = "CODE",
        hide_env_values = true
    )]
    pub join_code: Option<String>,

    /// How many of a room's newest messages a phone receives when it first joins (1 to 200).
    #[arg(
        long,
        env = "FIELDMESH_HISTORY_PAGE",
        value_name = "COUNT",
        default_value_t = 50,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(mesh::wire::MAX_HISTORY_PAGE))
    )]
    pub history_page: u16,

    /// Do not print the QR code of the app's address at start.
    #[arg(long, env = "FIELDMESH_NO_QR")]
    pub no_qr: bool,

    /// What to log, as a tracing filter: error, warn, info, debug, or per module such as
    /// "info,server::ws=debug". Logs go to standard error.
    #[arg(
        long,
        env = "FIELDMESH_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,
}

/// How the app is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// HTTPS with FieldMesh's own certificate authority.
    LocalCa,
    /// Plain HTTP.
    Off,
}

impl Config {
    /// The data directory: the flag, or the per-user default.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_local_dir()
                .map(|dir| dir.join("fieldmesh"))
                .unwrap_or_else(|| PathBuf::from("fieldmesh-data"))
        })
    }
}
