//! SOS calls as a device sees them: which raise a banner (and a notification, once), which
//! an answer or the caller's "I am safe" changes, and who may end one.
//!
//! A call is named `ROOM/ID` (its room, and the first six bytes of its message id, which its
//! answers carry). A call its sender ended is remembered as ended for as long as a call is
//! shown, so reading the room again (a reload, an older page, a search) never raises it again.
//! Only the device that signed a call can end it; a call heard over the radio (nothing on the
//! air is signed) is ended by its caller's name.

use std::collections::HashMap;

use mesh::body::Signal;
use mesh::geo::Position;
use mesh::hex::encode as hex;
use serde::{Deserialize, Serialize};

/// An SOS older than this raises no banner, and its end is forgotten.
pub const SHOWN_FOR_MS: u64 = 24 * 60 * 60 * 1000;
/// Most calls kept (the oldest go first).
pub const MAX_CALLS: usize = 32;
/// Most ended calls remembered (the oldest go first).
pub const MAX_ENDED: usize = 256;
/// The sender of what was heard over the radio, where nothing is signed.
pub const RADIO_SENDER: &str = "radio";

/// A message read in a room, as far as calls go.
#[derive(Clone, Copy, Debug)]
pub struct Heard<'a> {
    /// Message id, hex.
    pub id: &'a str,
    /// The device that signed it (hex), or [`RADIO_SENDER`].
    pub sender: &'a str,
    /// The name it was written under.
    pub author: &'a str,
    /// When it was written, by its writer's clock (ms since 1970).
    pub at_ms: u64,
    /// When it reached a server (or this phone's radio), by that clock: a phone's own clock
    /// may be days off after a flat battery, so how long a call shows counts from here.
    pub arrived_ms: Option<u64>,
    /// Its text: a call's note.
    pub text: &'a str,
    /// Where it was written, when its writer said.
    pub position: Option<Position>,
    /// What it signals.
    pub signal: Signal,
}

/// A call as kept on the device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// `ROOM/ID`.
    pub key: String,
    /// The call's message id, hex.
    pub message: String,
    /// Its room, hex.
    pub room: String,
    /// Its room's name.
    pub room_name: String,
    /// Who called.
    pub author: String,
    /// The device that signed it (hex), or [`RADIO_SENDER`].
    pub sender: String,
    /// This device called.
    pub own: bool,
    /// Where the caller was.
    pub position: Option<Position>,
    /// When they called (their phone's clock).
    pub at_ms: u64,
    /// When the call reached a server or this phone: it shows for a day from then.
    pub arrived_ms: u64,
    /// What they wrote with it.
    pub note: String,
    /// Who answered that they are on their way.
    pub coming: Vec<String>,
}

impl Call {
    /// Who called: this device, a device (its key), or over the radio a name. One person's
    /// calls (an SOS goes to two rooms) show as one banner and are answered together.
    pub fn caller(&self) -> String {
        if self.own {
            "own".to_string()
        } else if self.sender == RADIO_SENDER {
            format!("radio:{}", self.author)
        } else {
            self.sender.clone()
        }
    }
}

/// A call its sender ended: who ended it, and when this device learnt it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    /// `ROOM/ID` of the call.
    pub key: String,
    /// The device that signed the end, or [`RADIO_SENDER`].
    pub sender: String,
    /// The name it was written under.
    pub author: String,
    /// When this device learnt it (its own clock).
    pub noted_ms: u64,
}

/// Whether the end by `sender` (`author`) ends a call by `call_sender` (`call_author`): a
/// signed call only by the device that signed it; a call heard over the radio by its caller's
/// name.
fn ends(call_sender: &str, call_author: &str, sender: &str, author: &str) -> bool {
    if call_sender == RADIO_SENDER {
        call_author == author
    } else {
        call_sender == sender
    }
}

/// What reading some messages changed.
#[derive(Debug, Default, PartialEq)]
pub struct Noted {
    /// Others' calls seen for the first time and still open: to be told about, once.
    pub raised: Vec<Call>,
    /// The calls shown changed.
    pub changed: bool,
    /// What the device keeps changed (the calls, or the ends remembered).
    pub keep: bool,
}

/// The calls on a device.
#[derive(Debug, Default)]
pub struct Calls {
    active: HashMap<String, Call>,
    /// Every end seen (a forged one must not hide the real one).
    ended: Vec<Ended>,
}

/// `ROOM/ID`: a call's room and its radio id (the first six bytes of its id, in hex).
pub fn key_of(room: &str, radio_id: &str) -> String {
    format!("{room}/{radio_id}")
}

impl Calls {
    /// The calls and ends kept on the device (what [`Calls::kept`] gave).
    pub fn restore(&mut self, active: Vec<Call>, ended: Vec<Ended>) {
        for call in active {
            self.active.entry(call.key.clone()).or_insert(call);
        }
        for end in ended {
            self.remember(end);
        }
    }

    /// What to keep on the device.
    pub fn kept(&self) -> (Vec<Call>, Vec<Ended>) {
        (self.active.values().cloned().collect(), self.ended.clone())
    }

    /// A call open now.
    pub fn get(&self, key: &str) -> Option<&Call> {
        self.active.get(key)
    }

    /// Whether any call is open.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Whether a call of another is open.
    pub fn any_of_others(&self) -> bool {
        self.active.values().any(|c| !c.own)
    }

    /// Every open call of the caller of `key` (a call went to more than one room: it is
    /// answered, or ends, in all of them).
    pub fn of_caller(&self, key: &str) -> Vec<Call> {
        let Some(caller) = self.active.get(key).map(Call::caller) else {
            return Vec::new();
        };
        self.active
            .values()
            .filter(|c| c.caller() == caller)
            .cloned()
            .collect()
    }

    /// Messages read in the room `room` (hex) named `room_name`, by this device's sender
    /// `own` (hex; empty when not known), at `now_ms`.
    pub fn note<'a>(
        &mut self,
        own: &str,
        now_ms: u64,
        room: &str,
        room_name: &str,
        heard: impl IntoIterator<Item = Heard<'a>>,
    ) -> Noted {
        let mut changed = false;
        let mut keep = false;
        let mut raised = Vec::new();
        for heard in heard {
            match heard.signal {
                Signal::Sos => {
                    let key = key_of(room, heard.id.get(..12).unwrap_or_default());
                    let arrived_ms = heard.arrived_ms.unwrap_or(heard.at_ms);
                    if now_ms.saturating_sub(arrived_ms) > SHOWN_FOR_MS
                        || self.active.contains_key(&key)
                    {
                        continue;
                    }
                    if self.ended.iter().any(|e| {
                        e.key == key && ends(heard.sender, heard.author, &e.sender, &e.author)
                    }) {
                        continue;
                    }
                    let call = Call {
                        key: key.clone(),
                        message: heard.id.to_string(),
                        room: room.to_string(),
                        room_name: room_name.to_string(),
                        author: heard.author.to_string(),
                        sender: heard.sender.to_string(),
                        own: !own.is_empty() && heard.sender == own,
                        position: heard.position,
                        at_ms: heard.at_ms,
                        arrived_ms,
                        note: heard.text.to_string(),
                        coming: Vec::new(),
                    };
                    if !call.own {
                        raised.push(key.clone());
                    }
                    self.active.insert(key, call);
                    changed = true;
                }
                Signal::Safe { of } => {
                    let key = key_of(room, &hex(&of));
                    let end = Ended {
                        key: key.clone(),
                        sender: heard.sender.to_string(),
                        author: heard.author.to_string(),
                        noted_ms: now_ms,
                    };
                    match self.active.get(&key) {
                        Some(call)
                            if ends(&call.sender, &call.author, &end.sender, &end.author) =>
                        {
                            self.active.remove(&key);
                            self.remember(end);
                            changed = true;
                        }
                        // Someone else's "safe" ends nobody's call.
                        Some(_) => {}
                        None => keep |= self.remember(end),
                    }
                }
                Signal::Coming { of } => {
                    let key = key_of(room, &hex(&of));
                    if let Some(call) = self.active.get_mut(&key) {
                        if !call.coming.iter().any(|name| name == heard.author) {
                            call.coming.push(heard.author.to_string());
                            changed = true;
                        }
                    }
                }
                Signal::Live { .. } => {}
            }
        }
        self.prune(now_ms);
        Noted {
            raised: raised
                .iter()
                .filter_map(|key| self.active.get(key).cloned())
                .collect(),
            changed,
            keep: keep || changed,
        }
    }

    /// The oldest calls and ends go when too many are kept, and ends once a call would no
    /// longer show.
    fn prune(&mut self, now_ms: u64) {
        while self.active.len() > MAX_CALLS {
            let Some(oldest) = self
                .active
                .values()
                .min_by_key(|c| c.arrived_ms)
                .map(|c| c.key.clone())
            else {
                break;
            };
            self.active.remove(&oldest);
        }
        self.ended
            .retain(|e| now_ms.saturating_sub(e.noted_ms) <= SHOWN_FOR_MS);
        if self.ended.len() > MAX_ENDED {
            self.ended.sort_by_key(|e| std::cmp::Reverse(e.noted_ms));
            self.ended.truncate(MAX_ENDED);
        }
    }

    /// Remembers an end, once per call and sender; `true` when it is new.
    fn remember(&mut self, end: Ended) -> bool {
        let known = self
            .ended
            .iter()
            .any(|e| e.key == end.key && e.sender == end.sender && e.author == end.author);
        if !known {
            self.ended.push(end);
        }
        !known
    }

    /// The calls to show at `now_ms`, one per caller (their newest, with everyone on the way
    /// to any of their calls), newest first; calls older than a day go.
    pub fn shown(&mut self, now_ms: u64) -> Vec<Call> {
        self.active
            .retain(|_, c| now_ms.saturating_sub(c.arrived_ms) <= SHOWN_FOR_MS);
        let mut callers: HashMap<String, Call> = HashMap::new();
        for call in self.active.values() {
            match callers.get_mut(&call.caller()) {
                Some(shown) => {
                    let mut coming = std::mem::take(&mut shown.coming);
                    for name in &call.coming {
                        if !coming.contains(name) {
                            coming.push(name.clone());
                        }
                    }
                    if call.at_ms > shown.at_ms {
                        *shown = call.clone();
                    }
                    shown.coming = coming;
                }
                None => {
                    callers.insert(call.caller(), call.clone());
                }
            }
        }
        let mut shown: Vec<Call> = callers.into_values().collect();
        shown.sort_by_key(|c| std::cmp::Reverse(c.at_ms));
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "aa";
    const ANA: &str = "a1a1";
    const MALLORY: &str = "bad0";
    const ME: &str = "0e0e";
    const NOW: u64 = 1_800_000_000_000;

    fn heard<'a>(id: &'a str, sender: &'a str, author: &'a str, signal: Signal) -> Heard<'a> {
        Heard {
            id,
            sender,
            author,
            at_ms: NOW - 60_000,
            arrived_ms: Some(NOW - 59_000),
            text: "",
            position: None,
            signal,
        }
    }

    /// The answers' `of`: the first six bytes of the call's id.
    const SOS_ID: &str = "0102030405060708";
    const OF: [u8; 6] = [1, 2, 3, 4, 5, 6];

    #[test]
    fn a_call_ended_by_its_sender_is_never_raised_again_when_the_room_is_read_again() {
        let mut calls = Calls::default();
        let sos = heard(SOS_ID, ANA, "Ana", Signal::Sos);
        let safe = heard("99", ANA, "Ana", Signal::Safe { of: OF });
        let noted = calls.note(ME, NOW, ROOM, "Camp", [sos]);
        assert_eq!(noted.raised.len(), 1, "a new call is told about");
        let noted = calls.note(ME, NOW, ROOM, "Camp", [safe]);
        assert!(noted.changed && noted.keep && calls.is_empty());
        // The room is read again (a reload, another page): neither banner nor notification.
        let again = calls.note(ME, NOW, ROOM, "Camp", [sos, safe]);
        assert_eq!(again, Noted::default());
        // Also after the device kept and restored its calls.
        let (active, ended) = calls.kept();
        let mut reloaded = Calls::default();
        reloaded.restore(active, ended);
        assert_eq!(
            reloaded.note(ME, NOW, ROOM, "Camp", [sos]),
            Noted::default()
        );
    }

    #[test]
    fn a_call_and_its_end_read_together_raise_nothing() {
        let mut calls = Calls::default();
        let sos = heard(SOS_ID, ANA, "Ana", Signal::Sos);
        let safe = heard("99", ANA, "Ana", Signal::Safe { of: OF });
        let noted = calls.note(ME, NOW, ROOM, "Camp", [sos, safe]);
        assert!(noted.raised.is_empty());
        assert!(calls.is_empty());
        // The end read before the call (an older page loaded later) holds too.
        let mut calls = Calls::default();
        assert!(
            calls.note(ME, NOW, ROOM, "Camp", [safe]).keep,
            "the end is kept"
        );
        assert_eq!(calls.note(ME, NOW, ROOM, "Camp", [sos]), Noted::default());
    }

    #[test]
    fn only_the_device_that_signed_a_call_ends_it() {
        let mut calls = Calls::default();
        calls.note(
            ME,
            NOW,
            ROOM,
            "Camp",
            [heard(SOS_ID, ANA, "Ana", Signal::Sos)],
        );
        // Someone calling themselves Ana on another device, or on the radio, ends nothing.
        for sender in [MALLORY, RADIO_SENDER] {
            let forged = heard("98", sender, "Ana", Signal::Safe { of: OF });
            let noted = calls.note(ME, NOW, ROOM, "Camp", [forged]);
            assert!(!noted.changed, "{sender}");
            assert!(
                calls.get(&key_of(ROOM, "010203040506")).is_some(),
                "{sender}"
            );
        }
        // A forged end heard first does not hide the call either.
        let mut calls = Calls::default();
        let forged = heard("98", RADIO_SENDER, "Ana", Signal::Safe { of: OF });
        calls.note(ME, NOW, ROOM, "Camp", [forged]);
        let noted = calls.note(
            ME,
            NOW,
            ROOM,
            "Camp",
            [heard(SOS_ID, ANA, "Ana", Signal::Sos)],
        );
        assert_eq!(noted.raised.len(), 1);
        // Nor keep the real end, read after it, from hiding the call.
        let mut calls = Calls::default();
        let real = heard("99", ANA, "Ana", Signal::Safe { of: OF });
        calls.note(ME, NOW, ROOM, "Camp", [forged, real]);
        let sos = heard(SOS_ID, ANA, "Ana", Signal::Sos);
        assert_eq!(calls.note(ME, NOW, ROOM, "Camp", [sos]), Noted::default());
    }

    #[test]
    fn a_call_heard_over_the_radio_is_ended_by_its_callers_name() {
        let mut calls = Calls::default();
        let sos = heard(SOS_ID, RADIO_SENDER, "Ana", Signal::Sos);
        calls.note(ME, NOW, ROOM, "Camp", [sos]);
        let other = heard("97", RADIO_SENDER, "Ben", Signal::Safe { of: OF });
        assert!(!calls.note(ME, NOW, ROOM, "Camp", [other]).changed);
        // Ana's end, over the radio or signed once she reached a server.
        let safe = heard("99", ANA, "Ana", Signal::Safe { of: OF });
        assert!(calls.note(ME, NOW, ROOM, "Camp", [safe]).changed);
        assert!(calls.is_empty());
    }

    #[test]
    fn own_calls_show_but_are_not_told_about_and_old_calls_do_not_show() {
        let mut calls = Calls::default();
        let own = heard(SOS_ID, ME, "Me", Signal::Sos);
        let noted = calls.note(ME, NOW, ROOM, "Camp", [own]);
        assert!(noted.raised.is_empty() && noted.changed);
        assert!(calls.shown(NOW)[0].own);
        let mut old = heard("0202020202020202", ANA, "Ana", Signal::Sos);
        old.at_ms = NOW - SHOWN_FOR_MS - 1;
        old.arrived_ms = Some(NOW - SHOWN_FOR_MS - 1);
        assert_eq!(calls.note(ME, NOW, ROOM, "Camp", [old]), Noted::default());
        assert!(calls.shown(NOW + SHOWN_FOR_MS).is_empty(), "a day on");
    }

    #[test]
    fn one_banner_per_caller_with_everyone_coming_to_any_of_their_calls() {
        let mut calls = Calls::default();
        calls.note(
            ME,
            NOW,
            "aa",
            "Camp",
            [heard(SOS_ID, ANA, "Ana", Signal::Sos)],
        );
        calls.note(
            ME,
            NOW,
            "ee",
            "Emergency",
            [heard(SOS_ID, ANA, "Ana", Signal::Sos)],
        );
        calls.note(
            ME,
            NOW,
            "aa",
            "Camp",
            [heard("96", "c0", "Ben", Signal::Coming { of: OF })],
        );
        calls.note(
            ME,
            NOW,
            "ee",
            "Emergency",
            [heard("95", "c1", "Cara", Signal::Coming { of: OF })],
        );
        let shown = calls.shown(NOW);
        assert_eq!(shown.len(), 1);
        let mut coming = shown[0].coming.clone();
        coming.sort();
        assert_eq!(coming, ["Ben", "Cara"]);
        assert_eq!(calls.of_caller(&key_of("aa", "010203040506")).len(), 2);
    }

    #[test]
    fn what_is_kept_stays_bounded() {
        let mut calls = Calls::default();
        for i in 0..(MAX_ENDED as u64 + 50) {
            let id = format!("{i:012x}ffff");
            let mut of = [0u8; 6];
            of.copy_from_slice(&i.to_be_bytes()[2..]);
            let safe = heard(&id, ANA, "Ana", Signal::Safe { of });
            calls.note(ME, NOW + i, ROOM, "Camp", [safe]);
            let mut sos = heard(&id, ANA, "Ana", Signal::Sos);
            sos.at_ms = NOW + i;
            sos.arrived_ms = Some(NOW + i);
            calls.note(ME, NOW + i, "bb", "Other", [sos]);
        }
        let (active, ended) = calls.kept();
        assert_eq!(active.len(), MAX_CALLS);
        assert_eq!(ended.len(), MAX_ENDED);
        // A day on, the ends are forgotten.
        calls.note(ME, NOW + 2 * SHOWN_FOR_MS, ROOM, "Camp", []);
        assert!(calls.kept().1.is_empty());
    }

    #[test]
    fn a_call_from_a_phone_whose_clock_is_days_behind_shows_from_when_it_arrived() {
        let mut calls = Calls::default();
        let mut late_clock = heard(SOS_ID, ANA, "Ana", Signal::Sos);
        late_clock.at_ms = NOW - 3 * SHOWN_FOR_MS;
        late_clock.arrived_ms = Some(NOW - 5_000);
        let noted = calls.note(ME, NOW, ROOM, "Camp", [late_clock]);
        assert_eq!(noted.raised.len(), 1, "raised");
        assert_eq!(
            calls.shown(NOW + SHOWN_FOR_MS / 2).len(),
            1,
            "still shown half a day on"
        );
        assert!(
            calls.shown(NOW + SHOWN_FOR_MS).is_empty(),
            "a day after it arrived"
        );
    }
}
