//! The radio driver: everything between a relay [`Node`] and a radio link, without I/O, so the
//! server's bridge and the page's Web Serial radio behave the same.
//!
//! It keeps this side's own messages until a neighbour confirms them (sending them again with
//! growing pauses, and giving up after a day), starts them only while a link is up (oldest
//! first when it comes back), and paces the frames it hands the link by their airtime, so a
//! radio's small buffer never overflows and retries are not lost in it. A room's messages go
//! one at a time, in the order they were written: the next starts once the one before is
//! confirmed (or its round of retries ended unconfirmed), so a message lost on the air and
//! sent again does not arrive after the ones written after it. An SOS or its answer never
//! waits behind them. Time comes in as a
//! parameter (milliseconds by any clock that only moves forward; a clock that steps back is
//! held where it was).

use std::collections::{HashMap, VecDeque};

use super::node::{Action, Node, NodeConfig};
use super::packet::MessageKey;
use super::{RadioError, RadioMessage};
use crate::envelope::{MessageId, RoomId};

/// First pause before an unconfirmed message is sent again.
pub const RESEND_AFTER_MS: u64 = 2 * 60 * 1000;
/// The pause doubles after each unconfirmed round, up to this.
pub const MAX_RESEND_AFTER_MS: u64 = 32 * 60 * 1000;
/// A message of this side is dropped when no neighbour confirmed it within this long of being
/// written (sent or not: with no radio for a day it matters to nobody any more).
pub const GIVE_UP_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
/// Pause between frames handed to the radio, beyond their airtime.
pub const AIR_GAP_MS: u64 = 30;
/// Bytes of frames waiting for airtime, at most (128 full frames).
pub const MAX_AIR_QUEUE_BYTES: usize = 128 * super::MAX_FRAME_BYTES;

/// The driver's timing and limits.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The relay node's settings (frame size, hop limit, bitrate, retries).
    pub node: NodeConfig,
    /// First pause before an unconfirmed message goes again.
    pub resend_after_ms: u64,
    /// Longest pause between rounds.
    pub max_resend_after_ms: u64,
    /// Give up on a message this long after it was written.
    pub give_up_after_ms: u64,
    /// Pause between frames beyond their airtime.
    pub air_gap_ms: u64,
    /// Most bytes waiting for airtime; the oldest frame goes when more arrive (the node
    /// retries what mattered).
    pub max_air_queue_bytes: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            node: NodeConfig::default(),
            resend_after_ms: RESEND_AFTER_MS,
            max_resend_after_ms: MAX_RESEND_AFTER_MS,
            give_up_after_ms: GIVE_UP_AFTER_MS,
            air_gap_ms: AIR_GAP_MS,
            max_air_queue_bytes: MAX_AIR_QUEUE_BYTES,
        }
    }
}

/// A message written on this side, to carry over the radio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnMessage {
    /// Its room.
    pub room: RoomId,
    /// Its envelope id.
    pub id: MessageId,
    /// Its radio form.
    pub message: RadioMessage,
    /// When it was written (by the same clock as the driver's time).
    pub queued_at_ms: u64,
    /// An SOS or its answer: its frames go before every other frame waiting for airtime,
    /// and an unconfirmed round goes again four times sooner.
    pub urgent: bool,
}

/// What the driver asks its owner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Write this frame to the radio link now.
    Transmit(Vec<u8>),
    /// A whole message was heard for the first time: store and show it.
    Heard(RadioMessage),
    /// A neighbour confirmed a message of this side: it is on its way to other camps.
    Relayed(OwnMessage),
    /// Nobody confirmed a message of this side within the give-up time: stop keeping it.
    GaveUp(OwnMessage),
}

/// Counters for the radio panel and the figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Messages of this side not confirmed yet.
    pub own_waiting: usize,
    /// Frames waiting for airtime.
    pub air_queue: usize,
    /// Frames dropped because the link was down or the air queue was full.
    pub frames_dropped: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    /// Waiting for a link to start on.
    Waiting,
    /// The node carries it.
    OnAir,
    /// Unconfirmed after a round; goes again at this time.
    ResendAt(u64),
}

#[derive(Debug)]
struct Own {
    message: OwnMessage,
    round: Round,
    /// Rounds that went unconfirmed.
    rounds: u32,
    /// Order written, for oldest-first starts.
    order: u64,
}

/// The radio driver. Feed it messages to send ([`Driver::queue`]), frames heard
/// ([`Driver::receive`]) and the link's state ([`Driver::link_up`], [`Driver::link_down`]); call
/// [`Driver::poll`] at [`Driver::next_wakeup`]; carry out the [`Event`]s it returns.
#[derive(Debug)]
pub struct Driver {
    config: DriverConfig,
    node: Node,
    own: HashMap<MessageKey, Own>,
    written: u64,
    link_up: bool,
    air_queue: VecDeque<Vec<u8>>,
    air_queue_bytes: usize,
    /// How many frames at the front of the air queue are urgent ones.
    urgent_frames: usize,
    /// Events that came up outside a poll, for the next one.
    held: Vec<Event>,
    /// Rooms whose message on the air left it (confirmed, unconfirmed, given up): their next
    /// waiting message may start.
    freed: Vec<RoomId>,
    /// When the radio is done with the frames handed to it.
    air_free_at: u64,
    now: u64,
    dropped: u64,
}

impl Driver {
    /// A driver with `config`; `seed` seeds the node's jitter.
    pub fn new(config: DriverConfig, seed: u64) -> Self {
        Self {
            node: Node::new(config.node.clone(), seed),
            config,
            own: HashMap::new(),
            written: 0,
            link_up: false,
            air_queue: VecDeque::new(),
            air_queue_bytes: 0,
            urgent_frames: 0,
            held: Vec::new(),
            freed: Vec::new(),
            air_free_at: 0,
            now: 0,
            dropped: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> DriverStats {
        DriverStats {
            own_waiting: self.own.len(),
            air_queue: self.air_queue.len(),
            frames_dropped: self.dropped,
        }
    }

    /// Whether a link is up.
    pub fn is_link_up(&self) -> bool {
        self.link_up
    }

    /// This side got the message `key`, sent at `sent_at_s`, by another path (over IP): see
    /// [`Node::held_elsewhere`].
    pub fn held_elsewhere(&mut self, key: MessageKey, sent_at_s: u32) {
        self.node.held_elsewhere(key, sent_at_s);
    }

    /// Whether `key` is a message of this side still waiting for confirmation.
    pub fn is_waiting(&self, key: MessageKey) -> bool {
        self.own.contains_key(&key)
    }

    fn clock(&mut self, now_ms: u64) -> u64 {
        self.now = self.now.max(now_ms);
        self.now
    }

    /// Takes a message of this side. `Ok(false)` when it is already carried (an outbox
    /// replayed after a reconnect or a restart goes out once). It starts at once when a link
    /// is up, else when one comes up.
    pub fn queue(&mut self, now_ms: u64, message: OwnMessage) -> Result<bool, RadioError> {
        let now = self.clock(now_ms);
        let key = message.message.key;
        if self.own.contains_key(&key) || self.node.has_seen(key) {
            return Ok(false);
        }
        // Refuse what can never go out before keeping it.
        message
            .message
            .fragments(self.config.node.hop_limit, self.config.node.frame_bytes)?;
        self.written += 1;
        self.own.insert(
            key,
            Own {
                message,
                round: Round::Waiting,
                rounds: 0,
                order: self.written,
            },
        );
        if self.link_up {
            // Its frames leave at the next poll, paced with the rest (an urgent message's
            // ahead of them); what starting it brought is told then too.
            let mut events = Vec::new();
            self.start(now, key, &mut events);
            self.held.extend(events);
        }
        Ok(true)
    }

    /// A link came up: start, oldest first, every message of this side that waits for one.
    pub fn link_up(&mut self, now_ms: u64) -> Vec<Event> {
        let now = self.clock(now_ms);
        self.link_up = true;
        // Urgent ones first, then oldest first.
        let mut waiting: Vec<(bool, u64, MessageKey)> = self
            .own
            .iter()
            .filter(|(_, own)| own.round == Round::Waiting)
            .map(|(key, own)| (!own.message.urgent, own.order, *key))
            .collect();
        waiting.sort();
        let mut events = Vec::new();
        for (_, _, key) in waiting {
            self.start(now, key, &mut events);
        }
        self.finish(now, events)
    }

    /// The link went away: frames waiting for airtime are dropped (the node retries them),
    /// and nothing new starts until a link is up again.
    pub fn link_down(&mut self) {
        self.link_up = false;
        self.dropped += self.air_queue.len() as u64;
        self.air_queue.clear();
        self.air_queue_bytes = 0;
        self.urgent_frames = 0;
    }

    /// A frame the link heard.
    pub fn receive(&mut self, now_ms: u64, frame: &[u8]) -> Result<Vec<Event>, RadioError> {
        let now = self.clock(now_ms);
        let actions = self.node.receive(now, frame)?;
        let events = self.act(now, actions);
        Ok(self.finish(now, events))
    }

    /// Does what is due at `now_ms`: rebroadcasts, retries, resends, give-ups, paced frames.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Event> {
        let now = self.clock(now_ms);
        let actions = self.node.poll(now);
        let mut events = self.act(now, actions);
        let due: Vec<MessageKey> = self
            .own
            .iter()
            .filter(|(_, own)| matches!(own.round, Round::ResendAt(at) if at <= now))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            self.node.forget(key);
            if let Some(own) = self.own.get_mut(&key) {
                own.round = Round::Waiting;
            }
            if self.link_up {
                self.start(now, key, &mut events);
            }
        }
        let expired: Vec<MessageKey> = self
            .own
            .iter()
            .filter(|(_, own)| self.expired(now, own))
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            self.node.forget(key);
            if let Some(own) = self.own.remove(&key) {
                self.freed.push(own.message.room);
                events.push(Event::GaveUp(own.message));
            }
        }
        self.finish(now, events)
    }

    /// When [`Driver::poll`] next has something to do.
    pub fn next_wakeup(&self) -> Option<u64> {
        let node = self.node.next_wakeup();
        let air = (!self.air_queue.is_empty() || !self.held.is_empty()).then_some(self.air_free_at);
        let own = self
            .own
            .values()
            .map(|own| {
                let give_up = own
                    .message
                    .queued_at_ms
                    .saturating_add(self.config.give_up_after_ms)
                    .saturating_add(1);
                match own.round {
                    Round::ResendAt(at) => at.min(give_up),
                    _ => give_up,
                }
            })
            .min();
        [node, air, own].into_iter().flatten().min()
    }

    fn expired(&self, now: u64, own: &Own) -> bool {
        now.saturating_sub(own.message.queued_at_ms) > self.config.give_up_after_ms
    }

    /// Whether `own` waits for an earlier message of its room that is on the air.
    fn behind_another(&self, own: &Own) -> bool {
        !own.message.urgent
            && self.own.values().any(|other| {
                other.message.room == own.message.room
                    && other.order < own.order
                    && !other.message.urgent
                    && other.round == Round::OnAir
            })
    }

    /// Starts the waiting messages of the rooms whose message on the air left it, oldest
    /// first (each start holds the room's later ones again).
    fn start_freed(&mut self, now: u64, events: &mut Vec<Event>) {
        while let Some(room) = self.freed.pop() {
            if !self.link_up {
                self.freed.clear();
                return;
            }
            let mut waiting: Vec<(u64, MessageKey)> = self
                .own
                .iter()
                .filter(|(_, own)| own.message.room == room && own.round == Round::Waiting)
                .map(|(key, own)| (own.order, *key))
                .collect();
            waiting.sort();
            for (_, key) in waiting {
                self.start(now, key, events);
            }
        }
    }

    fn start(&mut self, now: u64, key: MessageKey, events: &mut Vec<Event>) {
        let Some(own) = self.own.get(&key) else {
            return;
        };
        if self.behind_another(own) {
            return;
        }
        let urgent = own.message.urgent;
        if urgent {
            // What was due already goes its usual way first: the frames the node gives after
            // the send are then this message's alone.
            let due = self.node.poll(now);
            let more = self.act(now, due);
            events.extend(more);
        }
        let Some(own) = self.own.get_mut(&key) else {
            return;
        };
        match self.node.send(now, &own.message.message) {
            Ok(true) => {
                own.round = Round::OnAir;
                if urgent {
                    // Its frames are due now: they go ahead of everything waiting for air
                    // but the calls made before it.
                    let actions = self.node.poll(now);
                    let (frames, rest): (Vec<Action>, Vec<Action>) = actions
                        .into_iter()
                        .partition(|a| matches!(a, Action::Transmit(_)));
                    for frame in frames {
                        if let Action::Transmit(frame) = frame {
                            self.air_queue_bytes += frame.len();
                            self.air_queue.insert(self.urgent_frames, frame);
                            self.urgent_frames += 1;
                        }
                    }
                    let more = self.act(now, rest);
                    events.extend(more);
                    self.bound_air_queue();
                }
            }
            // The node still remembers it from an earlier round: it is on the air already.
            Ok(false) => own.round = Round::OnAir,
            Err(_) => {
                // Cannot happen for a message `queue` accepted; never keep it forever.
                if let Some(own) = self.own.remove(&key) {
                    events.push(Event::GaveUp(own.message));
                }
            }
        }
    }

    fn act(&mut self, now: u64, actions: Vec<Action>) -> Vec<Event> {
        let mut events = Vec::new();
        for action in actions {
            match action {
                Action::Transmit(frame) => self.onto_air(frame),
                Action::Deliver(message) => events.push(Event::Heard(message)),
                Action::Confirmed(key) => {
                    if let Some(own) = self.own.remove(&key) {
                        self.freed.push(own.message.room);
                        events.push(Event::Relayed(own.message));
                    }
                }
                Action::Unconfirmed(key) => {
                    let pause = self.resend_pause(key);
                    if let Some(own) = self.own.get_mut(&key) {
                        own.rounds += 1;
                        own.round = Round::ResendAt(now + pause);
                        self.freed.push(own.message.room);
                    }
                }
            }
        }
        events
    }

    /// The pause before the next round of `key`: doubling from the first, up to the longest;
    /// a quarter of that for an urgent message.
    fn resend_pause(&self, key: MessageKey) -> u64 {
        let (rounds, urgent) = self
            .own
            .get(&key)
            .map_or((0, false), |own| (own.rounds.min(20), own.message.urgent));
        let pause = self
            .config
            .resend_after_ms
            .saturating_mul(1u64 << rounds)
            .min(self.config.max_resend_after_ms);
        if urgent {
            pause / 4
        } else {
            pause
        }
    }

    fn onto_air(&mut self, frame: Vec<u8>) {
        if !self.link_up {
            self.dropped += 1;
            return;
        }
        self.air_queue_bytes += frame.len();
        self.air_queue.push_back(frame);
        self.bound_air_queue();
    }

    /// More than the radio can send for a long while: the oldest plain frames go (the node
    /// retries what mattered), urgent ones last, the latest call's first (the calls made
    /// before it keep their turn).
    fn bound_air_queue(&mut self) {
        while self.air_queue_bytes > self.config.max_air_queue_bytes {
            let index = if self.urgent_frames < self.air_queue.len() {
                self.urgent_frames
            } else {
                self.urgent_frames = self.urgent_frames.saturating_sub(1);
                self.air_queue.len().saturating_sub(1)
            };
            let Some(old) = self.air_queue.remove(index) else {
                break;
            };
            self.air_queue_bytes -= old.len();
            self.dropped += 1;
        }
    }

    /// Adds the frames the radio can take now: one frame's airtime (and a gap) apart.
    fn finish(&mut self, now: u64, mut events: Vec<Event>) -> Vec<Event> {
        self.start_freed(now, &mut events);
        if !self.held.is_empty() {
            let mut held = std::mem::take(&mut self.held);
            held.append(&mut events);
            events = held;
        }
        while self.air_free_at <= now {
            let Some(frame) = self.air_queue.pop_front() else {
                break;
            };
            self.urgent_frames = self.urgent_frames.saturating_sub(1);
            self.air_queue_bytes -= frame.len();
            let airtime = self.config.node.airtime_ms(frame.len());
            self.air_free_at = now.max(self.air_free_at) + airtime + self.config.air_gap_ms;
            events.push(Event::Transmit(frame));
        }
        events
    }
}

#[cfg(test)]
mod tests;
