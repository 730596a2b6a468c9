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
//! So the side that accepted the connection (the relay) paces what it
//! sends each peer for each document, by two rules:
//!
//! - **One batch of changes in flight.** While changes it sent the peer
//!   are not yet acknowledged (the peer's heads do not cover them),
//!   whatever else the peer needs waits, and goes in one message with the
//!   answer to the acknowledgement; so the exchanges of acknowledgements
//!   stay one per pair. A peer that does not answer within
//!   [`REPLY_WAIT_MS`] is sent what waits all the same.
//! - **At most one message per [`GAP_MS`] on a busy document**, after a
//!   burst of [`BURST`]: a quiet document's changes go out at once; on a
//!   busy one, what comes faster waits for the next slot and goes
//!   together, as the reference server batches its fan-out (it waits
//!   100 ms before every one).
//!
//! The side that opened the connection (a school's client) answers at
//! once, so two sides never wait for each other.

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};

/// How long changes wait for a peer to acknowledge the last batch before
/// they are sent anyway: a peer that never answers (it had the changes
/// already, or is stuck) delays what follows by at most this much.
pub const REPLY_WAIT_MS: u64 = 1_000;

/// The least time between two messages to one peer for one document,
/// once a burst is spent.
pub const GAP_MS: u64 = 50;

/// Messages that may go at once, faster than one per [`GAP_MS`].
pub const BURST: u64 = 3;

/// Where sending to one peer stands, beside automerge's own sync state.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pace {
    /// When the changes awaiting the peer's acknowledgement were sent.
    unacked_since: Option<u64>,
    /// When the next message would be due at one per [`GAP_MS`]; up to
    /// [`BURST`] - 1 gaps earlier, it may go (a virtual schedule, as in
    /// the generic cell rate algorithm).
    due: u64,
    /// A message for the peer was held back (see [`Next::Hold`]).
    owed: bool,
    /// The wake-up the caller has scheduled for it, if any.
    wake_at: Option<u64>,
    /// The heads our last message to the peer carried. Automerge counts
    /// our heads as told once the peer says it has them all, which is
    /// true only if nothing we owe it was held back meanwhile.
    told: Vec<ChangeHash>,
}

/// What to do for one peer now.
pub(crate) enum Next {
    Send(sync::Message),
    /// Wait (for the peer's acknowledgement, or the end of the gap). The
    /// caller schedules a wake-up at `wake_at`, when given.
    Hold {
        wake_at: Option<u64>,
    },
    Nothing,
}

impl Pace {
    /// The pace of a peer last told `heads` (see `resting.rs`).
    pub(crate) fn told(heads: Vec<ChangeHash>) -> Pace {
        Pace {
            told: heads,
            ..Pace::default()
        }
    }

    /// A message was held back and not yet sent.
    pub(crate) fn owed(&self) -> bool {
        self.owed
    }

    /// The wake-up scheduled at `at` came: true if it is this peer's
    /// current one (or a later retry of it) and a message is owed.
    pub(crate) fn woken(&mut self, at: u64) -> bool {
        if self.wake_at.is_none_or(|wake_at| wake_at > at) {
            return false; // superseded by an earlier one, or done
        }
        self.wake_at = None;
        self.owed
    }

    /// What to send the peer now that something may have changed.
    /// `paced`: this side paces (the relay). `catch_up`: the peer speaks
    /// the compact format, so a first message after a reconnect carries
    /// what it may lack at once (`compact::catch_up`).
    pub(crate) fn next(
        &mut self,
        doc: &Automerge,
        state: &mut sync::State,
        paced: bool,
        catch_up: bool,
        now_ms: u64,
    ) -> Next {
        if paced && let Some(until) = self.hold_until(state, now_ms) {
            self.owed = true;
            let earlier = self.wake_at.is_none_or(|at| until < at);
            return Next::Hold {
                wake_at: earlier.then(|| *self.wake_at.insert(until)),
            };
        }
        self.owed = false;
        if paced {
            state.last_sent_heads.clone_from(&self.told);
        }
        let Some(mut message) = doc.generate_sync_message(state) else {
            return Next::Nothing;
        };
        if catch_up {
            crate::compact::catch_up(doc, state, &mut message);
        }
        self.told.clone_from(&message.heads);
        if !message.changes.is_empty() && self.unacked_since.is_none() {
            self.unacked_since = Some(now_ms);
        }
        self.due = self.due.max(now_ms) + GAP_MS;
        Next::Send(message)
    }

    /// Until when a message must wait, if it must.
    fn hold_until(&mut self, state: &sync::State, now_ms: u64) -> Option<u64> {
        let mut until = Some(self.due.saturating_sub((BURST - 1) * GAP_MS));
        if !state.sent_hashes.is_empty() {
            let since = *self.unacked_since.get_or_insert(now_ms);
            let waited = since.saturating_add(REPLY_WAIT_MS);
            if now_ms >= waited {
                // Waited long enough: send, and wait afresh from now.
                self.unacked_since = Some(now_ms);
            } else {
                until = until.max(Some(waited));
            }
        }
        until.filter(|&until| now_ms < until)
    }

    /// The peer sent a message (already received into `state`).
    pub(crate) fn heard(&mut self, state: &sync::State) {
        if state.sent_hashes.is_empty() {
            self.unacked_since = None;
        }
    }
}
