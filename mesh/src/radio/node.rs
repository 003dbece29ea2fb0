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
    Scheduled { at_ms: u64, packet: Packet },
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
}

/// How many frames the node remembers for dedupe, and for how long.
const SEEN_LIMIT: usize = 8192;
const SEEN_TTL_MS: u64 = 30 * 60 * 1000;

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
        }
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
        for packet in packets {
            let key = packet.key();
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
                    },
                    origin: true,
                },
            );
        }
        Ok(true)
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
        let network = self.config.network.clone();
        let mut actions = Vec::new();
        let key = packet.key();
        match packet {
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
                match self.seen.get_mut(&key) {
                    Some(seen) => {
                        let origin = seen.origin;
                        let heard_hop = seen.heard_hop;
                        match &seen.state {
                            // A neighbour relayed it first: ours would add nothing here.
                            FrameState::Scheduled { .. } if !origin && hop_limit < heard_hop => {
                                seen.state = FrameState::Done;
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
                                let ack = Packet::Ack {
                                    key,
                                    count,
                                    hop_limit: heard,
                                };
                                actions.push(Action::Transmit(ack.seal(&network, now_ms)));
                            }
                            _ => {}
                        }
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
                            }
                        } else {
                            let ack = Packet::Ack {
                                key,
                                count,
                                hop_limit: heard,
                            };
                            actions.push(Action::Transmit(ack.seal(&network, now_ms)));
                            FrameState::Done
                        };
                        self.remember(
                            now_ms,
                            key,
                            Seen {
                                at_ms: now_ms,
                                heard_hop: hop_limit,
                                order: 0,
                                state,
                                origin: false,
                            },
                        );
                        if let Some(message) = self.reassembler.push(now_ms, key, count, &chunk) {
                            actions.push(Action::Deliver(message));
                        }
                    }
                }
            }
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

    /// Sends what is due at `now_ms`: scheduled rebroadcasts and retries.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
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
                FrameState::Sent { tries, packet, .. } if tries < config.max_retries => {
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
            .min()
    }
}

#[cfg(test)]
mod tests;
