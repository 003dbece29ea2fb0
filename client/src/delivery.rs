//! Where an own message is on its way. The state only moves forward: a late or repeated
//! answer (an echo after the radio relayed it, a reload from the server) never moves it back.

/// Delivery state of a message held on this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// In the outbox, not confirmed by a server yet.
    Queued,
    /// A server refused it; it waits for the person to retry.
    Failed,
    /// A server stored it.
    Stored,
    /// Stored, and another camp's radio was heard relaying it: the furthest it gets.
    Relayed,
    /// Someone else's message that came over a radio (room key only, no signature).
    Radio,
}

impl Delivery {
    /// A server acknowledged it, or sent a copy of it back: stored, unless it is further.
    pub fn stored(self) -> Self {
        match self {
            Delivery::Queued | Delivery::Failed | Delivery::Stored => Delivery::Stored,
            further => further,
        }
    }

    /// A server refused it: failed, unless a server or a radio already has it.
    pub fn refused(self) -> Self {
        match self {
            Delivery::Queued => Delivery::Failed,
            other => other,
        }
    }

    /// The person tapped retry: queued again (only a failed message moves).
    pub fn retried(self) -> Self {
        match self {
            Delivery::Failed => Delivery::Queued,
            other => other,
        }
    }

    /// A neighbouring camp's radio was heard relaying it.
    pub fn relayed(self) -> Self {
        match self {
            Delivery::Radio => Delivery::Radio,
            _ => Delivery::Relayed,
        }
    }

    /// What a device keeps when a copy in state `incoming` arrives for a message it holds in
    /// state `self`: never less than it had.
    pub fn merge(self, incoming: Delivery) -> Self {
        match incoming {
            Delivery::Stored => self.stored(),
            Delivery::Relayed => self.relayed(),
            Delivery::Failed => self.refused(),
            Delivery::Queued | Delivery::Radio => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Delivery::*;
    use super::*;

    const ALL: [Delivery; 5] = [Queued, Failed, Stored, Relayed, Radio];

    #[test]
    fn a_relayed_message_stays_relayed_whatever_arrives_later() {
        for late in ALL {
            assert_eq!(Relayed.merge(late), Relayed, "{late:?} after relayed");
        }
        assert_eq!(Relayed.stored(), Relayed);
        assert_eq!(Relayed.refused(), Relayed);
        assert_eq!(Relayed.retried(), Relayed);
    }

    #[test]
    fn states_only_move_forward() {
        let rank = |d: Delivery| match d {
            Queued | Failed => 0,
            Stored => 1,
            Relayed => 2,
            Radio => 3,
        };
        for from in ALL {
            for step in [
                Delivery::stored,
                Delivery::refused,
                Delivery::relayed,
                Delivery::retried,
            ] {
                let to = step(from);
                assert!(
                    rank(to) >= rank(from) || (from, to) == (Failed, Queued),
                    "{from:?} moved back to {to:?}"
                );
            }
        }
    }

    #[test]
    fn the_usual_paths() {
        assert_eq!(Queued.stored(), Stored);
        assert_eq!(Queued.refused(), Failed);
        assert_eq!(Failed.retried(), Queued);
        assert_eq!(Stored.relayed(), Relayed);
        assert_eq!(
            Stored.refused(),
            Stored,
            "a refusal after storing changes nothing"
        );
        assert_eq!(Queued.retried(), Queued);
        assert_eq!(
            Radio.stored(),
            Radio,
            "someone's radio message uploaded stays theirs"
        );
        assert_eq!(Radio.relayed(), Radio);
    }
}
