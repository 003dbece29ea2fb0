//! The driver alone and in pairs: pacing, resends with growing pauses, give-ups, bounds.

use super::*;
use crate::radio::test_support::{key, unsealed};
use crate::radio::Packet;

/// The driver's settings with the node's summaries off: these tests follow one message's
/// frames (catch-up has tests of its own).
fn quiet() -> DriverConfig {
    let mut config = DriverConfig::default();
    config.node.summary_every_ms = 0;
    config
}

/// Message `n`, in a room of its own (a room's messages go one at a time: see
/// [`own_in_one_room`]).
fn own(n: u8, at: u64) -> OwnMessage {
    in_room(&crate::crypto::RoomKey::from_bytes([n ^ 0x5A; 32]), n, at)
}

/// Message `n` in the one room of [`key`].
fn own_in_one_room(n: u8, at: u64) -> OwnMessage {
    in_room(&key(), n, at)
}

fn in_room(room: &crate::crypto::RoomKey, n: u8, at: u64) -> OwnMessage {
    let id = MessageId([n; 16]);
    let message = RadioMessage::seal(room, id, 1, "Ana", &format!("message {n}"));
    OwnMessage {
        room: room.room_id(),
        id,
        message,
        queued_at_ms: at,
        urgent: false,
    }
}

fn frames(events: &[Event]) -> Vec<Packet> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Transmit(bytes) => Some(unsealed(bytes).unwrap()),
            _ => None,
        })
        .collect()
}

/// Runs the driver alone (nobody answers) until `until`, returning when each frame left.
fn run_alone(driver: &mut Driver, from: u64, until: u64) -> Vec<(u64, Event)> {
    let mut log = Vec::new();
    let mut now = from;
    while let Some(at) = driver.next_wakeup() {
        if at > until {
            break;
        }
        now = at.max(now);
        for event in driver.poll(now) {
            log.push((now, event));
        }
    }
    log
}

/// The first id byte of each data frame sent in `log`, in order.
fn sent_ids(log: &[(u64, Event)]) -> Vec<u8> {
    log.iter()
        .filter_map(|(_, e)| match e {
            Event::Transmit(bytes) => match unsealed(bytes).unwrap() {
                Packet::Data { key, .. } => Some(key.message.id[0]),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_starts_without_a_link_and_everything_starts_oldest_first_when_one_comes() {
    let mut driver = Driver::new(quiet(), 1);
    for n in [9, 3, 7] {
        assert!(driver.queue(0, own(n, 0)).unwrap());
    }
    assert!(driver.poll(10).is_empty(), "no link: nothing on the air");
    let mut sent = frames(&driver.link_up(20));
    for (_, event) in run_alone(&mut driver, 20, 5_000) {
        sent.extend(frames(&[event]));
    }
    let order: Vec<u8> = sent
        .iter()
        .map(|p| p.key().unwrap().message.id[0])
        .collect();
    assert_eq!(&order[..3], &[9, 3, 7], "in the order they were written");
}

#[test]
fn a_replayed_outbox_goes_out_once() {
    let mut driver = Driver::new(quiet(), 1);
    driver.link_up(0);
    assert!(driver.queue(0, own(1, 0)).unwrap());
    assert!(!driver.queue(5, own(1, 0)).unwrap());
    assert_eq!(driver.stats().own_waiting, 1);
}

#[test]
fn frames_leave_one_airtime_apart() {
    let mut driver = Driver::new(quiet(), 1);
    driver.link_up(0);
    for n in 0..5 {
        driver.queue(0, own(n, 0)).unwrap();
    }
    let log = run_alone(&mut driver, 0, 10_000);
    let times: Vec<(u64, usize)> = log
        .iter()
        .filter_map(|(at, e)| match e {
            Event::Transmit(bytes) => Some((*at, bytes.len())),
            _ => None,
        })
        .take(5)
        .collect();
    assert_eq!(times.len(), 5);
    for pair in times.windows(2) {
        let airtime = driver.config().node.airtime_ms(pair[0].1);
        assert!(
            pair[1].0 - pair[0].0 >= airtime + AIR_GAP_MS,
            "{pair:?} closer than airtime {airtime} ms"
        );
    }
}

#[test]
fn unconfirmed_messages_go_again_with_growing_pauses_and_are_given_up_after_a_day() {
    let config = quiet();
    let mut driver = Driver::new(config.clone(), 1);
    driver.link_up(0);
    driver.queue(0, own(1, 0)).unwrap();
    let log = run_alone(&mut driver, 0, 2 * GIVE_UP_AFTER_MS);
    // The first frame of each round: a round starts after the node's retries ran out.
    let tries = 1 + u64::from(config.node.max_retries);
    let sent: Vec<u64> = log
        .iter()
        .filter(|(_, e)| matches!(e, Event::Transmit(_)))
        .map(|(at, _)| *at)
        .collect();
    let starts: Vec<u64> = sent.iter().step_by(tries as usize).copied().collect();
    let pauses: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(pauses.len() > 5, "several rounds in a day: {pauses:?}");
    // Retries within a round wait a random extra share of the contention window.
    for pair in pauses.windows(2) {
        assert!(
            pair[1] + 10_000 >= pair[0],
            "pauses never shrink: {pauses:?}"
        );
    }
    let longest = pauses.iter().max().unwrap();
    // A round lasts the node's retries (under two minutes) plus the pause.
    assert!(
        *longest <= MAX_RESEND_AFTER_MS + 120_000,
        "capped: {pauses:?}"
    );
    assert!(*longest > 4 * RESEND_AFTER_MS, "growing: {pauses:?}");
    let gave_up: Vec<u64> = log
        .iter()
        .filter(|(_, e)| matches!(e, Event::GaveUp(m) if m.id == MessageId([1; 16])))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(gave_up.len(), 1);
    assert!(gave_up[0] > GIVE_UP_AFTER_MS && gave_up[0] <= GIVE_UP_AFTER_MS + 1);
    assert!(
        sent.iter().all(|at| *at <= GIVE_UP_AFTER_MS),
        "silence after"
    );
    assert_eq!(driver.next_wakeup(), None);
    assert_eq!(driver.stats().own_waiting, 0);
}

#[test]
fn a_message_that_never_found_a_link_is_given_up_too() {
    let mut driver = Driver::new(quiet(), 1);
    driver.queue(0, own(1, 0)).unwrap();
    let log = run_alone(&mut driver, 0, 2 * GIVE_UP_AFTER_MS);
    assert!(matches!(log.as_slice(), [(_, Event::GaveUp(_))]));
    // A message older than a day (kept across a restart) is given up at once.
    driver.queue(GIVE_UP_AFTER_MS * 3, own(2, 0)).unwrap();
    let events = driver.poll(GIVE_UP_AFTER_MS * 3);
    assert!(matches!(events.as_slice(), [Event::GaveUp(m)] if m.id == MessageId([2; 16])));
}

#[test]
fn a_confirmation_names_the_message_and_its_room() {
    let mut a = Driver::new(quiet(), 1);
    let mut b = Driver::new(quiet(), 2);
    a.link_up(0);
    b.link_up(0);
    let message = own(4, 0);
    a.queue(0, message.clone()).unwrap();
    let mut now = 0;
    let mut relayed = None;
    let mut heard = None;
    // Two radios that hear each other; frames arrive 50 ms after they leave.
    let mut air: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    while now < 60_000 && relayed.is_none() {
        for (to_b, driver) in [(true, &mut a), (false, &mut b)] {
            let mut events = driver.poll(now);
            let arriving = air
                .iter()
                .filter(|(at, from_a, _)| *at == now && *from_a != to_b);
            for (_, _, bytes) in arriving {
                events.extend(driver.receive(now, bytes).unwrap());
            }
            for event in events {
                match event {
                    Event::Transmit(bytes) => air.push((now + 50, to_b, bytes)),
                    Event::Relayed(m) => relayed = Some(m),
                    Event::Heard(m) => heard = Some(m),
                    Event::GaveUp(_) => panic!("nothing is given up here"),
                }
            }
        }
        now += 1;
    }
    assert_eq!(relayed, Some(message.clone()));
    assert_eq!(heard, Some(message.message));
    assert_eq!(a.stats().own_waiting, 0);
}

#[test]
fn the_air_queue_is_bounded_in_bytes_and_a_lost_link_drops_it() {
    let config = DriverConfig {
        max_air_queue_bytes: 600,
        ..quiet()
    };
    let mut driver = Driver::new(config, 1);
    driver.link_up(0);
    for n in 0..20 {
        driver.queue(0, own(n, 0)).unwrap();
    }
    let first = driver.poll(0);
    assert_eq!(frames(&first).len(), 1, "one frame now, the rest paced");
    assert!(driver.air_queue_bytes <= 600);
    assert!(driver.stats().frames_dropped > 0);
    driver.link_down();
    assert_eq!(driver.stats().air_queue, 0);
    assert!(
        frames(&driver.poll(100_000)).is_empty(),
        "nothing while down"
    );
}

#[test]
fn a_clock_that_steps_back_is_held() {
    let mut driver = Driver::new(quiet(), 1);
    let now = 10_000_000;
    driver.link_up(now);
    driver.queue(now, own(1, now)).unwrap();
    assert_eq!(frames(&driver.poll(now)).len(), 1);
    // The wall clock jumps an hour back: no burst of retries, no early give-up.
    assert!(driver.poll(now - 3_600_000).is_empty());
    assert_eq!(driver.stats().own_waiting, 1);
}

#[test]
fn an_urgent_message_goes_before_every_frame_waiting_and_again_sooner() {
    let mut driver = Driver::new(quiet(), 1);
    driver.link_up(0);
    for n in 1..=6 {
        assert!(driver.queue(0, own(n, 0)).unwrap());
    }
    // The first frame is on the air; the others wait for airtime.
    let first = frames(&driver.poll(0));
    assert_eq!(first.len(), 1);
    assert!(driver.stats().air_queue >= 4, "{:?}", driver.stats());
    let mut sos = own(99, 10);
    sos.urgent = true;
    assert!(driver.queue(10, sos.clone()).unwrap());
    let log = run_alone(&mut driver, 10, 60_000);
    let order: Vec<MessageId> = log
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Transmit(bytes) => match unsealed(bytes).unwrap() {
                Packet::Data { key, .. } => Some(MessageId([key.message.id[0]; 16])),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(order.first(), Some(&MessageId([99; 16])), "{order:?}");
    // Unconfirmed (nobody answers), it goes again a quarter of the usual pause later.
    let resent_at = |id: u8, log: &[(u64, Event)]| -> Vec<u64> {
        log.iter()
            .filter_map(|(at, e)| match e {
                Event::Transmit(bytes) => match unsealed(bytes).unwrap() {
                    Packet::Data { key, .. } if key.message.id[0] == id => Some(*at),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let log = run_alone(&mut driver, 60_000, 10 * 60_000);
    let sos_again = resent_at(99, &log);
    let plain_again = resent_at(1, &log);
    assert!(
        !sos_again.is_empty(),
        "the SOS went again within 10 minutes"
    );
    assert!(
        plain_again.first().is_none_or(|p| sos_again[0] < *p),
        "SOS again at {sos_again:?}, a plain message at {plain_again:?}"
    );
    assert!(
        sos_again[0] <= RESEND_AFTER_MS / 4 + 60_000,
        "{sos_again:?}"
    );
}

#[test]
fn a_full_air_queue_drops_plain_frames_before_urgent_ones() {
    let mut config = quiet();
    config.max_air_queue_bytes = 600;
    let mut driver = Driver::new(config, 1);
    driver.link_up(0);
    let mut sos = own(99, 0);
    sos.urgent = true;
    driver.queue(0, sos).unwrap();
    for n in 1..=20 {
        driver.queue(0, own(n, 0)).unwrap();
    }
    let log = run_alone(&mut driver, 0, 30_000);
    let sent = sent_ids(&log);
    assert_eq!(sent.first(), Some(&99), "{sent:?}");
    assert!(driver.stats().frames_dropped > 0);
}

#[test]
fn an_urgent_message_goes_before_frames_that_came_due_with_it_which_stay_plain() {
    let mut driver = Driver::new(quiet(), 1);
    driver.link_up(0);
    // Plain messages queued in the same moment: their frames are due, not yet on the air.
    for n in 1..=3 {
        assert!(driver.queue(0, own(n, 0)).unwrap());
    }
    let mut sos = own(99, 0);
    sos.urgent = true;
    assert!(driver.queue(0, sos).unwrap());
    let sent: Vec<u8> = frames(&driver.poll(0))
        .into_iter()
        .filter_map(|p| match p {
            Packet::Data { key, .. } => Some(key.message.id[0]),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [99], "the SOS first, alone in its moment of air");
    // Only the SOS's frames counted as urgent (the plain ones waiting are dropped first when
    // the queue overflows): its one frame is on the air, none is left.
    assert_eq!(driver.urgent_frames, 0);
    assert_eq!(driver.stats().air_queue, 3);
}

#[test]
fn calls_go_in_the_order_they_were_made_and_a_queue_full_of_them_keeps_the_first() {
    let mut config = quiet();
    // Room for three frames waiting.
    config.max_air_queue_bytes = 200;
    let mut driver = Driver::new(config, 1);
    driver.link_up(0);
    driver.queue(0, own(50, 0)).unwrap();
    // Calls one after another in the same moment: more than the queue holds.
    for n in 1..=8 {
        let mut sos = own(n, 0);
        sos.urgent = true;
        driver.queue(0, sos).unwrap();
    }
    let log = run_alone(&mut driver, 0, 5_000);
    let sent = sent_ids(&log);
    assert!(driver.stats().frames_dropped > 0);
    // The first calls first (the node sends the later ones again), the plain message last.
    assert_eq!(sent[..3], [1, 2, 3], "{sent:?}");
}

#[test]
fn a_rooms_messages_go_one_at_a_time_the_next_once_the_one_before_ended_its_round() {
    let mut driver = Driver::new(quiet(), 1);
    driver.link_up(0);
    for n in 0..3 {
        driver.queue(0, own_in_one_room(n, 0)).unwrap();
    }
    // Another room's message does not wait for this room's.
    driver.queue(0, own(9, 0)).unwrap();
    // Nobody answers: message 0's round (its retries) ends before message 1 starts.
    let log = run_alone(&mut driver, 0, 3_600_000);
    let ids = sent_ids(&log);
    let first = |id: u8| ids.iter().position(|&i| i == id).unwrap();
    let last = |id: u8| ids.iter().rposition(|&i| i == id).unwrap();
    assert!(first(9) < first(1), "other rooms go at once: {ids:?}");
    let retries = driver.config().node.max_retries as usize + 1;
    assert!(
        ids.iter().filter(|&&i| i == 0).count() >= retries,
        "message 0 got its whole round: {ids:?}"
    );
    let first_round_of_0 = ids
        .iter()
        .enumerate()
        .filter(|(_, &i)| i == 0)
        .nth(retries - 1)
        .unwrap()
        .0;
    assert!(
        first_round_of_0 < first(1),
        "1 waits for 0's round: {ids:?}"
    );
    assert!(first(1) < first(2), "{ids:?}");
    assert!(last(0) > first(1), "0 goes again in its later rounds");
}

#[test]
fn with_frames_lost_a_rooms_messages_still_arrive_in_the_order_they_were_written() {
    let mut a = Driver::new(quiet(), 1);
    let mut b = Driver::new(quiet(), 2);
    a.link_up(0);
    b.link_up(0);
    let written: Vec<OwnMessage> = (0..5).map(|n| own_in_one_room(n, 0)).collect();
    for message in &written {
        a.queue(0, message.clone()).unwrap();
    }
    let mut heard = Vec::new();
    let mut sent_by_a = 0u32;
    let mut now = 0;
    let mut air: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    while now < 600_000 && heard.len() < written.len() {
        for (to_b, driver) in [(true, &mut a), (false, &mut b)] {
            let mut events = driver.poll(now);
            let arriving: Vec<Vec<u8>> = air
                .iter()
                .filter(|(at, from_a, _)| *at == now && *from_a != to_b)
                .map(|(_, _, bytes)| bytes.clone())
                .collect();
            for bytes in arriving {
                events.extend(driver.receive(now, &bytes).unwrap());
            }
            for event in events {
                match event {
                    Event::Transmit(bytes) => {
                        // A's first frame, and every third after, is lost on the air.
                        let lost = to_b && sent_by_a.is_multiple_of(3);
                        sent_by_a += u32::from(to_b);
                        if !lost {
                            air.push((now + 50, to_b, bytes));
                        }
                    }
                    Event::Heard(m) => heard.push(m),
                    _ => {}
                }
            }
        }
        now += 1;
    }
    let want: Vec<RadioMessage> = written.into_iter().map(|m| m.message).collect();
    assert_eq!(heard, want);
}

#[test]
fn an_urgent_message_does_not_wait_for_the_rooms_message_on_the_air() {
    let mut driver = Driver::new(quiet(), 1);
    driver.link_up(0);
    driver.queue(0, own_in_one_room(1, 0)).unwrap();
    let mut sos = own_in_one_room(2, 0);
    sos.urgent = true;
    driver.queue(0, sos).unwrap();
    let ids = sent_ids(&run_alone(&mut driver, 0, 10_000));
    assert_eq!(&ids[..2], &[2, 1], "the call first, then the plain message");
}
