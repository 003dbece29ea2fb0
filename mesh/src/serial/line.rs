//! Lines: each radio frame is one line of base64 text (the DIY ESP32 sketch sends each line
//! it reads as one LoRa packet, and prints each packet it hears as a line).

use base64::Engine as _;

use super::{FrameError, Framing, Protocol};
use crate::radio::DEFAULT_FRAME_BYTES;

/// Streaming decoder of newline-delimited lines (`\n`, with an optional `\r` before it).
#[derive(Debug)]
pub struct LineDecoder {
    max_line: usize,
    buffer: Vec<u8>,
    skipping: bool,
}

impl LineDecoder {
    /// Bytes held for a frame not complete yet (never more than the limit).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

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
    fn protocol(&self) -> Protocol {
        Protocol::Line
    }

    fn configure(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn encode(&mut self, frame: &[u8]) -> Vec<u8> {
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
    fn line_skips_lines_that_are_not_frames() {
        let mut line = Line::new();
        let mut stream = b"LoRa init ok\n\n!!!!\n".to_vec();
        stream.extend(line.encode(&[1, 2, 3]));
        assert_eq!(line.decode(&stream), vec![vec![1, 2, 3]]);
        assert_eq!(line.dropped(), 2);
    }
}
