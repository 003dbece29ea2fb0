//! Putting fragments back together into whole messages, within bounds.

use std::collections::HashMap;

use super::packet::{FrameKey, MessageKey};
use super::{RadioMessage, MAX_FRAME_BYTES};

/// Joins fragments back into messages. Bounded: at most `max_partial` messages in progress
/// (the oldest is dropped to make room), each at most [`MAX_PAYLOAD_BYTES`], each dropped
/// when not complete within the timeout. A message is handed out only when every fragment
/// is there, so a partial one is never shown as whole.
#[derive(Debug)]
pub struct Reassembler {
    max_partial: usize,
    timeout_ms: u64,
    partial: HashMap<MessageKey, Partial>,
}

#[derive(Debug)]
struct Partial {
    started_ms: u64,
    chunks: Vec<Option<Vec<u8>>>,
}

impl Reassembler {
    /// A reassembler holding at most `max_partial` messages for at most `timeout_ms` each.
    pub fn new(max_partial: usize, timeout_ms: u64) -> Self {
        Self {
            max_partial: max_partial.max(1),
            timeout_ms,
            partial: HashMap::new(),
        }
    }

    /// Messages in progress.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Adds one fragment; returns the message when it completes it.
    pub fn push(
        &mut self,
        now_ms: u64,
        key: FrameKey,
        count: u8,
        chunk: &[u8],
    ) -> Option<RadioMessage> {
        self.expire(now_ms);
        if count == 1 {
            return Some(RadioMessage {
                key: key.message,
                payload: chunk.to_vec(),
            });
        }
        if usize::from(key.index) >= usize::from(count) || chunk.len() > MAX_FRAME_BYTES {
            return None;
        }
        if !self.partial.contains_key(&key.message) && self.partial.len() >= self.max_partial {
            let oldest = self
                .partial
                .iter()
                .min_by_key(|(_, p)| p.started_ms)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.partial.remove(&oldest);
            }
        }
        let entry = self.partial.entry(key.message).or_insert_with(|| Partial {
            started_ms: now_ms,
            chunks: vec![None; usize::from(count)],
        });
        if entry.chunks.len() != usize::from(count) {
            // Two senders disagree about this message: start over with the newer one.
            *entry = Partial {
                started_ms: now_ms,
                chunks: vec![None; usize::from(count)],
            };
        }
        entry.chunks[usize::from(key.index)] = Some(chunk.to_vec());
        if entry.chunks.iter().all(Option::is_some) {
            let entry = self.partial.remove(&key.message)?;
            let payload = entry.chunks.into_iter().flatten().flatten().collect();
            return Some(RadioMessage {
                key: key.message,
                payload,
            });
        }
        None
    }

    /// Drops messages that waited longer than the timeout.
    pub fn expire(&mut self, now_ms: u64) {
        let timeout = self.timeout_ms;
        self.partial
            .retain(|_, p| now_ms.saturating_sub(p.started_ms) <= timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::MessageId;
    use crate::radio::test_support::{key, text};
    use crate::radio::{Packet, RadioError, DEFAULT_FRAME_BYTES};

    #[test]
    fn long_messages_fragment_and_reassemble_in_any_order() {
        let long = text(1500);
        let message = RadioMessage::seal(&key(), MessageId([4; 16]), 9, "Bo", &long);
        let mut frames = message.fragments(3, DEFAULT_FRAME_BYTES).unwrap();
        assert_eq!(frames.len(), 8);
        frames.reverse();
        let mut reassembler = Reassembler::new(4, 1000);
        let mut out = None;
        for (i, frame) in frames.iter().enumerate() {
            let Packet::Data {
                key, count, chunk, ..
            } = Packet::decode(&frame.encode()).unwrap()
            else {
                panic!("data frame expected");
            };
            let got = reassembler.push(10, key, count, &chunk);
            if i + 1 < frames.len() {
                assert!(got.is_none(), "a partial message must never come out");
            } else {
                out = got;
            }
        }
        assert_eq!(out.unwrap().open(&key()).unwrap().text, long);
        let too_long = RadioMessage::seal(&key(), MessageId([5; 16]), 9, "Bo", &text(4000));
        assert!(matches!(
            too_long.fragments(3, DEFAULT_FRAME_BYTES),
            Err(RadioError::MessageTooLong { .. })
        ));
    }

    #[test]
    fn partial_messages_expire_and_are_bounded() {
        let mut reassembler = Reassembler::new(2, 1000);
        let frame = |id: u8, index: u8| FrameKey {
            message: MessageKey {
                room: [0; 4],
                id: [id; 6],
            },
            index,
        };
        assert!(reassembler.push(0, frame(1, 0), 2, b"a").is_none());
        assert!(reassembler.push(1, frame(2, 0), 2, b"a").is_none());
        assert!(reassembler.push(5, frame(3, 0), 2, b"a").is_none());
        assert_eq!(reassembler.pending(), 2, "the oldest made room");
        // Message 1 was evicted: its second half alone is not a message.
        assert!(reassembler.push(6, frame(1, 1), 2, b"b").is_none());
        // Past the timeout, the first half of 3 is gone too.
        assert!(reassembler.push(2000, frame(3, 1), 2, b"b").is_none());
        assert_eq!(reassembler.pending(), 1);
    }
}
