//! Outbox bookkeeping for one connection: what goes out, what an answer does, and the figures
//! of the progress bar. The entries themselves live in the device's store; this decides.
//!
//! Every message written goes to the outbox first. On each connection the whole outbox is sent
//! in order, each entry once; an acknowledgement (or the server's copy of the message coming
//! back, whichever is first) takes it out; a refusal that is not the message's fault leaves it
//! queued for a later pass, any other marks it failed until the person retries.

use std::collections::HashSet;

use mesh::{ErrorCode, MessageId};

/// The progress bar shows from this many messages on.
pub const PROGRESS_FROM: usize = 5;
/// Pause before sending again after a refusal that passes, when the server names none.
pub const RETRY_AFTER_MS: u32 = 2_000;

/// What a refusal means for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not the message's fault (rate limit, storage trouble, no join code yet): it stays
    /// queued and the outbox goes again after this many milliseconds.
    RetryAfter(u32),
    /// The server will never take it as it is: it waits, failed, for the person.
    Failed,
    /// Not a message sent on this connection: nothing to do.
    NotOurs,
}

/// The outbox's state on the current connection.
#[derive(Debug, Default)]
pub struct OutboxBook {
    /// Sent on this connection, no answer yet.
    sent: HashSet<MessageId>,
    /// Acknowledged; their store entries are not deleted yet, so never send them again.
    acked: HashSet<MessageId>,
    /// Entries waiting, not failed.
    queued: usize,
    /// The outbox's size when the current drain began.
    drain_total: usize,
}

impl OutboxBook {
    /// A new connection (or none): nothing is in flight on it.
    pub fn reconnected(&mut self) {
        self.sent.clear();
    }

    /// The outbox as read from the store, in order (ids of entries not failed): counts them
    /// and returns those to send now (not answered, not in flight).
    pub fn plan(&mut self, waiting: &[MessageId]) -> Vec<MessageId> {
        let open: Vec<MessageId> = waiting
            .iter()
            .filter(|id| !self.acked.contains(id))
            .copied()
            .collect();
        self.queued = open.len();
        if self.drain_total < self.queued || self.sent.is_empty() {
            self.drain_total = self.queued;
        }
        open.into_iter()
            .filter(|id| !self.sent.contains(id))
            .collect()
    }

    /// `id` went out on this connection.
    pub fn mark_sent(&mut self, id: MessageId) {
        self.sent.insert(id);
    }

    /// Whether `id` is in flight or answered on this connection: a copy of it coming back from
    /// the server is its acknowledgement, not news.
    pub fn is_own(&self, id: &MessageId) -> bool {
        self.sent.contains(id) || self.acked.contains(id)
    }

    /// The server stored `id` (its acknowledgement, or its copy coming back first). `true`
    /// the first time: the caller records it once; a second answer changes nothing.
    pub fn stored(&mut self, id: MessageId) -> bool {
        if !self.sent.remove(&id) {
            return false;
        }
        self.queued = self.queued.saturating_sub(1);
        self.acked.insert(id);
        true
    }

    /// The store no longer holds these entries: nothing left to guard.
    pub fn forgotten(&mut self, ids: impl IntoIterator<Item = MessageId>) {
        for id in ids {
            self.acked.remove(&id);
        }
    }

    /// The server refused `id` with `code`.
    pub fn refused(
        &mut self,
        id: MessageId,
        code: ErrorCode,
        retry_after_ms: Option<u32>,
    ) -> Refusal {
        if !self.sent.remove(&id) {
            return Refusal::NotOurs;
        }
        match code {
            ErrorCode::Internal | ErrorCode::RateLimited | ErrorCode::CodeRequired => {
                Refusal::RetryAfter(retry_after_ms.unwrap_or(RETRY_AFTER_MS))
            }
            _ => {
                self.queued = self.queued.saturating_sub(1);
                Refusal::Failed
            }
        }
    }

    /// A message was written (or a failed one retried). During a drain it adds to the total.
    pub fn added(&mut self) {
        if self.queued > 0 {
            self.drain_total += 1;
        }
        self.queued += 1;
    }

    /// A message that was counted could not be kept after all.
    pub fn dropped(&mut self) {
        self.queued = self.queued.saturating_sub(1);
    }

    /// Messages waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// `(sent, of)` for the progress bar, when a drain is long enough to show one.
    pub fn progress(&self) -> Option<(usize, usize)> {
        let total = self.drain_total.max(self.queued);
        (self.queued > 0 && total > PROGRESS_FROM).then_some((total - self.queued, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<MessageId> {
        (0..n).map(|i| MessageId([i; 16])).collect()
    }

    #[test]
    fn each_entry_goes_once_per_connection_and_again_after_a_reconnect() {
        let mut book = OutboxBook::default();
        let outbox = ids(3);
        let first = book.plan(&outbox);
        assert_eq!(first, outbox);
        for id in &first {
            book.mark_sent(*id);
        }
        assert!(book.plan(&outbox).is_empty(), "in flight: not again");
        book.reconnected();
        assert_eq!(
            book.plan(&outbox),
            outbox,
            "a new connection sends what was unanswered"
        );
    }

    #[test]
    fn an_ack_and_the_echo_count_once_and_acked_entries_never_go_again() {
        let mut book = OutboxBook::default();
        let outbox = ids(2);
        for id in book.plan(&outbox) {
            book.mark_sent(id);
        }
        assert!(book.is_own(&outbox[0]));
        assert!(book.stored(outbox[0]), "the echo came first");
        assert!(!book.stored(outbox[0]), "the ack after it changes nothing");
        assert_eq!(book.queued(), 1);
        // The store has not deleted the entry yet: a new pass must not send it.
        book.reconnected();
        assert_eq!(book.plan(&outbox), vec![outbox[1]]);
        assert!(
            book.is_own(&outbox[0]),
            "still known as ours until forgotten"
        );
        book.forgotten([outbox[0]]);
        assert!(!book.is_own(&outbox[0]));
        assert!(!book.is_own(&MessageId([9; 16])), "someone else's message");
    }

    #[test]
    fn refusals_that_pass_keep_the_message_queued_and_others_fail_it() {
        let mut book = OutboxBook::default();
        let outbox = ids(3);
        for id in book.plan(&outbox) {
            book.mark_sent(id);
        }
        assert_eq!(
            book.refused(outbox[0], ErrorCode::RateLimited, Some(1500)),
            Refusal::RetryAfter(1500)
        );
        assert_eq!(
            book.refused(outbox[1], ErrorCode::Internal, None),
            Refusal::RetryAfter(RETRY_AFTER_MS)
        );
        assert_eq!(book.queued(), 3, "both still wait");
        assert_eq!(
            book.refused(outbox[2], ErrorCode::BadSignature, None),
            Refusal::Failed
        );
        assert_eq!(book.queued(), 2);
        assert_eq!(
            book.refused(outbox[2], ErrorCode::BadSignature, None),
            Refusal::NotOurs,
            "answered once"
        );
        // The retried ones go on the next pass.
        assert_eq!(book.plan(&outbox[..2]), outbox[..2].to_vec());
    }

    #[test]
    fn progress_shows_for_long_drains_only() {
        let mut book = OutboxBook::default();
        let few = ids(PROGRESS_FROM as u8);
        book.plan(&few);
        assert_eq!(book.progress(), None);
        let many = ids(20);
        for id in book.plan(&many) {
            book.mark_sent(id);
        }
        assert_eq!(book.progress(), Some((0, 20)));
        for id in &many[..15] {
            book.stored(*id);
        }
        assert_eq!(book.progress(), Some((15, 20)));
        // A message written meanwhile grows the total, not the done count.
        book.added();
        assert_eq!(book.progress(), Some((15, 21)));
        for id in &many[15..] {
            book.stored(*id);
        }
        book.dropped();
        assert_eq!(book.progress(), None, "drained");
    }
}
