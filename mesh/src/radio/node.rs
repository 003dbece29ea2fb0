//! The relay node: managed flooding with dedupe, hop limits, acknowledgements and retries.

use std::collections::{HashMap, VecDeque};

use super::network::NetworkKey;
use super::packet::{FrameKey, MessageKey, Packet};
use super::reassembly::Reassembler;
use super::{
    RadioError, RadioMessage, DEFAULT_BITRATE_BPS, DEFAULT_FRAME_BYTES, DEFAULT_HOP_LIMIT,
};

/// Timing and limits of a relay node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Largest frame the radio sends.
    pub frame_bytes: usize,
    /// Hop limit of the messages this node starts.
    pub hop_limit: u8,
    /// The radio's bitrate, for airtime estimates.
    pub bitrate_bps: u32,
    /// Retries of an unconfirmed frame.
    pub max_retries: u8,
    /// The mesh's network key: frames without its tag are refused, and every frame sent
    /// carries it.
    pub network: NetworkKey,
    /// Retries of a frame this node relays (fewer than its own: neighbours that miss a relay
    /// catch up from summaries).
    pub max_relay_retries: u8,
    /// How often the node sends a summary of the messages it holds (0: never).
    pub summary_every_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            frame_bytes: DEFAULT_FRAME_BYTES,
            hop_limit: DEFAULT_HOP_LIMIT,
            // LoRa SF7, 125 kHz, coding rate 4/5.
            bitrate_bps: DEFAULT_BITRATE_BPS,
            max_retries: 8,
            network: NetworkKey::open_mesh(),
            max_relay_retries: 2,
            summary_every_ms: SUMMARY_EVERY_MS,
        }
    }
}

impl NodeConfig {
    /// Estimated airtime of a frame of `bytes` bytes (plus preamble and header) in ms.
    pub fn airtime_ms(&self, bytes: usize) -> u64 {
        ((bytes as u64 + 13) * 8 * 1000).div_ceil(u64::from(self.bitrate_bps.max(1)))
    }

    /// Rebroadcasts wait a random delay up to this, so neighbours that heard the same frame
    /// do not all send at once, and a node that hears another's rebroadcast first can cancel.
    pub fn contention_window_ms(&self) -> u64 {
        3 * self.airtime_ms(self.frame_bytes)
    }

    /// How long a sent frame waits for a rebroadcast or an acknowledgement before a retry.
    fn confirm_timeout_ms(&self, tries: u8) -> u64 {
        let base = self.contention_window_ms() + 4 * self.airtime_ms(self.frame_bytes) + 500;
        base + base * u64::from(tries) / 2
    }
}

/// What the node asks its owner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes over the radio.
    Transmit(Vec<u8>),
    /// A whole message arrived for the first time: store and show it.
    Deliver(RadioMessage),
    /// Every frame of a message this node started was heard relayed or acknowledged.
    Confirmed(MessageKey),
    /// A message this node started ran out of retries without confirmation.
    Unconfirmed(MessageKey),
}

#[derive(Clone, Debug)]
enum FrameState {
    /// A rebroadcast waits for its slot; cancelled if a neighbour rebroadcasts first.
    Scheduled {
        at_ms: u64,
        packet: Packet,
        /// Neighbours heard rebroadcasting it meanwhile.
        heard: u8,
    },
    /// Sent; waiting to hear it relayed or acknowledged.
    Sent {
        retry_at_ms: u64,
        tries: u8,
        packet: Packet,
    },
    /// Nothing more to do.
    Done,
}

#[derive(Clone, Debug)]
struct Seen {
    at_ms: u64,
    /// Order of arrival at this node, so frames due together leave in the order they came
    /// (a sender's messages in the order they were written).
    order: u64,
    /// The hop limit it reached us with (`u8::MAX` for frames we started).
    heard_hop: u8,
    state: FrameState,
    origin: bool,
    /// Had only from a neighbour's catch-up (which is not flooded): when the flood itself
    /// arrives later, it is relayed as if heard first.
    by_catch_up: bool,
}

/// How many frames the node remembers for dedupe, and for how long.
const SEEN_LIMIT: usize = 8192;
const SEEN_TTL_MS: u64 = 30 * 60 * 1000;
/// A node sends a summary of what it holds about this often (with a random share more or
/// less), while the mesh around it is active.
pub const SUMMARY_EVERY_MS: u64 = 60 * 1000;
/// While nothing new arrives, the summary period doubles up to this many times (to 16 min).
const SUMMARY_BACKOFF_MAX: u32 = 4;
/// Messages are kept for catch-up, and the mesh counts as active, this long.
pub const CATCH_UP_WINDOW_MS: u64 = 2 * 60 * 60 * 1000;
/// Most messages (and bytes of them) kept for catch-up.
const KEPT_LIMIT: usize = 2048;
const KEPT_BYTES: usize = 512 * 1024;
/// Most message keys one summary holds (the newest by send time).
const SUMMARY_KEYS: usize = 200;
/// Most messages sent in answer to one summary (oldest first): a camp back after an hour
/// catches up a few messages a minute per neighbour, within its duty cycle.
const CATCH_UP_PER_SUMMARY: usize = 8;
/// Most frames waiting in the delayed queue (catch-up and acknowledgements).
const DELAYED_LIMIT: usize = 128;
/// A message is offered for catch-up this many hops further than the copy this node heard
/// would carry it: the copy may have come a detour, and the camp a hop further on may be
/// within the message's range by a shorter way.
const CATCH_UP_SLACK: u8 = 1;
/// A scheduled rebroadcast is cancelled once this many neighbours were heard sending it
/// first. With one, floods on meshes with loops run thin (a single line of relays, loss
/// leaving whole regions to catch-up, whose copies then come by detours); with two, a grid of
/// fifty camps gets every message within range (see the node tests).
const SUPPRESS_AFTER: u8 = 2;

/// A relay node: the managed-flooding state machine, without I/O. Feed it frames heard and
/// messages to send, call [`Node::poll`] at [`Node::next_wakeup`], and carry out the
/// [`Action`]s. Used by the server's radio bridge and by the browser's Web Serial radio.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    seen: HashMap<FrameKey, Seen>,
    order: VecDeque<(u64, FrameKey)>,
    reassembler: Reassembler,
    /// Frames still unconfirmed per message this node started.
    origin: HashMap<MessageKey, usize>,
    rng: u64,
    /// Frames remembered so far, for [`Seen::order`].
    arrivals: u64,
    unauthenticated: u64,
    skewed: u64,
    last_skew_minutes: i64,
    /// Whole messages held for catch-up, and when each came.
    /// With each, the hops it may still travel from here by catch-up (its range).
    kept: HashMap<MessageKey, (RadioMessage, u8)>,
    kept_order: VecDeque<(u64, MessageKey)>,
    kept_bytes: usize,
    /// Messages this node's camp got by another path (over IP), with their send times:
    /// summaries count them as held, so no neighbour spends airtime catching them up.
    elsewhere: HashMap<MessageKey, u32>,
    elsewhere_order: VecDeque<MessageKey>,
    /// Frames that go out after a random delay: acknowledgements, and catch-up for a
    /// neighbour (with the message, so another neighbour's copy can cancel it).
    delayed: Vec<(u64, Option<MessageKey>, Packet)>,
    /// The next summary, while the mesh is active.
    next_summary_ms: Option<u64>,
    /// The mesh around counts as active until then (a message frame was heard or sent).
    active_until_ms: u64,
    /// A neighbour's summary was heard while this node was quiet: answer with one summary
    /// of its own (so a camp back from an outage gets what it missed).
    summary_once: bool,
    /// When this node last sent a summary: never more than one per period.
    last_summary_ms: Option<u64>,
    /// Summaries with nothing new since the last one space out: the period is doubled this
    /// many times (up to [`SUMMARY_BACKOFF_MAX`]); a new message brings it back to one.
    summary_backoff: u32,
}

/// Counters, for the UI and the figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames in progress or remembered.
    pub remembered: usize,
    /// Messages being reassembled.
    pub partial: usize,
    /// Frames refused because their network tag was wrong (another mesh, or forged).
    pub unauthenticated: u64,
    /// Frames refused because they were tagged for another time.
    pub skewed: u64,
    /// How far off the last such frame's clock was, in minutes (negative: behind ours).
    pub last_skew_minutes: i64,
}

impl Node {
    /// A node with `config`; `seed` seeds the jitter of rebroadcast delays.
    pub fn new(config: NodeConfig, seed: u64) -> Self {
        Self {
            config,
            seen: HashMap::new(),
            order: VecDeque::new(),
            reassembler: Reassembler::new(64, 5 * 60 * 1000),
            origin: HashMap::new(),
            rng: seed | 1,
            arrivals: 0,
            unauthenticated: 0,
            skewed: 0,
            last_skew_minutes: 0,
            kept: HashMap::new(),
            kept_order: VecDeque::new(),
            kept_bytes: 0,
            elsewhere: HashMap::new(),
            elsewhere_order: VecDeque::new(),
            delayed: Vec::new(),
            next_summary_ms: None,
            active_until_ms: 0,
            summary_once: false,
            last_summary_ms: None,
            summary_backoff: 0,
        }
    }

    /// Keeps a whole message for catch-up (bounded in count, bytes and time), with the hops
    /// it may still travel from here.
    fn keep(&mut self, now_ms: u64, message: &RadioMessage, hops: u8) {
        if let Some((_, kept_hops)) = self.kept.get_mut(&message.key) {
            *kept_hops = (*kept_hops).max(hops);
            return;
        }
        self.kept_bytes += message.payload.len();
        self.kept.insert(message.key, (message.clone(), hops));
        self.kept_order.push_back((now_ms, message.key));
        self.expire_kept(now_ms);
        // Something new: neighbours may lack it too, so summaries go back to their full rate.
        self.summary_backoff = 0;
        let every = self.config.summary_every_ms;
        if self.next_summary_ms.is_some_and(|at| at > now_ms + every) {
            self.next_summary_ms = Some(now_ms + every / 2 + self.random_below(every));
        }
    }

    fn expire_kept(&mut self, now_ms: u64) {
        while let Some(&(at, key)) = self.kept_order.front() {
            // Kept a while past the window neighbours offer messages in, so clocks a little
            // apart never offer back one just forgotten.
            let old = now_ms.saturating_sub(at) > CATCH_UP_WINDOW_MS + SEEN_TTL_MS;
            if !old && self.kept.len() <= KEPT_LIMIT && self.kept_bytes <= KEPT_BYTES {
                break;
            }
            self.kept_order.pop_front();
            if let Some((message, _)) = self.kept.remove(&key) {
                self.kept_bytes -= message.payload.len();
            }
        }
    }

    /// The mesh is active (a message frame was heard or sent): summaries go out for a while.
    fn active(&mut self, now_ms: u64) {
        self.active_until_ms = now_ms + CATCH_UP_WINDOW_MS;
        if self.config.summary_every_ms > 0 && self.next_summary_ms.is_none() {
            let delay = self.random_below(self.config.summary_every_ms);
            self.next_summary_ms = Some(now_ms + delay);
        }
    }

    /// Queues `packet` to go out after a random share of the contention window.
    fn delay(&mut self, now_ms: u64, message: Option<MessageKey>, packet: Packet) {
        if self.delayed.len() >= DELAYED_LIMIT {
            return;
        }
        let at = now_ms + self.random_below(self.config.contention_window_ms());
        self.delayed.push((at, message, packet));
    }

    /// A neighbour's summary: send it (oldest first, a few at a time) the messages it lacks.
    /// Returns whether it seems to hold messages this node lacks (more than this node holds
    /// since the same time).
    fn answer_summary(&mut self, now_ms: u64, summary: &Packet) -> bool {
        let Packet::Summary { since_s, count, .. } = summary else {
            return false;
        };
        let held_since = self
            .kept
            .values()
            .filter(|(m, _)| m.sent_at_s().is_some_and(|sent| sent >= *since_s))
            .count()
            + self
                .elsewhere
                .iter()
                .filter(|(key, sent)| **sent >= *since_s && !self.kept.contains_key(key))
                .count();
        let queued: Vec<MessageKey> = self.delayed.iter().filter_map(|(_, m, _)| *m).collect();
        // Only messages whose range reaches past this node are offered.
        let mut missing: Vec<(u32, MessageKey)> = self
            .kept
            .values()
            .filter(|(_, hops)| *hops > 0)
            .filter_map(|(m, _)| Some((m.sent_at_s()?, m.key)))
            .filter(|(sent, key)| {
                *sent >= *since_s && !summary.summary_holds(key) && !queued.contains(key)
            })
            .collect();
        missing.sort();
        // One start for the batch, then the frames in order, oldest first. The neighbour with
        // the most range left answers first (the others hear it and stand down), so the
        // message goes on from the copy that came the shortest way.
        let window = self.config.contention_window_ms();
        let range = missing
            .first()
            .and_then(|(_, key)| self.kept.get(key))
            .map_or(0, |(_, hops)| *hops);
        let full = self.config.hop_limit.saturating_add(1 + CATCH_UP_SLACK);
        let mut at =
            now_ms + u64::from(full.saturating_sub(range)) * window + self.random_below(window);
        for (_, key) in missing.into_iter().take(CATCH_UP_PER_SUMMARY) {
            let Some((message, hops)) = self.kept.get(&key) else {
                continue;
            };
            // Catch-up frames are not flooded; they carry what is left of the range, for the
            // neighbour's own offers.
            let hops = hops - 1;
            let Ok(frames) = message.fragments(hops, self.config.frame_bytes) else {
                continue;
            };
            for frame in frames {
                let Packet::Data {
                    hop_limit,
                    key: frame_key,
                    count,
                    chunk,
                } = frame
                else {
                    continue;
                };
                let catch_up = Packet::CatchUp {
                    hop_limit,
                    key: frame_key,
                    count,
                    chunk,
                };
                if self.delayed.len() < DELAYED_LIMIT {
                    let airtime = self.config.airtime_ms(catch_up.encode().len());
                    self.delayed.push((at, Some(key), catch_up));
                    at += airtime + 1;
                }
            }
        }
        usize::from(*count) > held_since
    }

    /// The summary of what this node holds: the newest messages by send time.
    fn summary(&mut self, now_ms: u64) -> Packet {
        let mut held: Vec<(u32, MessageKey)> = self
            .kept
            .values()
            .filter_map(|(m, _)| Some((m.sent_at_s()?, m.key)))
            .chain(
                self.elsewhere
                    .iter()
                    .filter(|(key, _)| !self.kept.contains_key(key))
                    .map(|(key, sent)| (*sent, *key)),
            )
            .collect();
        held.sort_by(|a, b| b.cmp(a));
        // The filter must hold every message sent since `since_s`: when more than fit, start
        // after the send time of the first that does not (and all sent in that second).
        let since_s = match held.get(SUMMARY_KEYS) {
            Some(&(first_left_out, _)) => {
                held.retain(|(sent, _)| *sent > first_left_out);
                first_left_out.saturating_add(1)
            }
            None => ((now_ms.saturating_sub(CATCH_UP_WINDOW_MS)) / 1000) as u32,
        };
        let salt = self.random_below(u64::from(u16::MAX) + 1) as u16;
        Packet::summary(salt, since_s, held.iter().map(|(_, key)| key))
    }

    /// The node's settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// How much it holds.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            remembered: self.seen.len(),
            partial: self.reassembler.pending(),
            unauthenticated: self.unauthenticated,
            skewed: self.skewed,
            last_skew_minutes: self.last_skew_minutes,
        }
    }

    /// Whether this node has seen (sent or received) the message.
    pub fn has_seen(&self, key: MessageKey) -> bool {
        self.seen.contains_key(&FrameKey {
            message: key,
            index: 0,
        })
    }

    fn random_below(&mut self, bound: u64) -> u64 {
        // xorshift64*: jitter only, nothing secret depends on it.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }

    /// Remembers a frame heard with `heard_hop` hops left, in `state`.
    fn remember_heard(&mut self, now_ms: u64, key: FrameKey, heard_hop: u8, state: FrameState) {
        let seen = Seen {
            at_ms: now_ms,
            heard_hop,
            order: 0,
            state,
            origin: false,
            by_catch_up: false,
        };
        self.remember(now_ms, key, seen);
    }

    fn remember(&mut self, now_ms: u64, key: FrameKey, mut seen: Seen) {
        self.arrivals += 1;
        seen.order = self.arrivals;
        self.seen.insert(key, seen);
        self.order.push_back((now_ms, key));
        while self.order.len() > SEEN_LIMIT
            || self
                .order
                .front()
                .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > SEEN_TTL_MS)
        {
            let Some((at, old)) = self.order.pop_front() else {
                break;
            };
            // Only forget it if the entry is this one (a key is remembered once).
            if self.seen.get(&old).is_some_and(|s| s.at_ms == at) {
                if let Some(entry) = self.seen.remove(&old) {
                    if entry.origin && !matches!(entry.state, FrameState::Done) {
                        self.origin.remove(&old.message);
                    }
                }
            }
        }
    }

    /// Starts sending `message` from this node. Returns `false` (and sends nothing) when the
    /// node already carries it, so an outbox replayed after a reconnect goes out once.
    pub fn send(&mut self, now_ms: u64, message: &RadioMessage) -> Result<bool, RadioError> {
        if self.has_seen(message.key) {
            return Ok(false);
        }
        let packets = message.fragments(self.config.hop_limit, self.config.frame_bytes)?;
        self.origin.insert(message.key, packets.len());
        // This node's own message may be offered as far as its first hop would carry it.
        self.keep(
            now_ms,
            message,
            self.config.hop_limit.saturating_add(1 + CATCH_UP_SLACK),
        );
        self.active(now_ms);
        for packet in packets {
            let Some(key) = packet.key() else { continue };
            self.remember(
                now_ms,
                key,
                Seen {
                    at_ms: now_ms,
                    heard_hop: u8::MAX,
                    order: 0,
                    state: FrameState::Scheduled {
                        at_ms: now_ms,
                        packet,
                        heard: 0,
                    },
                    origin: true,
                    by_catch_up: false,
                },
            );
        }
        Ok(true)
    }

    /// Notes that this node's camp got the message `key`, sent at `sent_at_s`, by another
    /// path (over IP): its summaries say it holds it, so neighbours do not catch it up over
    /// the radio. (A flood of it is still relayed: camps further on may have no other path.)
    pub fn held_elsewhere(&mut self, key: MessageKey, sent_at_s: u32) {
        if self.elsewhere.insert(key, sent_at_s).is_some() {
            return;
        }
        self.elsewhere_order.push_back(key);
        while self.elsewhere_order.len() > KEPT_LIMIT {
            if let Some(old) = self.elsewhere_order.pop_front() {
                self.elsewhere.remove(&old);
            }
        }
    }

    /// Forgets a message this node started, so [`Node::send`] sends it afresh (after it went
    /// unconfirmed: the neighbours may have been away).
    pub fn forget(&mut self, key: MessageKey) {
        self.origin.remove(&key);
        self.seen
            .retain(|frame, seen| !(frame.message == key && seen.origin));
    }

    /// Handles a frame heard on the radio. A frame without this mesh's tag for the current
    /// time is refused before anything else: it changes no state (no dedupe entry, no
    /// reassembly slot, no confirmation, no relay).
    pub fn receive(&mut self, now_ms: u64, bytes: &[u8]) -> Result<Vec<Action>, RadioError> {
        let packet = match Packet::open(&self.config.network, now_ms, bytes) {
            Ok(packet) => packet,
            Err(error) => {
                match error {
                    RadioError::ClockSkew { minutes } => {
                        self.skewed += 1;
                        self.last_skew_minutes = minutes;
                    }
                    RadioError::Unauthenticated => self.unauthenticated += 1,
                    _ => {}
                }
                return Err(error);
            }
        };
        let mut actions = Vec::new();
        // Acknowledgements go out after a random delay, so neighbours that cannot hear each
        // other do not answer at the same moment.
        let mut acks = Vec::new();
        let Some(key) = packet.key() else {
            let they_hold_more = self.answer_summary(now_ms, &packet);
            // Summaries do not keep the mesh active (or two nodes would talk for ever), but a
            // quiet node that seems to lack messages answers one with its own, once.
            let rested = self
                .last_summary_ms
                .is_none_or(|at| now_ms >= at + self.config.summary_every_ms);
            if they_hold_more
                && rested
                && now_ms >= self.active_until_ms
                && self.config.summary_every_ms > 0
            {
                self.summary_once = true;
                let at = now_ms + self.random_below(self.config.contention_window_ms());
                self.next_summary_ms = Some(self.next_summary_ms.map_or(at, |t| t.min(at)));
            }
            return Ok(actions);
        };
        self.active(now_ms);
        match packet {
            Packet::Summary { .. } => {}
            Packet::CatchUp {
                hop_limit,
                count,
                chunk,
                ..
            } => {
                // Someone else already caught the neighbour up with this frame.
                self.delayed.retain(|(_, message, packet)| {
                    !(message.is_some() && packet.key() == Some(key))
                });
                let hops = hop_limit.min(self.config.hop_limit);
                if self.seen.contains_key(&key) || self.kept.contains_key(&key.message) {
                    if let Some((_, kept_hops)) = self.kept.get_mut(&key.message) {
                        *kept_hops = (*kept_hops).max(hops);
                    }
                } else {
                    self.remember_heard(now_ms, key, hops, FrameState::Done);
                    if let Some(seen) = self.seen.get_mut(&key) {
                        seen.by_catch_up = true;
                    }
                    if let Some(message) = self.reassembler.push(now_ms, key, count, &chunk) {
                        self.keep(now_ms, &message, hops);
                        actions.push(Action::Deliver(message));
                    }
                }
            }
            Packet::Ack { hop_limit, .. } => {
                if let Some(seen) = self.seen.get_mut(&key) {
                    if matches!(
                        &seen.state,
                        FrameState::Sent { packet: Packet::Data { hop_limit: sent, .. }, .. }
                            if *sent == hop_limit
                    ) {
                        seen.state = FrameState::Done;
                        let origin = seen.origin;
                        self.confirmed(key, origin, &mut actions);
                    }
                }
            }
            Packet::Data {
                hop_limit: heard,
                count,
                chunk,
                ..
            } => {
                // A frame may travel no further than this mesh allows, whatever it says.
                let hop_limit = heard.min(self.config.hop_limit);
                // Another neighbour already sent this frame to the one that lacked it.
                self.delayed.retain(|(_, message, packet)| {
                    !(message.is_some() && packet.key() == Some(key))
                });
                // Had by catch-up first: this flood goes on from here as if heard first (the
                // neighbours further on may still be waiting for it).
                let relay_at = match self.seen.get(&key) {
                    Some(seen) if seen.by_catch_up && hop_limit > 0 => {
                        Some(now_ms + self.random_below(self.config.contention_window_ms()))
                    }
                    _ => None,
                };
                if let (Some(at_ms), Some(seen)) = (relay_at, self.seen.get_mut(&key)) {
                    seen.by_catch_up = false;
                    seen.heard_hop = hop_limit;
                    seen.state = FrameState::Scheduled {
                        at_ms,
                        packet: Packet::Data {
                            hop_limit: hop_limit - 1,
                            key,
                            count,
                            chunk,
                        },
                        heard: 0,
                    };
                    if let Some((_, kept_hops)) = self.kept.get_mut(&key.message) {
                        *kept_hops = (*kept_hops).max(hop_limit.saturating_add(CATCH_UP_SLACK));
                    }
                    return Ok(actions);
                }
                match self.seen.get_mut(&key) {
                    Some(seen) => {
                        // A copy that came a shorter way leaves the message more range here.
                        if let Some((_, kept_hops)) = self.kept.get_mut(&key.message) {
                            *kept_hops = (*kept_hops).max(hop_limit);
                        }
                        let origin = seen.origin;
                        let heard_hop = seen.heard_hop;
                        match &seen.state {
                            // Neighbours relayed it first: ours would add little here.
                            FrameState::Scheduled { heard, .. }
                                if !origin && hop_limit < heard_hop =>
                            {
                                if heard + 1 >= SUPPRESS_AFTER {
                                    seen.state = FrameState::Done;
                                } else if let FrameState::Scheduled { heard, .. } = &mut seen.state
                                {
                                    *heard += 1;
                                }
                            }
                            // Our transmission was relayed onward: confirmed.
                            FrameState::Sent {
                                packet:
                                    Packet::Data {
                                        hop_limit: sent, ..
                                    },
                                ..
                            } if hop_limit < *sent => {
                                seen.state = FrameState::Done;
                                self.confirmed(key, origin, &mut actions);
                            }
                            // The sender upstream retries: it did not hear us; tell it we have it.
                            FrameState::Sent { .. } | FrameState::Done
                                if !origin && hop_limit >= heard_hop =>
                            {
                                acks.push(Packet::Ack {
                                    key,
                                    count,
                                    hop_limit: heard,
                                });
                            }
                            _ => {}
                        }
                    }
                    // A message this node holds whole (it heard it before its dedupe memory
                    // forgot, or made it): nothing to deliver or relay again.
                    None if self.kept.contains_key(&key.message) => {
                        self.remember_heard(now_ms, key, hop_limit, FrameState::Done);
                    }
                    None => {
                        let state = if hop_limit > 0 {
                            let delay = self.random_below(self.config.contention_window_ms());
                            FrameState::Scheduled {
                                at_ms: now_ms + delay,
                                packet: Packet::Data {
                                    hop_limit: hop_limit - 1,
                                    key,
                                    count,
                                    chunk: chunk.clone(),
                                },
                                heard: 0,
                            }
                        } else {
                            acks.push(Packet::Ack {
                                key,
                                count,
                                hop_limit: heard,
                            });
                            FrameState::Done
                        };
                        self.remember_heard(now_ms, key, hop_limit, state);
                        if let Some(message) = self.reassembler.push(now_ms, key, count, &chunk) {
                            self.keep(now_ms, &message, hop_limit.saturating_add(CATCH_UP_SLACK));
                            actions.push(Action::Deliver(message));
                        }
                    }
                }
            }
        }
        for ack in acks {
            self.delay(now_ms, None, ack);
        }
        Ok(actions)
    }

    fn confirmed(&mut self, key: FrameKey, origin: bool, actions: &mut Vec<Action>) {
        if !origin {
            return;
        }
        if let Some(left) = self.origin.get_mut(&key.message) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.origin.remove(&key.message);
                actions.push(Action::Confirmed(key.message));
            }
        }
    }

    /// Sends what is due at `now_ms`: scheduled rebroadcasts and retries, delayed
    /// acknowledgements and catch-up, and the summary.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let network = self.config.network.clone();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(at, _, _)| *at <= now_ms);
        self.delayed = later;
        let mut due = due;
        due.sort_by_key(|(at, _, _)| *at);
        for (_, _, packet) in due {
            actions.push(Action::Transmit(packet.seal(&network, now_ms)));
        }
        if self.next_summary_ms.is_some_and(|at| at <= now_ms) {
            self.expire_kept(now_ms);
            let active = now_ms < self.active_until_ms;
            if active || std::mem::take(&mut self.summary_once) {
                let summary = self.summary(now_ms);
                actions.push(Action::Transmit(summary.seal(&network, now_ms)));
                self.last_summary_ms = Some(now_ms);
            }
            let every = self.config.summary_every_ms << self.summary_backoff;
            self.summary_backoff = (self.summary_backoff + 1).min(SUMMARY_BACKOFF_MAX);
            self.next_summary_ms = active.then(|| now_ms + every / 2 + self.random_below(every));
        }
        let mut given_up = Vec::new();
        let config = self.config.clone();
        // Retries wait a random extra share of the contention window, so two nodes that
        // collided once do not collide again on every retry.
        let jitter: Vec<u64> = (0..8)
            .map(|_| self.random_below(config.contention_window_ms()))
            .collect();
        let mut due: Vec<(&FrameKey, &mut Seen)> = self
            .seen
            .iter_mut()
            .filter(|(_, seen)| match seen.state {
                FrameState::Scheduled { at_ms, .. } => at_ms <= now_ms,
                FrameState::Sent { retry_at_ms, .. } => retry_at_ms <= now_ms,
                FrameState::Done => false,
            })
            .collect();
        // Oldest first, fragments in order.
        due.sort_by_key(|(_, seen)| (seen.at_ms, seen.order));
        for (n, (key, seen)) in due.into_iter().enumerate() {
            let jitter = jitter[n % jitter.len()];
            match std::mem::replace(&mut seen.state, FrameState::Done) {
                FrameState::Scheduled { packet, .. } => {
                    actions.push(Action::Transmit(packet.seal(&config.network, now_ms)));
                    // A last-hop rebroadcast is relayed by nobody: nothing can confirm it.
                    if !seen.origin && matches!(packet, Packet::Data { hop_limit: 0, .. }) {
                        continue;
                    }
                    seen.state = FrameState::Sent {
                        retry_at_ms: now_ms + config.confirm_timeout_ms(0) + jitter,
                        tries: 0,
                        packet,
                    };
                }
                FrameState::Sent { tries, packet, .. }
                    if tries
                        < if seen.origin {
                            config.max_retries
                        } else {
                            config.max_relay_retries
                        } =>
                {
                    actions.push(Action::Transmit(packet.seal(&config.network, now_ms)));
                    seen.state = FrameState::Sent {
                        retry_at_ms: now_ms + config.confirm_timeout_ms(tries + 1) + jitter,
                        tries: tries + 1,
                        packet,
                    };
                }
                FrameState::Sent { .. } => {
                    if seen.origin {
                        given_up.push(key.message);
                    }
                }
                FrameState::Done => {}
            }
        }
        for message in given_up {
            if self.origin.remove(&message).is_some() {
                actions.push(Action::Unconfirmed(message));
            }
        }
        actions
    }

    /// When [`Node::poll`] next has something to do.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.seen
            .values()
            .filter_map(|seen| match seen.state {
                FrameState::Scheduled { at_ms, .. } => Some(at_ms),
                FrameState::Sent { retry_at_ms, .. } => Some(retry_at_ms),
                FrameState::Done => None,
            })
            .chain(self.delayed.iter().map(|(at, _, _)| *at))
            .chain(self.next_summary_ms)
            .min()
    }
}

#[cfg(test)]
mod tests;
