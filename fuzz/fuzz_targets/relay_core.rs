//! The relay's core (built from its database as `Relay::start` builds it,
//! with the relay's real access policy) fed arbitrary frames on a member's
//! and a viewer's connections, with the clock moving and the viewer
//! reconnecting. It must never panic or hang, and a viewer's frames never
//! make it keep anything: no change stored, no document claimed.

#![no_main]

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use partnerplan_fuzz::{MEMBER_PEER, Relay, Step, steps};
use partnerplan_relay::core_from_store;
use partnerplan_sync::message::PROTOCOL_VERSION;
use partnerplan_sync::{Effect, Event, Message, PeerMetadata, Repo};

const MEMBER: u64 = 1;

fn relay() -> &'static Mutex<Relay> {
    static RELAY: OnceLock<Mutex<Relay>> = OnceLock::new();
    RELAY.get_or_init(|| Mutex::new(Relay::new()))
}

/// Runs one event as an engine turn would, answering loads from the
/// store. Writes are not committed, so every input starts from the same
/// file. Returns whether the turn wanted anything kept.
fn handle(repo: &mut Repo, relay: &Relay, event: Event) -> bool {
    let mut effects: VecDeque<Effect> = repo.handle(event).into();
    let mut keeps = false;
    while let Some(effect) = effects.pop_front() {
        match effect {
            Effect::Load { document_id } => {
                let (chunks, sync_states) = relay.store.load(&document_id).unwrap_or_default();
                effects.extend(repo.handle(Event::Loaded {
                    document_id,
                    chunks,
                    sync_states,
                }));
            }
            Effect::Persist { .. } | Effect::PersistOwner { .. } => keeps = true,
            _ => {}
        }
    }
    keeps
}

fuzz_target!(|data: &[u8]| {
    let mut relay = relay().lock().unwrap_or_else(|e| e.into_inner());
    let config = relay.config.clone();
    let (mut repo, _) = core_from_store(&mut relay.store, &config).expect("the core starts");
    let relay = &*relay;
    // The member's connection is opened with a good `join`, so most inputs
    // test an open connection; the viewer's gets only what the input says.
    handle(
        &mut repo,
        relay,
        Event::Connected {
            conn: MEMBER,
            initiate: false,
            grant: Some(relay.member.clone()),
        },
    );
    let join = Message::Join {
        sender_id: MEMBER_PEER.into(),
        supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
        metadata: PeerMetadata {
            storage_id: Some("fuzz-member-storage".into()),
            is_ephemeral: false,
            listing: true,
            ..PeerMetadata::default()
        },
    };
    handle(
        &mut repo,
        relay,
        Event::Frame {
            conn: MEMBER,
            bytes: join.encode(),
        },
    );
    let mut viewer = 2;
    handle(
        &mut repo,
        relay,
        Event::Connected {
            conn: viewer,
            initiate: false,
            grant: Some(relay.viewer.clone()),
        },
    );
    let mut now_ms = 0;
    for step in steps(data) {
        match step {
            Step::Frame {
                viewer: false,
                bytes,
            } => {
                handle(
                    &mut repo,
                    relay,
                    Event::Frame {
                        conn: MEMBER,
                        bytes: bytes.to_vec(),
                    },
                );
            }
            Step::Frame {
                viewer: true,
                bytes,
            } => {
                let kept = handle(
                    &mut repo,
                    relay,
                    Event::Frame {
                        conn: viewer,
                        bytes: bytes.to_vec(),
                    },
                );
                assert!(!kept, "a viewer's frame made the relay keep something");
            }
            Step::Tick => {
                now_ms += 61_000;
                handle(&mut repo, relay, Event::Tick { now_ms });
            }
            Step::Reconnect => {
                handle(&mut repo, relay, Event::Disconnected { conn: viewer });
                viewer += 1;
                handle(
                    &mut repo,
                    relay,
                    Event::Connected {
                        conn: viewer,
                        initiate: false,
                        grant: Some(relay.viewer.clone()),
                    },
                );
            }
        }
    }
});
