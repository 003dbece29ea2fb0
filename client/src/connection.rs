//! When to try the server again, and when a quiet connection is dead.

/// First reconnect delay; it doubles up to [`MAX_BACKOFF_MS`], with jitter.
pub const MIN_BACKOFF_MS: u32 = 500;
/// Longest reconnect delay.
pub const MAX_BACKOFF_MS: u32 = 15_000;
/// A connection silent this long (no frame, no pong) is treated as dead.
pub const SILENCE_LIMIT_MS: f64 = 12_000.0;

/// Reconnect backoff: doubling, capped, with random jitter so many phones coming back after
/// an outage do not reconnect in lockstep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    ms: u32,
}

impl Backoff {
    /// The next wait, from 32 random bits: between half and all of the current backoff,
    /// which doubles for the time after.
    pub fn next_delay(&mut self, random: u32) -> u32 {
        self.ms = (self.ms.max(MIN_BACKOFF_MS / 2) * 2).min(MAX_BACKOFF_MS);
        let jitter = random % (self.ms / 2 + 1);
        self.ms / 2 + jitter
    }

    /// Connected (or told the network is back): the next wait starts short again.
    pub fn reset(&mut self) {
        self.ms = 0;
    }
}

/// Whether a connection last heard at `last_heard_ms` is dead at `now_ms`.
pub fn is_silent(now_ms: f64, last_heard_ms: f64) -> bool {
    now_ms - last_heard_ms > SILENCE_LIMIT_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<u32> = (0..8).map(|_| backoff.next_delay(u32::MAX)).collect();
        let lows: Vec<u32> = {
            let mut b = Backoff::default();
            (0..8).map(|_| b.next_delay(0)).collect()
        };
        assert_eq!(lows, [250, 500, 1000, 2000, 4000, 7500, 7500, 7500]);
        for (low, wait) in lows.iter().zip(&waits) {
            assert!(
                wait >= low && *wait <= low * 2,
                "{wait} outside {low}..={}",
                low * 2
            );
        }
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF_MS));
        backoff.reset();
        assert_eq!(backoff.next_delay(0), MIN_BACKOFF_MS / 2);
    }

    #[test]
    fn a_connection_is_dead_after_the_silence_limit() {
        assert!(!is_silent(10_000.0, 0.0));
        assert!(is_silent(12_001.0, 0.0));
    }
}
