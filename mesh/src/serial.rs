//! Serial framing for radios (issue 6 groundwork): KISS (as RNode firmware and KISS TNCs speak
//! it) and newline-delimited lines (the DIY ESP32 sketch). Pure byte-in, frames-out decoders:
//! a partial frame waits for more bytes, garbage between frames is skipped, every length is
//! bounded before anything grows, and a bad frame is dropped with a resync at the next
//! delimiter.
//!
//! [`Framing`] puts these behind one interface per serial protocol ([`Kiss`], [`Line`]), used by
//! the server's radio link and by the browser's Web Serial radio alike.

use base64::Engine as _;

use crate::radio::DEFAULT_FRAME_BYTES;

/// KISS frame delimiter.
pub const FEND: u8 = 0xC0;
/// KISS escape.
pub const FESC: u8 = 0xDB;
/// Escaped FEND.
pub const TFEND: u8 = 0xDC;
/// Escaped FESC.
pub const TFESC: u8 = 0xDD;

/// KISS command byte of a data frame on port 0.
pub const CMD_DATA: u8 = 0x00;

/// RNode configuration commands (KISS command bytes understood by RNode firmware).
pub mod rnode {
    /// Set the frequency (Hz, 4 bytes big-endian).
    pub const CMD_FREQUENCY: u8 = 0x01;
    /// Set the bandwidth (Hz, 4 bytes big-endian).
    pub const CMD_BANDWIDTH: u8 = 0x02;
    /// Set the transmit power (dBm, 1 byte).
    pub const CMD_TXPOWER: u8 = 0x03;
    /// Set the spreading factor (7–12, 1 byte).
    pub const CMD_SF: u8 = 0x04;
    /// Set the coding rate (5–8 for 4/5–4/8, 1 byte).
    pub const CMD_CR: u8 = 0x05;
    /// Turn the radio on (0x01) or off (0x00).
    pub const CMD_RADIO_STATE: u8 = 0x06;
}

/// A whole KISS frame: its command byte and unescaped payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KissFrame {
    /// Command byte (port in the high nibble, command in the low one).
    pub command: u8,
    /// Unescaped payload.
    pub payload: Vec<u8>,
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

/// Escapes `payload` into a KISS frame with `command`.
pub fn kiss_encode(command: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.push(FEND);
    for &byte in std::iter::once(&command).chain(payload) {
        match byte {
            FEND => out.extend_from_slice(&[FESC, TFEND]),
            FESC => out.extend_from_slice(&[FESC, TFESC]),
            other => out.push(other),
        }
    }
    out.push(FEND);
    out
}

/// The RNode configuration frames for one radio setting, in the order to send them.
pub fn rnode_configure(
    frequency_hz: u32,
    bandwidth_hz: u32,
    tx_power_dbm: u8,
    spreading_factor: u8,
    coding_rate: u8,
) -> Vec<Vec<u8>> {
    vec![
        kiss_encode(rnode::CMD_FREQUENCY, &frequency_hz.to_be_bytes()),
        kiss_encode(rnode::CMD_BANDWIDTH, &bandwidth_hz.to_be_bytes()),
        kiss_encode(rnode::CMD_TXPOWER, &[tx_power_dbm]),
        kiss_encode(rnode::CMD_SF, &[spreading_factor]),
        kiss_encode(rnode::CMD_CR, &[coding_rate]),
        kiss_encode(rnode::CMD_RADIO_STATE, &[0x01]),
    ]
}

/// Streaming KISS decoder.
#[derive(Debug)]
pub struct KissDecoder {
    max_payload: usize,
    buffer: Vec<u8>,
    in_frame: bool,
    escaped: bool,
    /// Inside an oversized or broken frame: skip to the next FEND.
    skipping: bool,
}

impl KissDecoder {
    /// A decoder that drops frames with more than `max_payload` bytes (command byte included).
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload,
            buffer: Vec::new(),
            in_frame: false,
            escaped: false,
            skipping: false,
        }
    }

    /// Feeds bytes; returns each frame completed (or dropped) by them, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<KissFrame, FrameError>> {
        let mut out = Vec::new();
        for &byte in bytes {
            if byte == FEND {
                if self.in_frame && !self.skipping && !self.buffer.is_empty() {
                    let command = self.buffer[0];
                    let payload = self.buffer[1..].to_vec();
                    out.push(Ok(KissFrame { command, payload }));
                }
                // Every FEND starts a new frame (back-to-back FENDs are empty frames).
                self.buffer.clear();
                self.in_frame = true;
                self.escaped = false;
                self.skipping = false;
                continue;
            }
            if !self.in_frame || self.skipping {
                continue; // garbage between frames, or the rest of a dropped one
            }
            let byte = if self.escaped {
                self.escaped = false;
                match byte {
                    TFEND => FEND,
                    TFESC => FESC,
                    _ => {
                        self.skipping = true;
                        self.buffer.clear();
                        out.push(Err(FrameError::BadEscape));
                        continue;
                    }
                }
            } else if byte == FESC {
                self.escaped = true;
                continue;
            } else {
                byte
            };
            if self.buffer.len() >= self.max_payload {
                self.skipping = true;
                self.buffer.clear();
                out.push(Err(FrameError::TooLong(self.max_payload)));
                continue;
            }
            self.buffer.push(byte);
        }
        out
    }
}

/// Streaming decoder of newline-delimited lines (`\n`, with an optional `\r` before it).
#[derive(Debug)]
pub struct LineDecoder {
    max_line: usize,
    buffer: Vec<u8>,
    skipping: bool,
}

impl LineDecoder {
    /// A decoder that drops lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            buffer: Vec::new(),
            skipping: false,
        }
    }

    /// Feeds bytes; returns each non-empty line completed (or dropped) by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                if !self.skipping {
                    let mut line = std::mem::take(&mut self.buffer);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if !line.is_empty() {
                        out.push(Ok(line));
                    }
                }
                self.buffer.clear();
                self.skipping = false;
            } else if !self.skipping {
                if self.buffer.len() >= self.max_line {
                    self.skipping = true;
                    self.buffer.clear();
                    out.push(Err(FrameError::TooLong(self.max_line)));
                } else {
                    self.buffer.push(byte);
                }
            }
        }
        out
    }
}

// ---- Framings: radio frames to serial bytes and back, one per protocol. ----

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
            decoder: KissDecoder::new(crate::radio::MAX_FRAME_BYTES + 1),
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

    fn frames(results: Vec<Result<KissFrame, FrameError>>) -> Vec<KissFrame> {
        results.into_iter().map(Result::unwrap).collect()
    }

    #[test]
    fn kiss_round_trips_payloads_with_delimiters_inside() {
        let payload = vec![1, FEND, 2, FESC, 3, FEND, FESC];
        let encoded = kiss_encode(CMD_DATA, &payload);
        assert!(!encoded[1..encoded.len() - 1].contains(&FEND));
        let mut decoder = KissDecoder::new(255);
        assert_eq!(
            frames(decoder.push(&encoded)),
            [KissFrame {
                command: CMD_DATA,
                payload
            }]
        );
    }

    #[test]
    fn a_partial_frame_waits_for_the_rest_byte_by_byte() {
        let encoded = kiss_encode(CMD_DATA, b"hello mesh");
        let mut decoder = KissDecoder::new(255);
        for &byte in &encoded[..encoded.len() - 1] {
            assert!(decoder.push(&[byte]).is_empty());
        }
        assert_eq!(frames(decoder.push(&[FEND]))[0].payload, b"hello mesh");
    }

    #[test]
    fn garbage_between_frames_is_skipped() {
        let mut stream = b"boot log: ESP32 ready\r\n".to_vec();
        stream.extend(kiss_encode(CMD_DATA, b"one"));
        stream.extend([0x55, 0xAA, 0x13]);
        stream.extend(kiss_encode(CMD_DATA, b"two"));
        let got = frames(KissDecoder::new(255).push(&stream));
        // Bytes before the first FEND never form a frame; bytes between two frames do (KISS
        // has no other delimiter), with a command byte that is not a data frame, which readers
        // ignore.
        let payloads: Vec<&[u8]> = got
            .iter()
            .filter(|f| f.command == CMD_DATA)
            .map(|f| f.payload.as_slice())
            .collect();
        assert_eq!(payloads, [b"one".as_slice(), b"two".as_slice()]);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn oversize_and_bad_escapes_are_dropped_and_the_next_frame_still_decodes() {
        let mut stream = kiss_encode(CMD_DATA, &[7; 300]);
        stream.extend([FEND, CMD_DATA, FESC, 0x01, 9, 9, FEND]);
        stream.extend(kiss_encode(CMD_DATA, b"after"));
        let results = KissDecoder::new(64).push(&stream);
        assert_eq!(results[0], Err(FrameError::TooLong(64)));
        assert_eq!(results[1], Err(FrameError::BadEscape));
        assert_eq!(results[2].as_ref().unwrap().payload, b"after");
        assert_eq!(results.len(), 3);
    }

    #[test]
    fn rnode_configuration_frames_carry_big_endian_values() {
        let frames = rnode_configure(868_100_000, 125_000, 14, 9, 5);
        assert_eq!(frames.len(), 6);
        let mut decoder = KissDecoder::new(16);
        let decoded: Vec<KissFrame> = frames
            .iter()
            .flat_map(|f| decoder.push(f))
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            decoded[0],
            KissFrame {
                command: rnode::CMD_FREQUENCY,
                payload: 868_100_000u32.to_be_bytes().to_vec()
            }
        );
        assert_eq!(
            decoded[5],
            KissFrame {
                command: rnode::CMD_RADIO_STATE,
                payload: vec![1]
            }
        );
    }

    #[test]
    fn lines_split_on_newlines_drop_carriage_returns_and_bound_their_length() {
        let mut decoder = LineDecoder::new(8);
        assert!(decoder.push(b"hel").is_empty());
        let got = decoder.push(b"lo\r\n\nabcdefghijk\nok\n");
        assert_eq!(
            got,
            [
                Ok(b"hello".to_vec()),
                Err(FrameError::TooLong(8)),
                Ok(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_grow_past_the_limit() {
        // A small deterministic fuzz: every byte value in many arrangements.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut kiss = KissDecoder::new(32);
        let mut lines = LineDecoder::new(32);
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let chunk = state.to_le_bytes();
            for frame in kiss.push(&chunk).into_iter().flatten() {
                assert!(frame.payload.len() < 32);
            }
            for line in lines.push(&chunk).into_iter().flatten() {
                assert!(line.len() <= 32);
            }
            assert!(kiss.buffer.len() <= 32 && lines.buffer.len() <= 32);
        }
    }
}
