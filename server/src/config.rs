//! Command-line flags, each with an environment-variable equivalent.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Parser, ValueEnum};

/// What the operator can do with the data folder instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Tool {
    /// Write a room's stored messages, sealed as stored (no room key is needed or used), to a
    /// file: for the archive, or to hand to another camp (`fieldmesh import` there). Safe
    /// while the server runs.
    Export {
        /// The room's id: 32 hex digits (without it, the rooms stored are listed).
        #[arg(long, value_name = "ID")]
        room: Option<String>,
        /// The file to write (standard output when not given).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Load an archive written by `fieldmesh export` into this data folder. The whole file is
    /// checked first (every envelope and signature); nothing is stored unless all of it is
    /// sound; messages the server holds already are skipped. Phones see the messages when
    /// they next open the room.
    Import {
        /// The archive.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

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
    /// certificate authority, offers it for download and links to the app [default:
    /// 0.0.0.0:8080]. Not used with --tls off (the server says so when it is given).
    #[arg(long, env = "FIELDMESH_HTTP_LISTEN", value_name = "ADDR:PORT")]
    pub http_listen: Option<SocketAddr>,

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

    /// Let the local certificate authority vouch for any name, not only private and local
    /// addresses and names (and --hostname): only for camps on public address space. A phone
    /// that installs such an authority trusts whoever holds its key for every website.
    #[arg(long, env = "FIELDMESH_TLS_CA_UNCONSTRAINED")]
    pub tls_ca_unconstrained: bool,

    /// Folder of the local certificate authority (its key signs what phones trust), kept apart
    /// from the data folder so a backup of the messages does not copy it. Default: beside the
    /// data folder, with "-ca" added to its name (~/.local/share/fieldmesh-ca on Linux).
    #[arg(long, env = "FIELDMESH_TLS_CA_DIR", value_name = "DIR")]
    pub tls_ca_dir: Option<PathBuf>,

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
    #[arg(long, env = "FIELDMESH_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Instead of serving: write or load a room's archive (see each command's --help).
    #[command(subcommand)]
    pub tool: Option<Tool>,

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
        hide_env_values = true,
        conflicts_with = "join_code_file"
    )]
    pub join_code: Option<String>,

    /// Reads the join code from this file (its first line) instead: a code given with
    /// --join-code shows in the process list to everyone on the machine.
    #[arg(long, env = "FIELDMESH_JOIN_CODE_FILE", value_name = "FILE")]
    pub join_code_file: Option<PathBuf>,

    /// How many of a room's newest messages a phone receives when it first joins (1 to 200).
    #[arg(
        long,
        env = "FIELDMESH_HISTORY_PAGE",
        value_name = "COUNT",
        default_value_t = 50,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(mesh::wire::MAX_HISTORY_PAGE))
    )]
    pub history_page: u16,

    /// Most megabytes of messages one room may hold; past it, new messages to the room are
    /// refused with a reason (raise it, or set --retention-days).
    #[arg(
        long,
        env = "FIELDMESH_ROOM_QUOTA_MB",
        value_name = "MB",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub room_quota_mb: u32,

    /// Most megabytes of shared files (photos, documents, voice notes; stored sealed) this
    /// server keeps in all; past it, new files are refused with a reason.
    #[arg(
        long,
        env = "FIELDMESH_FILES_QUOTA_MB",
        value_name = "MB",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub files_quota_mb: u32,

    /// Most megabytes of files one room keeps on this server (its pieces uploaded with the
    /// room's ticket); past it, new files for the room are refused with a reason.
    #[arg(
        long,
        env = "FIELDMESH_FILES_ROOM_QUOTA_MB",
        value_name = "MB",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub files_room_quota_mb: u32,

    /// Most megabytes of files this server keeps from one device (its pass with a join code,
    /// else its network address); past it, its new files are refused with a reason.
    #[arg(
        long,
        env = "FIELDMESH_FILES_DEVICE_QUOTA_MB",
        value_name = "MB",
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub files_device_quota_mb: u32,

    /// Largest file (photo, document, voice note) a phone sends here, in megabytes (at most
    /// 100: a message names every piece of its files). Phones are told it and refuse larger
    /// files with a reason; the server cannot see a sealed
    /// file's size, so `--files-quota-mb` is what bounds its disk.
    #[arg(
        long,
        env = "FIELDMESH_MAX_FILE_MB",
        value_name = "MB",
        default_value_t = 25,
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub max_file_mb: u32,

    /// A detailed map of the region, downloaded before the disaster as one PMTiles file (vector
    /// or raster tiles, for example from Protomaps): served tile by tile to the app's map,
    /// which also works without it (a small world map is built in).
    #[arg(long, env = "FIELDMESH_MAP", value_name = "FILE.pmtiles")]
    pub map: Option<PathBuf>,

    /// Delete messages, and shared files' pieces, this many days after they were stored
    /// (checked every hour). 0 keeps them all.
    #[arg(
        long,
        env = "FIELDMESH_RETENTION_DAYS",
        value_name = "DAYS",
        default_value_t = 0
    )]
    pub retention_days: u32,

    /// Serial port of a LoRa radio (for example /dev/ttyUSB0 or /dev/serial/by-id/…), or
    /// tcp://HOST:PORT for a Meshtastic node on the network (port 4403 by default). Messages
    /// then also travel to and from other camps over the radio. The port is reopened by
    /// itself when the radio is unplugged and plugged back in.
    #[arg(long, env = "FIELDMESH_RADIO", value_name = "PATH")]
    pub radio: Option<PathBuf>,

    /// What the radio speaks: "kiss" for RNode firmware and KISS TNCs, "line" for the DIY
    /// ESP32 sketch (one base64 frame per text line), "meshtastic" for a node running stock
    /// Meshtastic firmware.
    #[arg(
        long,
        env = "FIELDMESH_RADIO_PROTOCOL",
        value_name = "PROTOCOL",
        default_value_t = mesh::serial::Protocol::default(),
        value_parser = clap::builder::PossibleValuesParser::new(
            mesh::serial::Protocol::ALL.map(|p| p.name())
        )
        .try_map(|name| name.parse::<mesh::serial::Protocol>())
    )]
    pub radio_protocol: mesh::serial::Protocol,

    /// Meshtastic only: the node's channel that carries FieldMesh's frames, by name or index
    /// (0 to 7). Every camp's node needs this channel, with the same name and key. Default:
    /// the node's primary channel.
    #[arg(
        long,
        env = "FIELDMESH_MESHTASTIC_CHANNEL",
        value_name = "NAME",
        default_value = "primary"
    )]
    pub meshtastic_channel: mesh::serial::ChannelChoice,

    /// Serial speed. Default: 115200 for kiss and meshtastic, 9600 for line.
    #[arg(long, env = "FIELDMESH_RADIO_BAUD", value_name = "BAUD")]
    pub radio_baud: Option<u32>,

    /// RNode only (kiss): centre frequency in Hz, for example 868100000 or 915000000. When set,
    /// the radio is configured with it and the settings below each time it is opened.
    #[arg(long, env = "FIELDMESH_RADIO_FREQUENCY", value_name = "HZ")]
    pub radio_frequency: Option<u32>,

    /// RNode only: bandwidth in Hz.
    #[arg(
        long,
        env = "FIELDMESH_RADIO_BANDWIDTH",
        value_name = "HZ",
        default_value_t = mesh::serial::DEFAULT_BANDWIDTH_HZ
    )]
    pub radio_bandwidth: u32,

    /// RNode only: spreading factor, 7 (fast, short range) to 12 (slow, long range).
    #[arg(
        long,
        env = "FIELDMESH_RADIO_SF",
        value_name = "SF",
        default_value_t = mesh::serial::DEFAULT_SPREADING_FACTOR,
        value_parser = clap::value_parser!(u8).range(7..=12)
    )]
    pub radio_sf: u8,

    /// RNode only: coding rate 5 to 8 (4/5 to 4/8).
    #[arg(
        long,
        env = "FIELDMESH_RADIO_CR",
        value_name = "CR",
        default_value_t = mesh::serial::DEFAULT_CODING_RATE,
        value_parser = clap::value_parser!(u8).range(5..=8)
    )]
    pub radio_cr: u8,

    /// RNode only: transmit power in dBm (mind your region's limit).
    #[arg(
        long,
        env = "FIELDMESH_RADIO_TXPOWER",
        value_name = "DBM",
        default_value_t = mesh::serial::DEFAULT_TX_POWER_DBM
    )]
    pub radio_txpower: u8,

    /// How many times other camps may relay a message sent from here (0 to 7).
    #[arg(
        long,
        env = "FIELDMESH_RADIO_HOPS",
        value_name = "HOPS",
        default_value_t = mesh::radio::DEFAULT_HOP_LIMIT,
        value_parser = clap::value_parser!(u8).range(0..=i64::from(mesh::radio::MAX_HOP_LIMIT))
    )]
    pub radio_hops: u8,

    /// Largest radio frame in bytes; longer messages are split into up to 16 frames.
    #[arg(
        long,
        env = "FIELDMESH_RADIO_FRAME_BYTES",
        value_name = "BYTES",
        default_value_t = mesh::radio::DEFAULT_FRAME_BYTES as u16,
        value_parser = clap::value_parser!(u16)
            .range(mesh::radio::MIN_FRAME_BYTES as i64..=mesh::radio::MAX_FRAME_BYTES as i64)
    )]
    pub radio_frame_bytes: u16,

    /// The radio's over-the-air bitrate in bit/s, used to pace rebroadcasts and retries
    /// (5470 is SF7 at 125 kHz; SF9 is about 1760, SF12 about 290). Default: 5470, and 1070
    /// for meshtastic (its default preset, LongFast).
    #[arg(
        long,
        env = "FIELDMESH_RADIO_BITRATE",
        value_name = "BPS",
        value_parser = clap::value_parser!(u32).range(50..=1_000_000)
    )]
    pub radio_bitrate: Option<u32>,

    /// The mesh network key, as its 12 words (or "open" for the open mesh everyone can join).
    /// Every camp of one mesh needs the same key; frames without it are ignored. Default: the
    /// key in the data folder, made when a radio is first configured (see --show-radio-key).
    /// Shows in `ps`: prefer --radio-network-key-file or the environment variable.
    #[arg(long, env = "FIELDMESH_RADIO_NETWORK_KEY", value_name = "WORDS")]
    pub radio_network_key: Option<String>,

    /// Read the mesh network key (12 words, or "open") from the first line of this file.
    #[arg(
        long,
        env = "FIELDMESH_RADIO_NETWORK_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "radio_network_key"
    )]
    pub radio_network_key_file: Option<PathBuf>,

    /// Print the mesh network key as words and a QR code, for the other camps, and exit.
    #[arg(long)]
    pub show_radio_key: bool,

    /// This camp's name, as other camps see it in "delivered to" receipts (at most 24 bytes
    /// go over the radio). Default: this machine's host name.
    #[arg(long, env = "FIELDMESH_CAMP_NAME", value_name = "NAME")]
    pub camp_name: Option<String>,

    /// Link this camp with other camps over IP (federation): the address of a NATS server
    /// with JetStream in a domain (nats://HOST:4222), this camp's own or the hub itself. Use
    /// --federation-hub instead to let FieldMesh run this camp's NATS server.
    #[arg(
        long,
        env = "FIELDMESH_FEDERATION",
        value_name = "URL",
        conflicts_with = "federation_hub"
    )]
    pub federation: Option<String>,

    /// Link this camp with other camps over IP through the hub at this leaf-node address
    /// (nats-leaf://HOST:7422): FieldMesh starts and watches this camp's own NATS leaf server
    /// (Debian's nats-server package), which keeps this camp's messages while the link is down
    /// and catches up when it is back.
    #[arg(long, env = "FIELDMESH_FEDERATION_HUB", value_name = "URL")]
    pub federation_hub: Option<String>,

    /// How this camp logs in to NATS (the hub with --federation-hub, the server of
    /// --federation otherwise): a file with "USER:PASSWORD" on its first line, or a NATS
    /// .creds file.
    #[arg(long, env = "FIELDMESH_FEDERATION_CREDS", value_name = "FILE")]
    pub federation_creds: Option<PathBuf>,

    /// The hub's JetStream domain (its nats-server configuration names it).
    #[arg(
        long,
        env = "FIELDMESH_FEDERATION_DOMAIN",
        value_name = "NAME",
        default_value = "hub"
    )]
    pub federation_domain: String,

    /// Most MB each federation stream keeps (this camp's own, and the hub's of all camps when
    /// this camp makes it); the oldest messages go first.
    #[arg(
        long,
        env = "FIELDMESH_FEDERATION_MAX_MB",
        value_name = "MB",
        default_value_t = 2048,
        value_parser = clap::value_parser!(u32).range(64..=1_048_576)
    )]
    pub federation_max_mb: u32,

    /// The NATS server program --federation-hub starts.
    #[arg(
        long,
        env = "FIELDMESH_NATS_SERVER",
        value_name = "PROGRAM",
        default_value = "nats-server"
    )]
    pub nats_server: PathBuf,

    /// Let a browser with a USB radio (Web Serial) lend it to this server when the server has
    /// none. Needs --join-code: only a device that entered it may lend, since the lender
    /// carries every radio frame of the camp.
    #[arg(long, env = "FIELDMESH_RADIO_LEND")]
    pub radio_lend: bool,

    /// Most connections open at once (the app, WebSockets and the landing page together); the
    /// server also raises its open-file limit to fit them when the system lets it.
    #[arg(
        long,
        env = "FIELDMESH_MAX_CONNECTIONS",
        value_name = "COUNT",
        default_value_t = crate::admit::MAX_CONNECTIONS
    )]
    pub max_connections: usize,

    /// Most connections open at once from one network address.
    #[arg(
        long,
        env = "FIELDMESH_MAX_CONNECTIONS_PER_ADDRESS",
        value_name = "COUNT",
        default_value_t = crate::admit::MAX_CONNECTIONS_PER_ADDRESS
    )]
    pub max_connections_per_address: usize,

    /// How many phones may share one network address (a camp behind one NAT router): every
    /// allowance kept per address (new connections, messages, join-code tries) is this many
    /// times the one-address default. Allowances per device do not change.
    #[arg(
        long,
        env = "FIELDMESH_PHONES_PER_ADDRESS",
        value_name = "COUNT",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub phones_per_address: u32,

    /// A reverse proxy in front of this server (repeat the flag, or separate addresses with
    /// commas): a request from it is limited by the client address the proxy puts last in
    /// `X-Forwarded-For`, and the proxy is not held to --max-connections-per-address. The
    /// header is believed from these addresses only.
    #[arg(
        long = "trusted-proxy",
        env = "FIELDMESH_TRUSTED_PROXY",
        value_name = "ADDRESS",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

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
    /// The radio bridge's settings, when a radio is configured.
    pub fn radio(&self) -> Option<crate::radio::RadioConfig> {
        use mesh::serial::RnodeSettings;
        let path = self.radio.clone()?;
        Some(crate::radio::RadioConfig {
            path,
            baud: self
                .radio_baud
                .unwrap_or(self.radio_protocol.default_baud()),
            protocol: self.radio_protocol,
            rnode: self.radio_frequency.map(|frequency_hz| RnodeSettings {
                frequency_hz,
                bandwidth_hz: self.radio_bandwidth,
                tx_power_dbm: self.radio_txpower,
                spreading_factor: self.radio_sf,
                coding_rate: self.radio_cr,
            }),
            channel: self.meshtastic_channel.clone(),
            frame_bytes: usize::from(self.radio_frame_bytes),
            hop_limit: self.radio_hops,
            bitrate_bps: self
                .radio_bitrate
                .unwrap_or(self.radio_protocol.default_bitrate()),
        })
    }

    /// The federation's settings, when this camp is linked to others.
    pub fn federation(
        &self,
    ) -> Result<Option<crate::federation::FederationConfig>, crate::ServerError> {
        use crate::federation::{leaf::LeafConfig, Credentials, FederationConfig};
        if self.federation.is_none() && self.federation_hub.is_none() {
            if self.federation_creds.is_some() {
                return Err(crate::ServerError::Refused(
                    "--federation-creds needs --federation or --federation-hub".into(),
                ));
            }
            return Ok(None);
        }
        let credentials = self
            .federation_creds
            .as_deref()
            .map(Credentials::load)
            .transpose()?;
        let max_bytes = i64::from(self.federation_max_mb) * 1024 * 1024;
        Ok(Some(FederationConfig {
            url: self.federation.clone().unwrap_or_default(),
            leaf: self.federation_hub.clone().map(|hub| LeafConfig {
                hub,
                credentials: credentials.clone(),
                program: self.nats_server.clone(),
                max_bytes,
            }),
            credentials,
            hub_domain: self.federation_domain.clone(),
            max_bytes,
            room_quota_bytes: u64::from(self.room_quota_mb) * 1024 * 1024,
            camp: self.camp_name(),
        }))
    }

    /// The join code: the flag's, or the first line of the file. `Ok(None)` when none is set.
    pub fn join_code(&self) -> Result<Option<String>, crate::ServerError> {
        let code = match (&self.join_code, &self.join_code_file) {
            (Some(code), _) => code.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|source| crate::ServerError::Io {
                    context: format!("cannot read the join code from {}", file.display()),
                    source,
                })?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            (None, None) => return Ok(None),
        };
        let code = code.trim();
        Ok((!code.is_empty()).then(|| code.to_string()))
    }

    /// Whether this server carries radio frames (its own radio, or a lent one).
    pub fn uses_radio(&self) -> bool {
        self.radio.is_some() || self.radio_lend
    }

    /// The camp's name: the flag, or the host name.
    pub fn camp_name(&self) -> String {
        let name = self
            .camp_name
            .clone()
            .or_else(|| {
                rustix::system::uname()
                    .nodename()
                    .to_str()
                    .ok()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        mesh::body::clean_display_name(&name).unwrap_or_else(|| "FieldMesh camp".into())
    }

    /// The local certificate authority's folder: the flag, or beside the data folder.
    pub fn ca_dir(&self) -> PathBuf {
        self.tls_ca_dir.clone().unwrap_or_else(|| {
            let data = self.data_dir();
            let name = data
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "fieldmesh".into());
            data.with_file_name(format!("{name}-ca"))
        })
    }

    /// What the local certificate authority may vouch for.
    pub fn ca_scope(&self) -> crate::tls::CaScope {
        if self.tls_ca_unconstrained {
            return crate::tls::CaScope::Unconstrained;
        }
        crate::tls::CaScope::Local(crate::tls::clean_hostnames(&self.hostnames))
    }

    /// The data directory: the flag, or the per-user default.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_local_dir()
                .map(|dir| dir.join("fieldmesh"))
                .unwrap_or_else(|| PathBuf::from("fieldmesh-data"))
        })
    }
}
