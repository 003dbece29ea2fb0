//! KISS, as RNode firmware and KISS TNCs speak it: `FEND command payload FEND`, with FEND and
//! FESC escaped inside.

use super::{FrameError, Framing, Protocol, RnodeSettings};
use crate::radio::{DEFAULT_FRAME_BYTES, MAX_FRAME_BYTES};

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
    /// Bytes held for a frame not complete yet (never more than the limit).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

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
            decoder: KissDecoder::new(MAX_FRAME_BYTES + 1),
            rnode,
            dropped: 0,
        }
    }
}

impl Framing for Kiss {
    fn protocol(&self) -> Protocol {
        Protocol::Kiss
    }

    fn configure(&mut self) -> Vec<Vec<u8>> {
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

    fn encode(&mut self, frame: &[u8]) -> Vec<u8> {
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
        let frames = Kiss::new(Some(RnodeSettings::new(868_100_000))).configure();
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[0], kiss_encode(0x01, &868_100_000u32.to_be_bytes()));
        assert_eq!(frames[5], kiss_encode(0x06, &[1]));
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_grow_past_the_limit() {
        // A small deterministic fuzz: every byte value in many arrangements.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut kiss = KissDecoder::new(32);
        let mut lines = crate::serial::LineDecoder::new(32);
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
            assert!(kiss.buffered() <= 32 && lines.buffered() <= 32);
        }
    }
}
