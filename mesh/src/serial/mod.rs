//! How radio frames travel over a serial line (USB to an ESP32 or an RNode): one [`Framing`]
//! per serial [`Protocol`], used by the server's serial link and the page's Web Serial radio
//! alike. Pure byte-in, frames-out decoders: a partial frame waits for more bytes, garbage
//! between frames is skipped, every length is bounded before anything grows, and a bad frame
//! is dropped with a resync at the next delimiter.
//!
//! - [`Kiss`] (module [`kiss`]): KISS framing, as RNode firmware and KISS TNCs speak it, with
//!   optional RNode configuration on open.
//! - [`Line`] (module [`line`]): one base64 line per frame, for the DIY sketch.

pub mod kiss;
pub mod line;

use std::fmt;
use std::str::FromStr;

pub use kiss::{kiss_encode, rnode, rnode_configure, Kiss, KissDecoder, KissFrame, CMD_DATA};
pub use line::{Line, LineDecoder, MAX_LINE_BYTES};

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
}

impl Protocol {
    /// Every protocol, in the order a picker shows them.
    pub const ALL: [Protocol; 2] = [Protocol::Kiss, Protocol::Line];

    /// The name in flags, settings and status lines: `kiss` or `line`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Kiss => "kiss",
            Protocol::Line => "line",
        }
    }

    /// What a person picks: the name and what speaks it.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Kiss => "KISS (RNode, KISS TNC)",
            Protocol::Line => "Lines (DIY sketch)",
        }
    }

    /// How people call it in a sentence: "KISS" or "lines".
    pub fn short_label(self) -> &'static str {
        match self {
            Protocol::Kiss => "KISS",
            Protocol::Line => "lines",
        }
    }

    /// The usual serial speed of radios speaking it.
    pub fn default_baud(self) -> u32 {
        match self {
            Protocol::Kiss => 115_200,
            Protocol::Line => 9600,
        }
    }

    /// The framing for this protocol; `rnode` configures an RNode on open (`kiss` only).
    pub fn framing(self, rnode: Option<RnodeSettings>) -> Box<dyn Framing> {
        match self {
            Protocol::Kiss => Box::new(Kiss::new(rnode)),
            Protocol::Line => Box::new(Line::new()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name that is neither `kiss` nor `line`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown radio protocol {0:?}: expected kiss or line")]
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
    /// What to write after opening the port.
    fn configure(&self) -> Vec<Vec<u8>>;
    /// The serial bytes for one radio frame.
    fn encode(&self, frame: &[u8]) -> Vec<u8>;
    /// Feeds serial bytes; returns the radio frames they complete. Garbage and oversize input
    /// is skipped and counted in [`Framing::dropped`].
    fn decode(&mut self, bytes: &[u8]) -> Vec<Vec<u8>>;
    /// Largest radio frame this protocol carries.
    fn max_frame(&self) -> usize;
    /// Frames dropped as garbage so far.
    fn dropped(&self) -> u64;
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
        for protocol in Protocol::ALL {
            let make = || protocol.framing(None);
            let a = frame(3, 40);
            let b = frame(7, 120);
            let f = make();
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
        assert!("meshtastic".parse::<Protocol>().is_err());
        assert_eq!(Protocol::Kiss.default_baud(), 115_200);
        assert_eq!(Protocol::Line.default_baud(), 9600);
        assert_eq!(Protocol::default(), Protocol::Kiss);
    }
}
