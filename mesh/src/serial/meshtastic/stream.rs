//! Meshtastic's stream framing, over serial and TCP alike: `0x94 0xC3`, a big-endian 16-bit
//! length of at most 512, then that many bytes of protobuf. Bytes outside frames are the
//! node's debug text and are skipped.

/// First byte of a frame.
pub const START1: u8 = 0x94;
/// Second byte of a frame; a run of it wakes a sleeping node.
pub const START2: u8 = 0xC3;
/// Largest protobuf a frame carries.
pub const MAX_PROTO_BYTES: usize = 512;
/// Bytes before the protobuf.
pub const HEADER_BYTES: usize = 4;

/// One frame around `proto` (at most [`MAX_PROTO_BYTES`]; the caller's messages are far
/// smaller, and a longer one is cut rather than sent with a wrong length).
pub fn frame(proto: &[u8]) -> Vec<u8> {
    let proto = &proto[..proto.len().min(MAX_PROTO_BYTES)];
    let mut out = Vec::with_capacity(HEADER_BYTES + proto.len());
    out.extend([START1, START2]);
    out.extend((proto.len() as u16).to_be_bytes());
    out.extend(proto);
    out
}

/// Streaming decoder of frames. Holds at most one frame's worth of bytes beyond what it was
/// last given.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buffer: Vec<u8>,
    dropped: u64,
}

impl StreamDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; take the frames they complete with [`StreamDecoder::next_frame`].
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame's protobuf, if one is complete. Text before it is dropped; a
    /// length over the limit drops the header and looks for the next frame.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            let Some(start) = self.buffer.iter().position(|&b| b == START1) else {
                self.buffer.clear();
                return None;
            };
            self.buffer.drain(..start);
            if self.buffer.len() < 2 {
                return None;
            }
            if self.buffer[1] != START2 {
                self.buffer.remove(0);
                continue;
            }
            if self.buffer.len() < HEADER_BYTES {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([self.buffer[2], self.buffer[3]]));
            if len > MAX_PROTO_BYTES {
                self.dropped += 1;
                self.buffer.drain(..2);
                continue;
            }
            if self.buffer.len() < HEADER_BYTES + len {
                return None;
            }
            let proto = self.buffer[HEADER_BYTES..HEADER_BYTES + len].to_vec();
            self.buffer.drain(..HEADER_BYTES + len);
            return Some(proto);
        }
    }

    /// A frame's protobuf that did not decode: counted, and its bytes looked through again,
    /// since a frame cut short (a node restarting mid-frame) swallows the start of the next.
    pub fn reject(&mut self, proto: Vec<u8>) {
        self.dropped += 1;
        let rest = std::mem::replace(&mut self.buffer, proto);
        self.buffer.extend(rest);
    }

    /// Frames dropped so far (oversize, or rejected).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes held for a frame not complete yet.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decoder: &mut StreamDecoder) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    #[test]
    fn frames_come_out_whole_when_split_anywhere_and_text_between_is_skipped() {
        let mut bytes = b"INFO | ??:??:?? 3 [Router] boot\r\n".to_vec();
        bytes.extend(frame(b"first"));
        bytes.extend([0x94, 0x00, 0xC3, b'x']);
        bytes.extend(frame(&[START1, START2, 0, 9]));
        bytes.extend(frame(b""));
        let want = vec![b"first".to_vec(), vec![START1, START2, 0, 9], Vec::new()];
        for cut in 0..bytes.len() {
            let mut decoder = StreamDecoder::new();
            decoder.push(&bytes[..cut]);
            let mut got = all(&mut decoder);
            decoder.push(&bytes[cut..]);
            got.extend(all(&mut decoder));
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn a_length_over_the_limit_is_dropped_and_the_next_frame_still_arrives() {
        let mut bytes = vec![START1, START2, 0x02, 0x01];
        bytes.extend([0x41; 600]);
        bytes.extend(frame(b"after"));
        let mut decoder = StreamDecoder::new();
        decoder.push(&bytes);
        assert_eq!(all(&mut decoder), vec![b"after".to_vec()]);
        assert_eq!(decoder.dropped(), 1);
    }

    #[test]
    fn a_rejected_frame_is_looked_through_again_for_the_frame_it_swallowed() {
        // A frame cut short after two bytes of its body; the next frame starts inside what
        // its length claims.
        let mut bytes = vec![START1, START2, 0, 12, 0xFF, 0xFF];
        bytes.extend(frame(b"whole"));
        bytes.extend([0; 6]);
        let mut decoder = StreamDecoder::new();
        decoder.push(&bytes);
        let swallowed = decoder.next_frame().unwrap();
        assert_eq!(swallowed.len(), 12);
        decoder.reject(swallowed);
        assert_eq!(all(&mut decoder), vec![b"whole".to_vec()]);
        assert_eq!(decoder.dropped(), 1);
    }
}
