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
