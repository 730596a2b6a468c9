//! When the core sends one peer a sync message for one document.
//!
//! Automerge's sync protocol answers every message whose sender's heads
//! differ from ours, and the automerge-repo clients answer every message
//! they receive at once. While several schools edit one document, heads
//! almost never agree, so each message a relay sends starts an exchange of
//! acknowledgements that carry nothing new and that goes on for as long as
//! the editing does; a relay that also sends every incoming change to
//! every other subscriber at once starts several such exchanges per change
//! and peer. Nine JavaScript clients typing into one plan made a storm of
//! them, bound only by the CPU of the machines.
//!
//! So the side that accepted the connection (the relay) keeps **one batch
//! of changes in flight** per (document, peer): while changes it sent the
//! peer are not yet acknowledged (the peer's heads do not cover them),
//! whatever else the peer needs waits, and goes in one message with the
//! answer to the acknowledgement. The batch grows with the round trip: a
//! quiet document's change goes out at once, a busy one's changes go a
//! round trip's worth at a time, and the exchanges of acknowledgements
//! stay one per pair. A peer that does not answer within
//! [`REPLY_WAIT_MS`] is sent what waits all the same.
//!
//! The side that opened the connection (a school's client) answers at
//! once, so two sides never wait for each other.

use automerge::Automerge;
use automerge::sync::{self, SyncDoc};

/// How long changes wait for a peer to acknowledge the last batch before
/// they are sent anyway: a peer that never answers (it had the changes
/// already, or is stuck) delays what follows by at most this much.
pub const REPLY_WAIT_MS: u64 = 1_000;

/// Where sending to one peer stands, beside automerge's own sync state.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pace {
    /// When the changes awaiting the peer's acknowledgement were sent.
    unacked_since: Option<u64>,
    /// A message for the peer was held back (see [`Next::Hold`]).
    owed: bool,
}

/// What to do for one peer now.
pub(crate) enum Next {
    Send(sync::Message),
    /// Wait for the peer's acknowledgement, or until `until` (ms).
    /// `first` says the peer was not already waiting, so the caller
    /// schedules one wake-up per wait.
    Hold {
        until: u64,
        first: bool,
    },
    Nothing,
}

impl Pace {
    /// A message was owed and not yet sent.
    pub(crate) fn owed(&self) -> bool {
        self.owed
    }

    /// Whether changes sent to the peer await its acknowledgement.
    pub(crate) fn unacknowledged(&self, state: &sync::State) -> bool {
        !state.sent_hashes.is_empty()
    }

    /// What to send the peer now that something may have changed.
    /// `paced`: this side waits for acknowledgements (the relay).
    pub(crate) fn next(
        &mut self,
        doc: &Automerge,
        state: &mut sync::State,
        paced: bool,
        now_ms: u64,
    ) -> Next {
        if paced && self.unacknowledged(state) {
            let since = *self.unacked_since.get_or_insert(now_ms);
            let until = since.saturating_add(REPLY_WAIT_MS);
            if now_ms < until {
                let first = !std::mem::replace(&mut self.owed, true);
                return Next::Hold { until, first };
            }
            // Waited long enough: send, and wait afresh from now.
            self.unacked_since = Some(now_ms);
        }
        self.owed = false;
        let Some(message) = doc.generate_sync_message(state) else {
            return Next::Nothing;
        };
        if !message.changes.is_empty() && self.unacked_since.is_none() {
            self.unacked_since = Some(now_ms);
        }
        Next::Send(message)
    }

    /// The peer sent a message (already received into `state`).
    pub(crate) fn heard(&mut self, state: &sync::State) {
        if !self.unacknowledged(state) {
            self.unacked_since = None;
        }
    }
}
