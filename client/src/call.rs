//! Calls and the walkie-talkie of a room, as decisions: who is in a line and who offers to
//! whom, who is connecting, reconnecting or gone, which calls the room has going on, and who
//! holds the walkie-talkie. The page carries them out with WebRTC; times are milliseconds on
//! the page's clock, passed in.
//!
//! People are told apart by their device ([`SenderId`]), not their connection: a phone whose
//! WebSocket comes back on a new connection is the same person in the call, and its media,
//! which goes directly between the phones, never stopped.

use std::collections::BTreeMap;

use mesh::call::MAX_CALL_PEOPLE;
use mesh::SenderId;

/// Someone in a line says so this often (so a page that opens the room later sees the call,
/// and a page that lost a signal learns of the others again).
pub const HERE_EVERY_MS: f64 = 4_000.0;
/// Someone not heard from for this long has left (their page closed without a word).
pub const HEARD_WITHIN_MS: f64 = 3.0 * HERE_EVERY_MS;
/// A connection that dropped is shown as reconnecting this long, then as gone.
pub const RECONNECT_MS: f64 = 10_000.0;
/// A gone person stays on screen this long before the tile goes.
pub const GONE_SHOWN_MS: f64 = 4_000.0;
/// The longest one press of the walkie-talkie holds it (a page that vanished mid-press frees
/// it then at the latest).
pub const MAX_HOLD_MS: f64 = 60_000.0;
/// Two presses heard within this long of each other are settled by their press times; after
/// it, the first one heard keeps the walkie-talkie.
pub const CONTEST_MS: f64 = 1_500.0;

/// Where a connection to one person stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Being set up.
    Connecting,
    /// Media flows.
    Connected,
    /// It dropped; the browser is trying to get it back.
    Reconnecting,
    /// It is over (they left, or it could not come back).
    Gone,
}

impl PeerState {
    /// The word shown on their tile.
    pub fn label(self) -> &'static str {
        match self {
            PeerState::Connecting => "connecting…",
            PeerState::Connected => "",
            PeerState::Reconnecting => "reconnecting…",
            PeerState::Gone => "left",
        }
    }
}

/// One other person in a line this page is in.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// Their device.
    pub sender: SenderId,
    /// Their connection now (where signals for them go).
    pub route: [u8; 32],
    /// Where the connection to them stands.
    pub state: PeerState,
    /// Their camera is on.
    pub video: bool,
    since_ms: f64,
}

/// What the page does next for a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make a connection to this person and send them an offer (this page offers: its device
    /// id is the smaller).
    Offer(SenderId),
    /// Tell this connection (directly) that this page is in the line, so it can offer.
    SayHere([u8; 32]),
    /// Close the connection to this person.
    Close(SenderId),
}

/// A line (call or walkie-talkie) this page is in: the other people and their connections.
#[derive(Clone, Debug)]
pub struct Line {
    me: SenderId,
    peers: BTreeMap<SenderId, Peer>,
}

impl Line {
    /// This device (`me`) enters a line: nobody is known yet (the page then says it is here).
    pub fn new(me: SenderId) -> Self {
        Self {
            me,
            peers: BTreeMap::new(),
        }
    }

    /// The others, in a steady order.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// One of the others.
    pub fn peer(&self, sender: SenderId) -> Option<&Peer> {
        self.peers.get(&sender)
    }

    /// People in the line now, this page included (the gone are not).
    pub fn count(&self) -> usize {
        1 + self
            .peers
            .values()
            .filter(|p| p.state != PeerState::Gone)
            .count()
    }

    /// Whether this page makes the offer to `other`.
    pub fn offers_to(&self, other: SenderId) -> bool {
        self.me.0 < other.0
    }

    /// Adds (or brings back) `sender` on `route`, when there is room, and says whether they
    /// are new; `None` when the line is full or it is this device (another tab of it).
    fn admit(&mut self, sender: SenderId, route: [u8; 32], now: f64) -> Option<(bool, &mut Peer)> {
        if sender == self.me {
            return None;
        }
        let known = self
            .peers
            .get(&sender)
            .is_some_and(|p| p.state != PeerState::Gone);
        if !known && self.count() >= MAX_CALL_PEOPLE {
            return None;
        }
        let peer = self.peers.entry(sender).or_insert(Peer {
            sender,
            route,
            state: PeerState::Connecting,
            video: false,
            since_ms: now,
        });
        let new = !known;
        if peer.state == PeerState::Gone {
            peer.state = PeerState::Connecting;
            peer.since_ms = now;
        }
        peer.route = route;
        Some((new, peer))
    }

    /// `sender` said, on connection `from`, that they are in the line (`direct`: to this page
    /// alone, in answer to its own word).
    pub fn on_here(
        &mut self,
        sender: SenderId,
        from: [u8; 32],
        direct: bool,
        video: bool,
        now: f64,
    ) -> Vec<Step> {
        let offers = self.offers_to(sender);
        let Some((new, peer)) = self.admit(sender, from, now) else {
            return Vec::new();
        };
        peer.video = video;
        let mut steps = Vec::new();
        if !new && direct && offers {
            // A word to this page alone from someone known: their page is new (it reloaded)
            // and waits for an offer; the old connection is dead.
            steps.push(Step::Close(sender));
            steps.push(Step::Offer(sender));
        } else if new {
            if offers {
                steps.push(Step::Offer(sender));
            } else if !direct {
                // They are new and do not know this page is here: they offer once told.
                steps.push(Step::SayHere(from));
            }
        }
        steps
    }

    /// `sender` sent an offer on connection `from`: whether to answer it (the line has room
    /// for them).
    pub fn on_offer(&mut self, sender: SenderId, from: [u8; 32], now: f64) -> bool {
        match self.admit(sender, from, now) {
            Some((_, peer)) => {
                if peer.state == PeerState::Reconnecting {
                    peer.state = PeerState::Connecting;
                    peer.since_ms = now;
                }
                true
            }
            None => false,
        }
    }

    /// `sender` left the line.
    pub fn on_leave(&mut self, sender: SenderId, now: f64) -> Vec<Step> {
        self.gone(sender, now)
    }

    fn gone(&mut self, sender: SenderId, now: f64) -> Vec<Step> {
        match self.peers.get_mut(&sender) {
            Some(peer) if peer.state != PeerState::Gone => {
                peer.state = PeerState::Gone;
                peer.since_ms = now;
                vec![Step::Close(sender)]
            }
            _ => Vec::new(),
        }
    }

    /// The browser's `connectionState` of the connection to `sender` changed.
    pub fn on_connection(&mut self, sender: SenderId, state: &str, now: f64) -> Vec<Step> {
        let Some(peer) = self.peers.get_mut(&sender) else {
            return Vec::new();
        };
        match (state, peer.state) {
            (_, PeerState::Gone) => Vec::new(),
            ("connected", _) => {
                peer.state = PeerState::Connected;
                peer.since_ms = now;
                Vec::new()
            }
            ("disconnected", PeerState::Connected) => {
                peer.state = PeerState::Reconnecting;
                peer.since_ms = now;
                Vec::new()
            }
            ("failed" | "closed", _) => self.gone(sender, now),
            _ => Vec::new(),
        }
    }

    /// Time passed: reconnecting or connecting too long is gone, and a gone tile is dropped
    /// after it was shown a while.
    pub fn tick(&mut self, now: f64) -> Vec<Step> {
        let mut steps = Vec::new();
        let stale: Vec<SenderId> = self
            .peers
            .values()
            .filter(|p| match p.state {
                PeerState::Reconnecting | PeerState::Connecting => now - p.since_ms > RECONNECT_MS,
                // Media goes directly between the phones: a connected person stays while
                // it flows, even when the server (and their words) are away for a while.
                PeerState::Connected | PeerState::Gone => false,
            })
            .map(|p| p.sender)
            .collect();
        for sender in stale {
            steps.extend(self.gone(sender, now));
        }
        self.peers
            .retain(|_, p| p.state != PeerState::Gone || now - p.since_ms < GONE_SHOWN_MS);
        steps
    }
}

/// A call going on in the room that this page is not in.
#[derive(Clone, Debug, PartialEq)]
pub struct HeardCall {
    /// The call's id.
    pub id: [u8; 16],
    /// Who started it, as far as this page knows (the first heard).
    pub caller: SenderId,
    /// Who is in it, and when each was last heard.
    people: BTreeMap<SenderId, f64>,
    /// Someone in it has their camera on.
    pub video: bool,
    /// This page said it will not join (the call is then shown quietly, not ringing).
    pub declined: bool,
}

impl HeardCall {
    /// How many are in it.
    pub fn count(&self) -> usize {
        self.people.len()
    }

    /// Whether it is full.
    pub fn full(&self) -> bool {
        self.count() >= MAX_CALL_PEOPLE
    }
}

/// The calls going on in a room, as heard from their people's words.
#[derive(Clone, Debug, Default)]
pub struct HeardCalls {
    calls: Vec<HeardCall>,
}

impl HeardCalls {
    /// The calls, oldest first.
    pub fn calls(&self) -> &[HeardCall] {
        &self.calls
    }

    /// One call.
    pub fn get(&self, id: [u8; 16]) -> Option<&HeardCall> {
        self.calls.iter().find(|c| c.id == id)
    }

    /// `sender` is in call `id`.
    pub fn on_here(&mut self, id: [u8; 16], sender: SenderId, video: bool, now: f64) {
        match self.calls.iter_mut().find(|c| c.id == id) {
            Some(call) => {
                call.people.insert(sender, now);
                call.video |= video;
            }
            None => self.calls.push(HeardCall {
                id,
                caller: sender,
                people: BTreeMap::from([(sender, now)]),
                video,
                declined: false,
            }),
        }
    }

    /// `sender` left call `id`; a call with nobody left is over.
    pub fn on_leave(&mut self, id: [u8; 16], sender: SenderId) {
        if let Some(call) = self.calls.iter_mut().find(|c| c.id == id) {
            call.people.remove(&sender);
        }
        self.calls.retain(|c| !c.people.is_empty());
    }

    /// This page will not join call `id`.
    pub fn decline(&mut self, id: [u8; 16]) {
        if let Some(call) = self.calls.iter_mut().find(|c| c.id == id) {
            call.declined = true;
        }
    }

    /// Forgets call `id` (this page joined it, or left the room).
    pub fn forget(&mut self, id: [u8; 16]) {
        self.calls.retain(|c| c.id != id);
    }

    /// Time passed: people not heard from lately have left.
    pub fn tick(&mut self, now: f64) {
        for call in &mut self.calls {
            call.people
                .retain(|_, heard| now - *heard <= HEARD_WITHIN_MS);
        }
        self.calls.retain(|c| !c.people.is_empty());
    }
}

/// Who holds a room's walkie-talkie: one speaker at a time.
#[derive(Clone, Debug, Default)]
pub struct Floor {
    holder: Option<Holder>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Holder {
    sender: SenderId,
    pressed_ms: u64,
    heard_ms: f64,
}

/// What a word about the walkie-talkie changed for this page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloorChange {
    /// Nothing this page must act on.
    Nothing,
    /// This page was holding it and someone else pressed first: stop sending.
    Lost(SenderId),
}

impl Floor {
    /// Who holds it now.
    pub fn holder(&self) -> Option<SenderId> {
        self.holder.map(|h| h.sender)
    }

    fn wins(a: (u64, SenderId), b: (u64, SenderId)) -> bool {
        (a.0, a.1 .0) < (b.0, b.1 .0)
    }

    /// This page (`me`) presses the button at `pressed_ms` (its clock): `Ok` when it may
    /// speak, else who speaks.
    pub fn press(&mut self, me: SenderId, pressed_ms: u64, now: f64) -> Result<(), SenderId> {
        match self.holder {
            Some(holder) if holder.sender != me => Err(holder.sender),
            _ => {
                self.holder = Some(Holder {
                    sender: me,
                    pressed_ms,
                    heard_ms: now,
                });
                Ok(())
            }
        }
    }

    /// This page (`me`) let go: whether it was holding (and must say so).
    pub fn release(&mut self, me: SenderId) -> bool {
        if self.holder() == Some(me) {
            self.holder = None;
            return true;
        }
        false
    }

    /// `sender` pressed (`holding`) or released; `me` is this page.
    pub fn on_floor(
        &mut self,
        me: SenderId,
        sender: SenderId,
        holding: bool,
        pressed_ms: u64,
        now: f64,
    ) -> FloorChange {
        if !holding {
            if self.holder() == Some(sender) {
                self.holder = None;
            }
            return FloorChange::Nothing;
        }
        let claim = Holder {
            sender,
            pressed_ms,
            heard_ms: now,
        };
        match self.holder {
            None => self.holder = Some(claim),
            Some(holder) if holder.sender == sender => self.holder = Some(claim),
            Some(holder) => {
                let contested = now - holder.heard_ms <= CONTEST_MS;
                if contested && Self::wins((pressed_ms, sender), (holder.pressed_ms, holder.sender))
                {
                    self.holder = Some(claim);
                    if holder.sender == me {
                        return FloorChange::Lost(sender);
                    }
                }
            }
        }
        FloorChange::Nothing
    }

    /// `sender` left: they hold nothing any more.
    pub fn on_gone(&mut self, sender: SenderId) {
        if self.holder() == Some(sender) {
            self.holder = None;
        }
    }

    /// Time passed: a press held too long (its page vanished) is over.
    pub fn tick(&mut self, now: f64) {
        if self.holder.is_some_and(|h| now - h.heard_ms > MAX_HOLD_MS) {
            self.holder = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SenderId {
        SenderId([n; 32])
    }

    fn route(n: u8) -> [u8; 32] {
        [100 + n; 32]
    }

    #[test]
    fn of_two_people_the_smaller_device_offers_once() {
        // Ben (2) enters a line Ana (1) and Cara (3) are in.
        let mut ben = Line::new(id(2));
        // Ana's word, to the room: Ana is smaller, so Ben tells her he is here; she offers.
        assert_eq!(
            ben.on_here(id(1), route(1), false, false, 0.0),
            [Step::SayHere(route(1))]
        );
        // Cara's word: Ben is smaller, so he offers.
        assert_eq!(
            ben.on_here(id(3), route(3), false, true, 0.0),
            [Step::Offer(id(3))]
        );
        // Their repeated words change nothing.
        assert!(ben.on_here(id(1), route(1), false, false, 10.0).is_empty());
        assert!(ben.on_here(id(3), route(3), false, true, 10.0).is_empty());
        // Ana's side: Ben's direct word makes her offer; a direct word is never answered.
        let mut ana = Line::new(id(1));
        assert_eq!(
            ana.on_here(id(2), route(2), true, false, 0.0),
            [Step::Offer(id(2))]
        );
        let mut cara = Line::new(id(3));
        assert!(cara.on_here(id(2), route(2), true, false, 0.0).is_empty());
        assert!(cara.on_offer(id(2), route(2), 1.0));
        assert_eq!(cara.count(), 2);
        // Ben's page reloads: its fresh word to Ana alone makes her offer again.
        assert_eq!(
            ana.on_here(id(2), route(7), true, false, 5.0),
            [Step::Close(id(2)), Step::Offer(id(2))]
        );
        // Another tab of this device is nobody new.
        assert!(ben.on_here(id(2), route(9), false, false, 0.0).is_empty());
        assert_eq!(ben.count(), 3);
    }

    #[test]
    fn a_line_holds_six_people() {
        let mut line = Line::new(id(1));
        for n in 2..=6 {
            line.on_here(id(n), route(n), false, false, 0.0);
        }
        assert_eq!(line.count(), MAX_CALL_PEOPLE);
        assert!(line.on_here(id(7), route(7), false, false, 0.0).is_empty());
        assert!(!line.on_offer(id(7), route(7), 0.0));
        assert_eq!(line.count(), MAX_CALL_PEOPLE);
        // Someone leaves: there is room again.
        assert_eq!(line.on_leave(id(4), 1.0), [Step::Close(id(4))]);
        assert!(line.on_offer(id(7), route(7), 2.0));
    }

    #[test]
    fn a_dropped_connection_reconnects_or_is_gone() {
        let mut line = Line::new(id(1));
        line.on_here(id(2), route(2), false, false, 0.0);
        line.on_connection(id(2), "connected", 100.0);
        assert_eq!(line.peer(id(2)).unwrap().state, PeerState::Connected);
        // It drops and comes back.
        line.on_connection(id(2), "disconnected", 1_000.0);
        assert_eq!(line.peer(id(2)).unwrap().state, PeerState::Reconnecting);
        line.on_connection(id(2), "connected", 2_000.0);
        assert_eq!(line.peer(id(2)).unwrap().state, PeerState::Connected);
        // It drops for good: reconnecting, then gone, then the tile goes.
        line.on_here(id(2), route(2), false, false, 2_500.0);
        line.on_connection(id(2), "disconnected", 3_000.0);
        assert!(line.tick(3_000.0 + RECONNECT_MS - 1.0).is_empty());
        assert_eq!(line.tick(3_001.0 + RECONNECT_MS), [Step::Close(id(2))]);
        assert_eq!(line.peer(id(2)).unwrap().state, PeerState::Gone);
        assert_eq!(line.count(), 1);
        line.tick(3_001.0 + RECONNECT_MS + GONE_SHOWN_MS);
        assert!(line.peer(id(2)).is_none());
        // They speak again: a new connection.
        assert_eq!(
            line.on_here(id(2), route(8), false, false, 20_000.0),
            [Step::Offer(id(2))]
        );
        assert_eq!(line.peer(id(2)).unwrap().route, route(8));
        // A failed connection is gone at once; one that never connects after a while.
        assert_eq!(
            line.on_connection(id(2), "failed", 20_100.0),
            [Step::Close(id(2))]
        );
        line.on_here(id(3), route(3), false, false, 30_000.0);
        assert_eq!(line.tick(30_001.0 + RECONNECT_MS), [Step::Close(id(3))]);
        // A connected one stays while the server is away (no words come).
        line.on_here(id(4), route(4), false, false, 40_000.0);
        line.on_connection(id(4), "connected", 40_100.0);
        assert!(line.tick(40_000.0 + 10.0 * HEARD_WITHIN_MS).is_empty());
        assert_eq!(line.peer(id(4)).unwrap().state, PeerState::Connected);
    }

    #[test]
    fn calls_heard_ring_until_declined_and_end_when_everyone_left() {
        let mut heard = HeardCalls::default();
        heard.on_here([1; 16], id(1), false, 0.0);
        heard.on_here([1; 16], id(2), true, 100.0);
        let call = heard.get([1; 16]).unwrap();
        assert_eq!((call.caller, call.count(), call.video), (id(1), 2, true));
        heard.decline([1; 16]);
        assert!(heard.get([1; 16]).unwrap().declined);
        heard.on_leave([1; 16], id(1));
        assert_eq!(heard.get([1; 16]).unwrap().count(), 1);
        // The last one's page closed without a word: the call ends when they fall silent.
        heard.tick(100.0 + HEARD_WITHIN_MS);
        assert!(heard.get([1; 16]).is_some());
        heard.tick(101.0 + HEARD_WITHIN_MS);
        assert!(heard.calls().is_empty());
        heard.on_here([2; 16], id(3), false, 0.0);
        heard.on_leave([2; 16], id(3));
        assert!(heard.calls().is_empty());
    }

    #[test]
    fn one_speaker_at_a_time_and_two_presses_at_once_agree() {
        let (ana, ben) = (id(1), id(2));
        // Ben holds; Ana's press is refused, naming Ben.
        let mut at_ana = Floor::default();
        at_ana.on_floor(ana, ben, true, 1_000, 0.0);
        assert_eq!(at_ana.press(ana, 5_000, 4_000.0), Err(ben));
        at_ana.on_floor(ana, ben, false, 1_000, 5_000.0);
        assert_eq!(at_ana.press(ana, 6_000, 6_000.0), Ok(()));
        assert!(at_ana.release(ana));
        assert!(!at_ana.release(ana));

        // Both press at once: Ben pressed earlier (his clock), so on every page he speaks.
        let mut at_ana = Floor::default();
        at_ana.press(ana, 2_000, 0.0).unwrap();
        assert_eq!(
            at_ana.on_floor(ana, ben, true, 1_900, 200.0),
            FloorChange::Lost(ben)
        );
        assert_eq!(at_ana.holder(), Some(ben));
        let mut at_ben = Floor::default();
        at_ben.press(ben, 1_900, 0.0).unwrap();
        assert_eq!(
            at_ben.on_floor(ben, ana, true, 2_000, 200.0),
            FloorChange::Nothing
        );
        assert_eq!(at_ben.holder(), Some(ben));
        let mut at_cara = Floor::default();
        at_cara.on_floor(id(3), ana, true, 2_000, 0.0);
        at_cara.on_floor(id(3), ben, true, 1_900, 50.0);
        assert_eq!(at_cara.holder(), Some(ben));

        // A press long after, with a clock far behind, does not take it over.
        at_cara.on_floor(id(3), id(4), true, 5, 50.0 + CONTEST_MS + 1.0);
        assert_eq!(at_cara.holder(), Some(ben));
        // Someone else's release frees nothing; the holder leaving does.
        at_cara.on_floor(id(3), ana, false, 0, 3_000.0);
        assert_eq!(at_cara.holder(), Some(ben));
        at_cara.on_gone(ben);
        assert_eq!(at_cara.holder(), None);
        // A page that vanished mid-press frees it after the longest press.
        at_cara.on_floor(id(3), ana, true, 9_000, 10_000.0);
        at_cara.tick(10_000.0 + MAX_HOLD_MS);
        assert_eq!(at_cara.holder(), Some(ana));
        at_cara.tick(10_001.0 + MAX_HOLD_MS);
        assert_eq!(at_cara.holder(), None);
    }
}
