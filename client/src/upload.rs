//! Sending a file's sealed pieces: ask the server which it lacks, send those a few at a time,
//! and let the message go out only when the server has every piece, so nobody sees a file that
//! cannot be fetched. A transfer cut anywhere (the phone offline, the server restarted) starts
//! again by asking, so nothing is sent twice that arrived once.

use std::collections::HashMap;

use mesh::file::ChunkId;

/// Pieces in flight at once for one file.
pub const AT_ONCE: usize = 2;
/// Wait before sending again when the server asks for patience without saying how long.
pub const RETRY_AFTER_MS: u32 = 2_000;

/// What the server's answer to one piece means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PieceAnswer {
    /// Stored (now or before).
    Stored,
    /// Not now: send it again after this many milliseconds (busy, too many at once, the
    /// server stopping, the piece too slow to arrive).
    Retry(u32),
    /// This device must enter the join code first; then the upload asks again.
    NeedsCode,
    /// The room ticket is unknown to the server (expired, or the server restarted): the
    /// upload gets a new one and asks again.
    NewTicket,
    /// The server will not take it as it is: the transfer stops until the person retries,
    /// with the server's reason.
    Failed(String),
}

impl PieceAnswer {
    /// The meaning of an HTTP answer to `PUT /chunks/ID`: its status, `Retry-After` (seconds)
    /// and text.
    pub fn of(status: u16, retry_after_s: Option<u32>, text: &str) -> Self {
        let wait = || {
            retry_after_s.map_or(RETRY_AFTER_MS, |s| {
                s.saturating_mul(1000).clamp(1, 10 * 60 * 1000)
            })
        };
        match status {
            200 | 201 => Self::Stored,
            401 => Self::NeedsCode,
            412 => Self::NewTicket,
            408 | 429 | 500 | 502 | 503 | 504 => Self::Retry(wait()),
            _ if text.trim().is_empty() => Self::Failed(format!("the server answered {status}")),
            _ => Self::Failed(text.trim().to_string()),
        }
    }
}

/// Where a piece is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    /// Not known: the server has to be asked.
    Unknown,
    /// The server lacks it.
    Missing,
    /// Sent, no answer yet.
    InFlight,
    /// The server has it.
    Stored,
}

/// What the engine does next for this file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask the server which of these pieces it lacks (`POST /chunks/missing`).
    Ask(Vec<ChunkId>),
    /// Send these pieces.
    Send(Vec<ChunkId>),
    /// Wait for the answers in flight.
    Wait,
    /// Every piece is stored: the message may go out.
    Done,
}

/// One file's upload on the current connection.
#[derive(Clone, Debug)]
pub struct Upload {
    /// Pieces in the file's order, with their sealed sizes.
    order: Vec<(ChunkId, u64)>,
    state: HashMap<ChunkId, Piece>,
    asking: bool,
    failed: Option<String>,
}

impl Upload {
    /// An upload of a file's pieces (names and sealed sizes, in order); nothing is known of
    /// the server yet.
    pub fn new(pieces: Vec<(ChunkId, u64)>) -> Self {
        let state = pieces.iter().map(|(id, _)| (*id, Piece::Unknown)).collect();
        Self {
            order: pieces,
            state,
            asking: false,
            failed: None,
        }
    }

    /// The next step. Sending marks the pieces in flight; asking marks the question asked.
    pub fn step(&mut self) -> Step {
        if self.failed.is_some() {
            return Step::Wait;
        }
        if self.is_done() {
            return Step::Done;
        }
        if self.asking {
            return Step::Wait;
        }
        let unknown: Vec<ChunkId> = self.ids_in(Piece::Unknown);
        if !unknown.is_empty() {
            self.asking = true;
            return Step::Ask(unknown);
        }
        let in_flight = self.ids_in(Piece::InFlight).len();
        let send: Vec<ChunkId> = self
            .ids_in(Piece::Missing)
            .into_iter()
            .take(AT_ONCE.saturating_sub(in_flight))
            .collect();
        if send.is_empty() {
            return Step::Wait;
        }
        for id in &send {
            self.state.insert(*id, Piece::InFlight);
        }
        Step::Send(send)
    }

    /// The server's answer to the question: it lacks `missing`; of those asked about, the
    /// others are stored.
    pub fn on_missing(&mut self, missing: &[ChunkId]) {
        self.asking = false;
        for (id, piece) in self.state.iter_mut() {
            if *piece == Piece::Unknown {
                *piece = if missing.contains(id) {
                    Piece::Missing
                } else {
                    Piece::Stored
                };
            }
        }
    }

    /// The question went unanswered (offline, or the server away): ask again later.
    pub fn on_ask_failed(&mut self) {
        self.asking = false;
    }

    /// The answer to piece `id`: what to do about it. `Some(ms)`: wait that long before the
    /// next step.
    pub fn on_answer(&mut self, id: ChunkId, answer: PieceAnswer) -> Option<u32> {
        if self.state.get(&id) != Some(&Piece::InFlight) {
            return None;
        }
        match answer {
            PieceAnswer::Stored => {
                self.state.insert(id, Piece::Stored);
                None
            }
            PieceAnswer::Retry(ms) => {
                self.state.insert(id, Piece::Missing);
                Some(ms)
            }
            PieceAnswer::NeedsCode | PieceAnswer::NewTicket => {
                self.state.insert(id, Piece::Unknown);
                None
            }
            PieceAnswer::Failed(reason) => {
                self.state.insert(id, Piece::Missing);
                self.failed = Some(reason);
                None
            }
        }
    }

    /// The piece's request went nowhere (offline, or the server away): what was in flight is
    /// unknown again, and the server is asked once it is back.
    pub fn on_disconnect(&mut self) {
        self.asking = false;
        for piece in self.state.values_mut() {
            if matches!(piece, Piece::InFlight) {
                *piece = Piece::Unknown;
            }
        }
    }

    /// Why the transfer stopped, if the server refused a piece for good.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The person asked to try again after a failure.
    pub fn retry(&mut self) {
        self.failed = None;
    }

    /// Sealed bytes the server has, and the file's sealed bytes in all: the progress bar.
    pub fn progress(&self) -> (u64, u64) {
        let total = self.order.iter().map(|(_, len)| len).sum();
        let done = self
            .order
            .iter()
            .filter(|(id, _)| self.state.get(id) == Some(&Piece::Stored))
            .map(|(_, len)| len)
            .sum();
        (done, total)
    }

    /// Every piece is stored.
    pub fn is_done(&self) -> bool {
        self.state.values().all(|piece| *piece == Piece::Stored)
    }

    /// The pieces in `wanted`, in the file's order (each once).
    fn ids_in(&self, wanted: Piece) -> Vec<ChunkId> {
        let mut seen = std::collections::HashSet::new();
        self.order
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| self.state.get(id) == Some(&wanted) && seen.insert(*id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(count: u8) -> Vec<(ChunkId, u64)> {
        (0..count).map(|n| (ChunkId([n; 32]), 1000)).collect()
    }

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn it_asks_first_then_sends_what_is_missing_two_at_a_time_then_is_done() {
        let mut upload = Upload::new(pieces(5));
        assert_eq!(upload.step(), Step::Ask((0..5).map(id).collect()));
        assert_eq!(upload.step(), Step::Wait, "one question at a time");
        // The server has piece 1 already (sent before a crash).
        upload.on_missing(&[id(0), id(2), id(3), id(4)]);
        assert_eq!(upload.progress(), (1000, 5000));
        assert_eq!(upload.step(), Step::Send(vec![id(0), id(2)]));
        assert_eq!(upload.step(), Step::Wait, "two in flight at most");
        assert_eq!(upload.on_answer(id(0), PieceAnswer::Stored), None);
        assert_eq!(upload.step(), Step::Send(vec![id(3)]));
        upload.on_answer(id(2), PieceAnswer::Stored);
        upload.on_answer(id(3), PieceAnswer::Stored);
        assert_eq!(upload.step(), Step::Send(vec![id(4)]));
        assert!(!upload.is_done());
        upload.on_answer(id(4), PieceAnswer::Stored);
        assert_eq!(upload.step(), Step::Done);
        assert_eq!(upload.progress(), (5000, 5000));
    }

    #[test]
    fn a_cut_connection_asks_again_and_sends_only_what_did_not_arrive() {
        let mut upload = Upload::new(pieces(4));
        upload.step();
        upload.on_missing(&(0..4).map(id).collect::<Vec<_>>());
        assert_eq!(upload.step(), Step::Send(vec![id(0), id(1)]));
        upload.on_answer(id(0), PieceAnswer::Stored);
        // Piece 1 was in flight when the server went away; it arrived before it did.
        upload.on_disconnect();
        assert_eq!(upload.step(), Step::Ask(vec![id(1)]));
        upload.on_missing(&[]);
        assert_eq!(upload.step(), Step::Send(vec![id(2), id(3)]));
        // A late answer to a piece no longer in flight changes nothing.
        assert_eq!(
            upload.on_answer(id(1), PieceAnswer::Failed("x".into())),
            None
        );
        assert_eq!(upload.failure(), None);
    }

    #[test]
    fn a_busy_server_is_waited_for_and_a_refusal_stops_until_the_person_retries() {
        let mut upload = Upload::new(pieces(2));
        upload.step();
        upload.on_missing(&[id(0), id(1)]);
        upload.step();
        assert_eq!(
            upload.on_answer(id(0), PieceAnswer::Retry(3000)),
            Some(3000)
        );
        let full = "this server's room for files (1 MB) is full; ask the operator";
        upload.on_answer(id(1), PieceAnswer::Failed(full.into()));
        assert_eq!(upload.failure(), Some(full));
        assert_eq!(upload.step(), Step::Wait);
        upload.retry();
        assert_eq!(upload.step(), Step::Send(vec![id(0), id(1)]));
        // Without the join code's pass, the piece is asked about again once unlocked.
        assert_eq!(upload.on_answer(id(0), PieceAnswer::NeedsCode), None);
        upload.on_answer(id(1), PieceAnswer::Stored);
        assert_eq!(upload.step(), Step::Ask(vec![id(0)]));
    }

    #[test]
    fn http_answers_mean_what_they_say() {
        assert_eq!(PieceAnswer::of(201, None, "stored"), PieceAnswer::Stored);
        assert_eq!(PieceAnswer::of(200, None, ""), PieceAnswer::Stored);
        assert_eq!(PieceAnswer::of(429, Some(4), ""), PieceAnswer::Retry(4000));
        assert_eq!(
            PieceAnswer::of(503, None, ""),
            PieceAnswer::Retry(RETRY_AFTER_MS)
        );
        assert_eq!(PieceAnswer::of(401, None, ""), PieceAnswer::NeedsCode);
        assert_eq!(
            PieceAnswer::of(412, None, "expired"),
            PieceAnswer::NewTicket
        );
        assert_eq!(
            PieceAnswer::of(507, None, " full \n"),
            PieceAnswer::Failed("full".into())
        );
        assert_eq!(
            PieceAnswer::of(400, None, ""),
            PieceAnswer::Failed("the server answered 400".into())
        );
    }

    #[test]
    fn an_empty_or_repeated_piece_list_is_handled() {
        let mut empty = Upload::new(Vec::new());
        assert_eq!(empty.step(), Step::Done);
        let mut twice = Upload::new(vec![(id(1), 10), (id(1), 10)]);
        assert_eq!(twice.step(), Step::Ask(vec![id(1)]));
        twice.on_missing(&[id(1)]);
        assert_eq!(twice.step(), Step::Send(vec![id(1)]));
        twice.on_answer(id(1), PieceAnswer::Stored);
        assert_eq!(twice.step(), Step::Done);
    }
}
