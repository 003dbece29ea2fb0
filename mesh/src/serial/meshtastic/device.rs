//! The node's side of the stream, as tests and fakes need it: the answer to a handshake, a
//! packet heard, and what a host wrote. (The full simulated node is `radiosim`'s.)

use prost::Message as _;

use super::proto::{self, from_radio::Payload, to_radio};
use super::{stream, StreamDecoder, BROADCAST, PRIVATE_APP};

fn from_radio(payload: Payload) -> Vec<u8> {
    stream::frame(
        &proto::FromRadio {
            id: 0,
            payload: Some(payload),
        }
        .encode_to_vec(),
    )
}

/// A node's whole answer to the handshake `nonce`: its number `me`, and `channels` by index
/// (the first is the primary; an empty name is the preset's, "LongFast").
pub fn answer(me: u32, channels: &[&str], nonce: u32) -> Vec<u8> {
    let mut bytes = from_radio(Payload::MyInfo(proto::MyNodeInfo { my_node_num: me }));
    for (index, name) in channels.iter().enumerate() {
        bytes.extend(from_radio(Payload::Channel(proto::Channel {
            index: index as i32,
            settings: Some(proto::ChannelSettings {
                psk: vec![1],
                name: name.to_string(),
            }),
            role: if index == 0 { 1 } else { 2 },
        })));
    }
    bytes.extend(from_radio(Payload::ConfigCompleteId(nonce)));
    bytes
}

/// A FieldMesh frame heard from node `from` on channel `channel`, as the node hands it over.
pub fn heard(from: u32, channel: u32, frame: &[u8]) -> Vec<u8> {
    from_radio(Payload::Packet(proto::MeshPacket {
        from,
        to: BROADCAST,
        channel,
        id: from.rotate_left(13) ^ frame.len() as u32,
        hop_limit: 3,
        hop_start: 3,
        payload: Some(proto::mesh_packet::Payload::Decoded(proto::Data {
            portnum: PRIVATE_APP,
            payload: frame.to_vec(),
            want_response: false,
        })),
        ..Default::default()
    }))
}

/// What a host wrote to its node, read as it arrives.
#[derive(Debug, Default)]
pub struct HostWrites {
    decoder: StreamDecoder,
}

impl HostWrites {
    /// The requests `bytes` complete (wake bytes and broken frames skipped).
    pub fn read(&mut self, bytes: &[u8]) -> Vec<to_radio::Payload> {
        self.decoder.push(bytes);
        std::iter::from_fn(|| self.decoder.next_frame())
            .filter_map(|body| proto::ToRadio::decode(body.as_slice()).ok()?.payload)
            .collect()
    }

    /// The FieldMesh frames among `bytes` (the payloads of `PRIVATE_APP` packets).
    pub fn frames(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.read(bytes)
            .into_iter()
            .filter_map(|request| match request {
                to_radio::Payload::Packet(proto::MeshPacket {
                    payload: Some(proto::mesh_packet::Payload::Decoded(data)),
                    ..
                }) if data.portnum == PRIVATE_APP => Some(data.payload),
                _ => None,
            })
            .collect()
    }

    /// The number of the handshake among `bytes`, if one was asked.
    pub fn handshake(&mut self, bytes: &[u8]) -> Option<u32> {
        self.read(bytes)
            .into_iter()
            .find_map(|request| match request {
                to_radio::Payload::WantConfigId(nonce) => Some(nonce),
                _ => None,
            })
    }
}
