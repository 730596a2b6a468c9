//! A document at rest: out of memory while the peers that sync it stay
//! connected.
//!
//! A relay holds a document in memory while someone edits it. Once it has
//! been idle for a while (`RepoConfig::idle_unload_ms`) the document
//! leaves memory even if its subscribers are still connected: all that
//! stays is, per subscriber, where it stood. Nearly every subscriber of
//! an idle document is in step with it (it holds what we hold and knows
//! we hold it), which costs one connection id; the others keep the heads
//! both sides shared. The next message for the document loads it from
//! storage and puts each subscriber's sync state back as if it had never
//! left, so the peer's message is answered in the same exchange and the
//! other subscribers are sent any new change at once.

use automerge::ChangeHash;
use automerge::sync::{self, BloomFilter, Capability, Have};

use crate::repo::ConnId;

/// What is kept of a document at rest.
#[derive(Debug, Default)]
pub(crate) struct Resting {
    /// The document's heads when it went to rest.
    heads: Vec<ChangeHash>,
    /// Subscribers that were in step with `heads`.
    in_step: Vec<(ConnId, Bits)>,
    /// The others, with the heads both sides shared.
    apart: Vec<(ConnId, Bits, Box<[ChangeHash]>)>,
}

/// What a subscriber's state needs beyond heads, in one byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bits(u8);

impl Bits {
    const READ_ONLY: u8 = 1;
    const PEER_READ_ONLY: u8 = 1 << 1;
    const CAPABILITIES_KNOWN: u8 = 1 << 2;
    const V2: u8 = 1 << 3;
    const SYNC_RESET: u8 = 1 << 4;
    /// Flags of the core's own (`PeerDoc`), kept with the state.
    pub(crate) const REMOTE_UNAVAILABLE: u8 = 1 << 5;
    pub(crate) const TOLD_READ_ONLY: u8 = 1 << 6;

    pub(crate) fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    fn of(state: &sync::State, core: u8) -> Bits {
        let mut bits = core;
        if state.read_only {
            bits |= Self::READ_ONLY;
        }
        if state.peer_read_only {
            bits |= Self::PEER_READ_ONLY;
        }
        if let Some(capabilities) = &state.their_capabilities {
            bits |= Self::CAPABILITIES_KNOWN;
            for capability in capabilities {
                bits |= match capability {
                    Capability::MessageV2 => Self::V2,
                    Capability::SyncReset => Self::SYNC_RESET,
                    _ => 0,
                };
            }
        }
        Bits(bits)
    }

    fn apply(self, state: &mut sync::State) {
        state.read_only = self.has(Self::READ_ONLY);
        state.peer_read_only = self.has(Self::PEER_READ_ONLY);
        if self.has(Self::CAPABILITIES_KNOWN) {
            let mut capabilities = vec![Capability::MessageV1];
            if self.has(Self::V2) {
                capabilities.push(Capability::MessageV2);
            }
            if self.has(Self::SYNC_RESET) {
                capabilities.push(Capability::SyncReset);
            }
            state.their_capabilities = Some(capabilities);
        }
    }
}

/// Nothing of ours is on its way to the peer.
fn settled(state: &sync::State) -> bool {
    state.sent_hashes.is_empty()
}

impl Resting {
    pub(crate) fn new(heads: Vec<ChangeHash>) -> Resting {
        Resting {
            heads,
            in_step: Vec::new(),
            apart: Vec::new(),
        }
    }

    /// Keeps what `conn`'s sync state needs; `core` holds the core's own
    /// flags for it ([`Bits::REMOTE_UNAVAILABLE`], [`Bits::TOLD_READ_ONLY`]).
    pub(crate) fn keep(&mut self, conn: ConnId, state: &sync::State, core: u8) {
        let bits = Bits::of(state, core);
        if self.in_step_with(state) {
            self.in_step.push((conn, bits));
        } else {
            self.apart
                .push((conn, bits, state.shared_heads.clone().into_boxed_slice()));
        }
    }

    fn in_step_with(&self, state: &sync::State) -> bool {
        let same = |heads: &[ChangeHash]| {
            heads.len() == self.heads.len() && heads.iter().all(|h| self.heads.contains(h))
        };
        same(&state.shared_heads)
            && state.their_heads.as_deref().is_some_and(same)
            && same(&state.last_sent_heads)
            && state.have_responded
            && settled(state)
    }

    /// The connection closed while the document rested.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.in_step.retain(|(c, _)| *c != conn);
        self.apart.retain(|(c, _, _)| *c != conn);
    }

    /// The connections subscribed to the document.
    pub(crate) fn subscribers(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.in_step
            .iter()
            .map(|(conn, _)| *conn)
            .chain(self.apart.iter().map(|(conn, _, _)| *conn))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.in_step.is_empty() && self.apart.is_empty()
    }

    /// Every subscriber with its sync state as it was, and the core's flags.
    pub(crate) fn wake(self) -> Vec<(ConnId, sync::State, Bits)> {
        let mut woken = Vec::with_capacity(self.in_step.len() + self.apart.len());
        for (conn, bits) in self.in_step {
            // As after an exchange that left both sides with `heads`: the
            // peer knows we hold them, and anything newer goes to it at
            // once (its summary is empty past them).
            let mut state = sync::State::new();
            state.shared_heads = self.heads.clone();
            state.their_heads = Some(self.heads.clone());
            state.their_need = Some(Vec::new());
            state.their_have = Some(vec![Have {
                last_sync: self.heads.clone(),
                bloom: BloomFilter::default(),
            }]);
            state.last_sent_heads = self.heads.clone();
            state.have_responded = true;
            bits.apply(&mut state);
            woken.push((conn, state, bits));
        }
        for (conn, bits, shared) in self.apart {
            // Only the shared heads are known: the next exchange with this
            // peer starts from them, as after a reconnect.
            let mut state = sync::State::new();
            state.shared_heads = shared.into_vec();
            state.their_have = Some(Vec::new());
            bits.apply(&mut state);
            woken.push((conn, state, bits));
        }
        woken
    }
}
