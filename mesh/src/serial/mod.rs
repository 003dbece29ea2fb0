//! How radio frames travel over a serial line (USB to an ESP32 or an RNode): one [`Framing`]
//! per serial [`Protocol`], used by the server's serial link and the page's Web Serial radio
//! alike. Pure byte-in, frames-out decoders: a partial frame waits for more bytes, garbage
//! between frames is skipped, every length is bounded before anything grows, and a bad frame
//! is dropped with a resync at the next delimiter.
//!
//! - [`Kiss`] (module [`kiss`]): KISS framing, as RNode firmware and KISS TNCs speak it, with
//!   optional RNode configuration on open.
//! - [`Line`] (module [`line`]): one base64 line per frame, for the DIY sketch.
//! - [`Meshtastic`] (module [`meshtastic`]): a stock Meshtastic node's API, with its
//!   handshake and heartbeat; frames travel as its `PRIVATE_APP` packets.

pub mod kiss;
pub mod line;
pub mod meshtastic;

use std::fmt;
use std::str::FromStr;

pub use kiss::{kiss_encode, rnode, rnode_configure, Kiss, KissDecoder, KissFrame, CMD_DATA};
pub use line::{Line, LineDecoder, MAX_LINE_BYTES};
pub use meshtastic::{ChannelChoice, ChannelText, Meshtastic};

/// RNode defaults: 125 kHz bandwidth.
pub const DEFAULT_BANDWIDTH_HZ: u32 = 125_000;
/// RNode defaults: spreading factor 9.
pub const DEFAULT_SPREADING_FACTOR: u8 = 9;
/// RNode defaults: coding rate 4/5.
pub const DEFAULT_CODING_RATE: u8 = 5;
/// RNode defaults: 14 dBm.
pub const DEFAULT_TX_POWER_DBM: u8 = 14;

/// The serial protocols a radio may speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// KISS framing (RNode firmware, KISS TNCs).
    #[default]
    Kiss,
    /// One base64 frame per text line (the DIY ESP32 sketch).
    Line,
    /// A stock Meshtastic node's API (over serial or TCP).
    Meshtastic,
}

impl Protocol {
    /// Every protocol, in the order a picker shows them.
    pub const ALL: [Protocol; 3] = [Protocol::Kiss, Protocol::Line, Protocol::Meshtastic];

    /// The name in flags, settings and status lines: `kiss`, `line` or `meshtastic`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Kiss => "kiss",
            Protocol::Line => "line",
            Protocol::Meshtastic => "meshtastic",
        }
    }

    /// What a person picks: the name and what speaks it.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Kiss => "KISS (RNode, KISS TNC)",
            Protocol::Line => "Lines (DIY sketch)",
            Protocol::Meshtastic => "Meshtastic (stock firmware)",
        }
    }

    /// How people call it in a sentence: "KISS", "lines" or "Meshtastic".
    pub fn short_label(self) -> &'static str {
        match self {
            Protocol::Kiss => "KISS",
            Protocol::Line => "lines",
            Protocol::Meshtastic => "Meshtastic",
        }
    }

    /// The usual serial speed of radios speaking it.
    pub fn default_baud(self) -> u32 {
        match self {
            Protocol::Kiss | Protocol::Meshtastic => 115_200,
            Protocol::Line => 9600,
        }
    }

    /// The over-the-air bitrate FieldMesh paces itself by when none is given.
    pub fn default_bitrate(self) -> u32 {
        match self {
            Protocol::Kiss | Protocol::Line => crate::radio::DEFAULT_BITRATE_BPS,
            Protocol::Meshtastic => meshtastic::LONG_FAST_BITRATE_BPS,
        }
    }

    /// The framing for this protocol with `settings`.
    pub fn framing(self, settings: &SerialSettings) -> Box<dyn Framing> {
        match self {
            Protocol::Kiss => Box::new(Kiss::new(settings.rnode)),
            Protocol::Line => Box::new(Line::new()),
            Protocol::Meshtastic => {
                Box::new(Meshtastic::new(settings.channel.clone(), settings.seed))
            }
        }
    }
}

/// What a framing needs beside its protocol.
#[derive(Clone, Debug, Default)]
pub struct SerialSettings {
    /// RNode settings sent on open (`kiss` only).
    pub rnode: Option<RnodeSettings>,
    /// The Meshtastic channel carrying FieldMesh's frames (`meshtastic` only).
    pub channel: ChannelChoice,
    /// Something random, for handshake numbers and packet ids (`meshtastic` only).
    pub seed: u64,
}

/// Whether a radio is ready for frames (a protocol with a handshake is not at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The handshake is under way.
    Waiting,
    /// Ready; the sentence, if any, says what the radio reported of itself.
    Ready(Option<String>),
    /// The radio answered but cannot carry FieldMesh as it is set up; the sentence says why
    /// and what to change.
    Refused(String),
}

/// Why plain text cannot go out on a radio's channel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing to send.
    #[error("the message is empty")]
    Empty,
    /// Over [`meshtastic::MAX_TEXT_BYTES`].
    #[error("the message is {0} bytes; a Meshtastic channel takes at most 200")]
    TooLong(usize),
    /// The radio is not connected, or has no such channel.
    #[error("the radio is not ready")]
    NotReady,
    /// The radio carries FieldMesh's frames only (KISS, lines).
    #[error("this radio carries no plain text")]
    Unsupported,
}

/// What a radio reports besides frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// Plain Meshtastic text heard on FieldMesh's channel.
    Text(ChannelText),
    /// Something the operator should know (logged; shown on the radio line while not ready).
    Problem(String),
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name that is none of `kiss`, `line` and `meshtastic`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown radio protocol {0:?}: expected kiss, line or meshtastic")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownProtocol(name.to_string()))
    }
}

/// RNode radio settings sent after opening a `kiss` port (only when a frequency is set: a
/// plain KISS TNC reads these command bytes as its own settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnodeSettings {
    /// Centre frequency in Hz.
    pub frequency_hz: u32,
    /// Bandwidth in Hz.
    pub bandwidth_hz: u32,
    /// Transmit power in dBm.
    pub tx_power_dbm: u8,
    /// Spreading factor (7–12).
    pub spreading_factor: u8,
    /// Coding rate denominator (5–8 for 4/5–4/8).
    pub coding_rate: u8,
}

impl RnodeSettings {
    /// The default settings at `frequency_hz`.
    pub fn new(frequency_hz: u32) -> Self {
        Self {
            frequency_hz,
            bandwidth_hz: DEFAULT_BANDWIDTH_HZ,
            tx_power_dbm: DEFAULT_TX_POWER_DBM,
            spreading_factor: DEFAULT_SPREADING_FACTOR,
            coding_rate: DEFAULT_CODING_RATE,
        }
    }
}

/// Why a frame was dropped. The decoder has already resynchronised; the caller counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than the limit: dropped up to the next delimiter.
    #[error("frame longer than {0} bytes")]
    TooLong(usize),
    /// An escape byte followed by something that is not an escaped delimiter.
    #[error("bad escape sequence")]
    BadEscape,
}

/// One serial protocol: turns radio frames into serial bytes and back.
pub trait Framing: Send {
    /// Which protocol this is.
    fn protocol(&self) -> Protocol;
    /// What to write after opening the port (it starts a handshake afresh).
    fn configure(&mut self) -> Vec<Vec<u8>>;
    /// The serial bytes for one radio frame (none: the radio cannot take it now).
    fn encode(&mut self, frame: &[u8]) -> Vec<u8>;
    /// Feeds serial bytes; returns the radio frames they complete. Garbage and oversize input
    /// is skipped and counted in [`Framing::dropped`].
    fn decode(&mut self, bytes: &[u8]) -> Vec<Vec<u8>>;
    /// Largest radio frame this protocol carries.
    fn max_frame(&self) -> usize;
    /// Frames dropped as garbage so far.
    fn dropped(&self) -> u64;
    /// Whether the radio takes frames yet (at once, unless the protocol has a handshake).
    fn readiness(&self) -> Readiness {
        Readiness::Ready(None)
    }
    /// What to write now (a heartbeat, a handshake asked again); called about once a second
    /// with the wall clock while the port is open.
    fn tick(&mut self, _now_ms: u64) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// Whether FieldMesh floods its frames on this link itself; not where the radio network
    /// floods every packet by its own rules (then FieldMesh sends with hop limit 0 and keeps
    /// only its confirmations and retries).
    fn floods(&self) -> bool {
        true
    }
    /// What the radio reported besides frames since last asked.
    fn take_events(&mut self) -> Vec<DeviceEvent> {
        Vec::new()
    }
    /// The name of the channel plain text goes to and comes from, once known (Meshtastic).
    fn text_channel(&self) -> Option<String> {
        None
    }
    /// The serial bytes for plain text on the radio's channel (Meshtastic only).
    fn encode_text(&mut self, _text: &str) -> Result<Vec<u8>, TextError> {
        Err(TextError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(n) ^ 0xC0).collect()
    }

    /// What every framing does: whole frames, frames split anywhere, garbage before and
    /// between, oversize input, and resync after it.
    #[test]
    fn every_framing_keeps_the_contract() {
        for protocol in [Protocol::Kiss, Protocol::Line] {
            let make = || protocol.framing(&SerialSettings::default());
            let a = frame(3, 40);
            let b = frame(7, 120);
            let mut f = make();
            assert_eq!(f.protocol(), protocol);
            let mut bytes = f.encode(&a);
            bytes.extend(f.encode(&b));
            assert_eq!(make().decode(&bytes), vec![a.clone(), b.clone()]);
            // Split at every position: a partial frame waits for the rest.
            for cut in 0..bytes.len() {
                let mut f = make();
                let mut got = f.decode(&bytes[..cut]);
                got.extend(f.decode(&bytes[cut..]));
                assert_eq!(got, vec![a.clone(), b.clone()], "{protocol}: cut at {cut}");
            }
            let mut f = make();
            let mut noisy = b"boot: rst:0x1 (POWERON)\r\n\xff\xfe".to_vec();
            noisy.extend(f.encode(&a));
            noisy.extend(b"\x01\x02 noise \n");
            noisy.extend(f.encode(&b));
            assert_eq!(f.decode(&noisy), vec![a.clone(), b.clone()], "{protocol}");
            let mut f = make();
            let mut huge = f.encode(&vec![0x41; 4000]);
            huge.extend(f.encode(&a));
            assert_eq!(f.decode(&huge), vec![a.clone()], "{protocol}");
            assert!(f.dropped() >= 1);
            assert!(make().decode(&[]).is_empty());
        }
    }

    #[test]
    fn protocols_parse_by_name_and_say_their_speed() {
        for protocol in Protocol::ALL {
            assert_eq!(protocol.name().parse::<Protocol>(), Ok(protocol));
            assert_eq!(protocol.to_string(), protocol.name());
        }
        assert_eq!(" KISS ".parse::<Protocol>(), Ok(Protocol::Kiss));
        assert_eq!("Meshtastic".parse::<Protocol>(), Ok(Protocol::Meshtastic));
        assert!("rnode".parse::<Protocol>().is_err());
        assert_eq!(Protocol::Kiss.default_baud(), 115_200);
        assert_eq!(Protocol::Line.default_baud(), 9600);
        assert_eq!(Protocol::default(), Protocol::Kiss);
    }
}
