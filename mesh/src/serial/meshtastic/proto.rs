//! The few Meshtastic protobuf messages FieldMesh needs, written here with prost from the field
//! numbers the Meshtastic API documentation gives (`mesh.proto`, `channel.proto`,
//! `config.proto`); the official definitions are GPL-3.0 and are not copied. Fields FieldMesh
//! does not read are left out: protobuf skips unknown fields, so a node's fuller messages
//! still decode. Enumerations are read as plain integers, so a number this code does not know
//! (a newer firmware's port or role) is carried, not refused.

/// What a host sends its node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ToRadio {
    /// Which request.
    #[prost(oneof = "to_radio::Payload", tags = "1, 3, 4, 7")]
    pub payload: Option<to_radio::Payload>,
}

/// The variants of [`ToRadio`].
pub mod to_radio {
    /// One request to the node.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        /// A packet to send over the mesh.
        #[prost(message, tag = "1")]
        Packet(super::MeshPacket),
        /// Start of the handshake: the node answers with its state and then this number.
        #[prost(uint32, tag = "3")]
        WantConfigId(u32),
        /// The host is leaving.
        #[prost(bool, tag = "4")]
        Disconnect(bool),
        /// The host is still there.
        #[prost(message, tag = "7")]
        Heartbeat(super::Heartbeat),
    }
}

/// What a node sends its host.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FromRadio {
    /// A number the node gives each message.
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// What it says.
    #[prost(
        oneof = "from_radio::Payload",
        tags = "2, 3, 4, 5, 6, 7, 8, 10, 11, 13"
    )]
    pub payload: Option<from_radio::Payload>,
}

/// The variants of [`FromRadio`].
pub mod from_radio {
    /// One report from the node.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        /// A packet heard (or made) by the node.
        #[prost(message, tag = "2")]
        Packet(super::MeshPacket),
        /// The node's own number.
        #[prost(message, tag = "3")]
        MyInfo(super::MyNodeInfo),
        /// One node of its node list.
        #[prost(message, tag = "4")]
        NodeInfo(super::NodeInfo),
        /// One section of its configuration.
        #[prost(message, tag = "5")]
        Config(super::Config),
        /// A line of its log.
        #[prost(message, tag = "6")]
        LogRecord(super::LogRecord),
        /// The end of the handshake: the number the host asked with.
        #[prost(uint32, tag = "7")]
        ConfigCompleteId(u32),
        /// The node restarted: the host starts the handshake again.
        #[prost(bool, tag = "8")]
        Rebooted(bool),
        /// One of its channels.
        #[prost(message, tag = "10")]
        Channel(super::Channel),
        /// Room in its transmit queue.
        #[prost(message, tag = "11")]
        QueueStatus(super::QueueStatus),
        /// Firmware and hardware.
        #[prost(message, tag = "13")]
        Metadata(super::DeviceMetadata),
    }
}

/// A packet of the mesh.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MeshPacket {
    /// The node that sent it (a host leaves it 0: the node fills in its own).
    #[prost(fixed32, tag = "1")]
    pub from: u32,
    /// Its destination ([`super::BROADCAST`] for everyone).
    #[prost(fixed32, tag = "2")]
    pub to: u32,
    /// The channel's index on this node.
    #[prost(uint32, tag = "3")]
    pub channel: u32,
    /// What it carries.
    #[prost(oneof = "mesh_packet::Payload", tags = "4, 5")]
    pub payload: Option<mesh_packet::Payload>,
    /// Its number, unique per sender (0 from a host: the node picks one).
    #[prost(fixed32, tag = "6")]
    pub id: u32,
    /// When it was heard (Unix seconds).
    #[prost(fixed32, tag = "7")]
    pub rx_time: u32,
    /// Signal to noise ratio of its reception.
    #[prost(float, tag = "8")]
    pub rx_snr: f32,
    /// Hops it may still travel.
    #[prost(uint32, tag = "9")]
    pub hop_limit: u32,
    /// The sender wants an acknowledgement.
    #[prost(bool, tag = "10")]
    pub want_ack: bool,
    /// Received signal strength.
    #[prost(int32, tag = "12")]
    pub rx_rssi: i32,
    /// The hop limit it started with (so hops taken = `hop_start - hop_limit`).
    #[prost(uint32, tag = "15")]
    pub hop_start: u32,
}

/// The variants of [`MeshPacket`]'s payload.
pub mod mesh_packet {
    /// A packet's payload.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        /// Opened with the channel's key.
        #[prost(message, tag = "4")]
        Decoded(super::Data),
        /// Still sealed: the node holds no key for it.
        #[prost(bytes = "vec", tag = "5")]
        Encrypted(Vec<u8>),
    }
}

/// An application's payload inside a packet.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Data {
    /// Which application ([`super::TEXT_MESSAGE_APP`], [`super::PRIVATE_APP`], …).
    #[prost(int32, tag = "1")]
    pub portnum: i32,
    /// Its bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
    /// The sender wants an answer.
    #[prost(bool, tag = "3")]
    pub want_response: bool,
}

/// The node's own number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MyNodeInfo {
    /// Its node number.
    #[prost(uint32, tag = "1")]
    pub my_node_num: u32,
}

/// A node of the node list.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeInfo {
    /// Its number.
    #[prost(uint32, tag = "1")]
    pub num: u32,
    /// Who it is.
    #[prost(message, optional, tag = "2")]
    pub user: Option<User>,
    /// Signal to noise ratio when last heard.
    #[prost(float, tag = "4")]
    pub snr: f32,
    /// When last heard (Unix seconds).
    #[prost(fixed32, tag = "5")]
    pub last_heard: u32,
    /// Hops away when last heard (0: heard directly).
    #[prost(uint32, optional, tag = "9")]
    pub hops_away: Option<u32>,
}

/// A node's owner and names.
#[derive(Clone, PartialEq, prost::Message)]
pub struct User {
    /// Its id as text (`!a1b2c3d4`).
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its long name.
    #[prost(string, tag = "2")]
    pub long_name: String,
    /// Its short name (up to four characters).
    #[prost(string, tag = "3")]
    pub short_name: String,
    /// Its hardware model.
    #[prost(int32, tag = "5")]
    pub hw_model: i32,
    /// Its role (client, router, …).
    #[prost(int32, tag = "7")]
    pub role: i32,
}

/// The host is still there (sent every few minutes, else the node drops it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Heartbeat {
    /// Any number.
    #[prost(uint32, tag = "1")]
    pub nonce: u32,
}

/// One channel of a node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Channel {
    /// Its index (0 to 7).
    #[prost(int32, tag = "1")]
    pub index: i32,
    /// Its name and key.
    #[prost(message, optional, tag = "2")]
    pub settings: Option<ChannelSettings>,
    /// Disabled (0), primary (1) or secondary (2).
    #[prost(int32, tag = "3")]
    pub role: i32,
}

/// A channel's name and key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelSettings {
    /// Its key (one byte: a well-known key; empty: no encryption).
    #[prost(bytes = "vec", tag = "2")]
    pub psk: Vec<u8>,
    /// Its name (empty on the primary: the modem preset's name, such as "LongFast").
    #[prost(string, tag = "3")]
    pub name: String,
}

/// One section of a node's configuration: only the two FieldMesh reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Config {
    /// Which section.
    #[prost(oneof = "config::Section", tags = "1, 6")]
    pub section: Option<config::Section>,
}

/// The sections of [`Config`].
pub mod config {
    /// A configuration section.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Section {
        /// The device's role.
        #[prost(message, tag = "1")]
        Device(super::DeviceConfig),
        /// The LoRa radio's settings.
        #[prost(message, tag = "6")]
        Lora(super::LoRaConfig),
    }
}

/// The device section.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceConfig {
    /// Client (0), client mute (1), router (2), …
    #[prost(int32, tag = "1")]
    pub role: i32,
}

/// The LoRa section.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LoRaConfig {
    /// The modem settings come from a preset.
    #[prost(bool, tag = "1")]
    pub use_preset: bool,
    /// Which preset (0: long range, fast).
    #[prost(int32, tag = "2")]
    pub modem_preset: i32,
    /// The region (0: not set; the node does not transmit).
    #[prost(int32, tag = "7")]
    pub region: i32,
    /// Hops a packet sent from this node may travel.
    #[prost(uint32, tag = "8")]
    pub hop_limit: u32,
    /// The node may transmit.
    #[prost(bool, tag = "9")]
    pub tx_enabled: bool,
}

/// A log line of the node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    /// The line.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Room in the node's transmit queue, after each packet a host hands it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueueStatus {
    /// 0 when the packet was queued, else why not.
    #[prost(int32, tag = "1")]
    pub res: i32,
    /// Free places.
    #[prost(uint32, tag = "2")]
    pub free: u32,
    /// Places in all.
    #[prost(uint32, tag = "3")]
    pub maxlen: u32,
    /// The packet this is about.
    #[prost(uint32, tag = "4")]
    pub mesh_packet_id: u32,
}

/// Firmware and hardware of the node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceMetadata {
    /// Firmware version ("2.6.11.60ec05e").
    #[prost(string, tag = "1")]
    pub firmware_version: String,
    /// Its role.
    #[prost(int32, tag = "7")]
    pub role: i32,
}
