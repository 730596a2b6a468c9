//! A relay no client can stall or bloat: each attack that once worked,
//! tried again over real sockets against the relay program. While each
//! runs, an honest school keeps editing and must be answered within
//! 250 ms at the 95th percentile, and the relay's resident memory must
//! stay under the bound the test states.

use std::time::{Duration, Instant};

use automerge::sync::{self, ChunkList, Have};
use futures_util::SinkExt;
use partnerplan_sync::DocumentId;
use partnerplan_tests::attack::{
    HonestSchool, PeakMemory, document_with_changes, error_message, join, push, sync_frame,
};
use partnerplan_tests::{RelayProcess, TEST_PARTNERSHIP};

/// How long each attack keeps going, so the honest school's edits are
/// timed throughout.
const ATTACK: Duration = Duration::from_secs(2);

/// The relay's memory bound while an attack runs: a debug build serving a
/// handful of small documents stays well under it.
const MEMORY_MIB: u64 = 200;

fn relay(root: &std::path::Path, extra: &[&str]) -> RelayProcess {
    RelayProcess::start(&root.join("relay"), extra)
}

fn invite(relay: &RelayProcess, school: &str, role: &str) -> String {
    relay
        .invite(TEST_PARTNERSHIP, school, role)
        .expect("a new school gets an invite")
}

/// A `sync` whose `have` list holds a million empty summaries (2 MB) made
/// automerge compare every one with every change of a 2,000-change
/// document: 5 s of the only engine thread per message, from a viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_message_listing_a_million_summaries_is_refused_unread() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(root.path(), &[]);
    let member = invite(&relay, "Hilltop", "member");
    let viewer = invite(&relay, "Governors", "viewer");
    let honest = invite(&relay, "Honest", "member");
    let id = DocumentId::random();
    let mut socket = join(&member, "hilltop").await.unwrap();
    push(&mut socket, "hilltop", id, &mut document_with_changes(2000)).await;

    let school = HonestSchool::start(&honest);
    let memory = PeakMemory::watch(relay.pid());
    let started = Instant::now();
    let mut attempts = 0;
    while started.elapsed() < ATTACK && attempts < 20 {
        attempts += 1;
        let peer = format!("governors-{attempts}");
        let mut attacker = join(&viewer, &peer).await.unwrap();
        let bomb = sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![Have::default(); 1_000_000],
            changes: ChunkList::empty(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        attacker
            .send(sync_frame(&peer, id, bomb, false))
            .await
            .unwrap();
        let error = error_message(&mut attacker)
            .await
            .expect("the relay says why it refuses the message");
        assert!(
            error.contains("it lists 1000000 summaries (“have”), where a peer sends at most 16"),
            "{error}"
        );
    }
    school.finish("a million summaries");
    memory.finish(MEMORY_MIB, "a million summaries");
}

/// Reconnecting refilled a connection's message allowance, so a client
/// that reconnected each time it was cut kept flooding the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_does_not_refill_a_schools_message_allowance() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(root.path(), &["--max-messages-per-second", "100"]);
    let flooder = invite(&relay, "Flooder", "member");
    let honest = invite(&relay, "Honest", "member");
    let school = HonestSchool::start(&honest);
    let memory = PeakMemory::watch(relay.pid());
    let gossip = |peer: &str| {
        tokio_tungstenite::tungstenite::Message::Binary(
            partnerplan_sync::Message::Gossip {
                sender_id: peer.into(),
                kind: "remote-subscription-change".into(),
            }
            .encode()
            .into(),
        )
    };
    // The first connection spends the school's allowance (ten seconds'
    // worth, 1,000 messages) and is cut.
    let started = Instant::now();
    let mut first = join(&flooder, "flooder-1").await.unwrap();
    for _ in 0..2000 {
        if first.send(gossip("flooder-1")).await.is_err() {
            break;
        }
    }
    let told = error_message(&mut first).await.expect("the flood is cut");
    assert!(
        told.contains("at most 100 a second from one school, over all its connections"),
        "{told}"
    );
    // Connecting again at once does not start afresh: within a second's
    // worth and a little more, each new connection is cut too.
    let mut attempt = 1;
    while started.elapsed() < ATTACK || attempt < 3 {
        attempt += 1;
        let peer = format!("flooder-{attempt}");
        let told = match join(&flooder, &peer).await {
            // Even its `join` is over the allowance.
            Err(refused) => refused,
            Ok(mut again) => {
                for _ in 0..150 {
                    if again.send(gossip(&peer)).await.is_err() {
                        break;
                    }
                }
                error_message(&mut again)
                    .await
                    .expect("the reconnected flood is cut before a fresh allowance")
            }
        };
        assert!(told.contains("too many messages"), "{told}");
    }
    school.finish("a flood that reconnects");
    memory.finish(MEMORY_MIB, "a flood that reconnects");
}
