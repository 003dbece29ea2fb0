//! How radio frames travel over the serial line, one type per protocol behind [`Framing`].

use base64::Engine as _;
use mesh::radio::DEFAULT_FRAME_BYTES;
use mesh::serial::{kiss_encode, rnode_configure, KissDecoder, LineDecoder, CMD_DATA};

/// The serial protocols a radio may speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// KISS framing (RNode firmware, KISS TNCs).
    Kiss,
    /// One base64 frame per text line (the DIY ESP32 sketch).
    Line,
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

/// One serial protocol: turns radio frames into serial bytes and back.
pub trait Framing: Send {
    /// The protocol's name, for the status line.
    fn name(&self) -> &'static str;
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

/// Makes the framing for `protocol`.
pub fn framing(protocol: Protocol, rnode: Option<RnodeSettings>) -> Box<dyn Framing> {
    match protocol {
        Protocol::Kiss => Box::new(Kiss::new(rnode)),
        Protocol::Line => Box::new(Line::new()),
    }
}

/// KISS: `FEND command payload FEND`, with FEND/FESC escaped.
pub struct Kiss {
    decoder: KissDecoder,
    rnode: Option<RnodeSettings>,
    dropped: u64,
}

impl Kiss {
    /// A KISS framing; with `rnode`, the radio is configured on open.
    pub fn new(rnode: Option<RnodeSettings>) -> Self {
        Self {
            // A LoRa frame is at most 255 bytes; one more for the command byte.
            decoder: KissDecoder::new(mesh::radio::MAX_FRAME_BYTES + 1),
            rnode,
            dropped: 0,
        }
    }
}

impl Framing for Kiss {
    fn name(&self) -> &'static str {
        "kiss"
    }

    fn configure(&self) -> Vec<Vec<u8>> {
        self.rnode
            .map(|r| {
                rnode_configure(
                    r.frequency_hz,
                    r.bandwidth_hz,
                    r.tx_power_dbm,
                    r.spreading_factor,
                    r.coding_rate,
                )
            })
            .unwrap_or_default()
    }

    fn encode(&self, frame: &[u8]) -> Vec<u8> {
        kiss_encode(CMD_DATA, frame)
    }

    fn decode(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for frame in self.decoder.push(bytes) {
            match frame {
                // Data on port 0; RNode also reports its settings and signal figures with
                // other command bytes, which carry no messages.
                Ok(frame) if frame.command == CMD_DATA => out.push(frame.payload),
                Ok(_) => {}
                Err(_) => self.dropped += 1,
            }
        }
        out
    }

    fn max_frame(&self) -> usize {
        DEFAULT_FRAME_BYTES
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Longest line read from a `line` radio: a base64 frame plus room for a debug message.
pub const MAX_LINE_BYTES: usize = 512;

/// Lines: each radio frame is one line of base64 text, which a DIY sketch sends over LoRa as
/// it is. Lines that are not base64 (a sketch's debug output) are skipped.
pub struct Line {
    decoder: LineDecoder,
    dropped: u64,
}

impl Line {
    /// A line framing.
    pub fn new() -> Self {
        Self {
            decoder: LineDecoder::new(MAX_LINE_BYTES),
            dropped: 0,
        }
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

const LINE_BASE64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::STANDARD_NO_PAD;

impl Framing for Line {
    fn name(&self) -> &'static str {
        "line"
    }

    fn configure(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn encode(&self, frame: &[u8]) -> Vec<u8> {
        // A newline first ends whatever half line the radio may hold (noise, a reset), so
        // the frame always starts a line of its own.
        let mut line = vec![b'\n'];
        line.extend(LINE_BASE64.encode(frame).into_bytes());
        line.push(b'\n');
        line
    }

    fn decode(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for line in self.decoder.push(bytes) {
            match line.map(|line| LINE_BASE64.decode(line.trim_ascii())) {
                Ok(Ok(frame)) if !frame.is_empty() && frame.len() <= self.max_frame() => {
                    out.push(frame)
                }
                _ => self.dropped += 1,
            }
        }
        out
    }

    fn max_frame(&self) -> usize {
        // The sketch sends the text line over the air: 233 text bytes carry 174 bytes.
        DEFAULT_FRAME_BYTES * 3 / 4
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(n) ^ 0xC0).collect()
    }

    /// The framing unit tests every protocol passes: whole frames, frames split anywhere,
    /// garbage before and between, oversize input, and resync after it.
    fn contract(mut make: impl FnMut() -> Box<dyn Framing>) {
        let a = frame(3, 40);
        let b = frame(7, 120);
        // Whole frames, back to back.
        let mut f = make();
        let mut bytes = f.encode(&a);
        bytes.extend(f.encode(&b));
        assert_eq!(f.decode(&bytes), vec![a.clone(), b.clone()]);
        // Split at every position: a partial frame waits for the rest.
        for cut in 0..bytes.len() {
            let mut f = make();
            let mut got = f.decode(&bytes[..cut]);
            got.extend(f.decode(&bytes[cut..]));
            assert_eq!(got, vec![a.clone(), b.clone()], "cut at {cut}");
        }
        // Garbage before and between frames is skipped.
        let mut f = make();
        let mut noisy = b"boot: rst:0x1 (POWERON)\r\n\xff\xfe".to_vec();
        noisy.extend(f.encode(&a));
        noisy.extend(b"\x01\x02 noise \n");
        noisy.extend(f.encode(&b));
        assert_eq!(f.decode(&noisy), vec![a.clone(), b.clone()]);
        // Oversize input is dropped and the next frame still decodes.
        let mut f = make();
        let mut huge = f.encode(&vec![0x41; 4000]);
        huge.extend(f.encode(&a));
        assert_eq!(f.decode(&huge), vec![a.clone()]);
        assert!(f.dropped() >= 1);
        // Empty input yields nothing.
        assert!(make().decode(&[]).is_empty());
    }

    #[test]
    fn kiss_framing_keeps_the_contract() {
        contract(|| Box::new(Kiss::new(None)));
    }

    #[test]
    fn line_framing_keeps_the_contract() {
        contract(|| Box::new(Line::new()));
    }

    #[test]
    fn kiss_escapes_delimiters_and_skips_other_commands() {
        let mut kiss = Kiss::new(None);
        let bytes = kiss.encode(&[0xC0, 0xDB, 1]);
        assert_eq!(bytes, vec![0xC0, 0, 0xDB, 0xDC, 0xDB, 0xDD, 1, 0xC0]);
        let mut stream = kiss_encode(0x23, &[1, 2]); // an RNode signal report
        stream.extend(&bytes);
        assert_eq!(kiss.decode(&stream), vec![vec![0xC0, 0xDB, 1]]);
    }

    #[test]
    fn kiss_configures_an_rnode_only_when_asked() {
        assert!(Kiss::new(None).configure().is_empty());
        let settings = RnodeSettings {
            frequency_hz: 868_100_000,
            bandwidth_hz: 125_000,
            tx_power_dbm: 14,
            spreading_factor: 9,
            coding_rate: 5,
        };
        let frames = Kiss::new(Some(settings)).configure();
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[0], kiss_encode(0x01, &868_100_000u32.to_be_bytes()));
        assert_eq!(frames[5], kiss_encode(0x06, &[1]));
    }

    #[test]
    fn line_skips_lines_that_are_not_frames() {
        let mut line = Line::new();
        let mut stream = b"LoRa init ok\n\n!!!!\n".to_vec();
        stream.extend(line.encode(&[1, 2, 3]));
        assert_eq!(line.decode(&stream), vec![vec![1, 2, 3]]);
        assert_eq!(line.dropped(), 2);
    }
}
