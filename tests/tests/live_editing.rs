//! Official automerge-repo clients editing one plan at once through our
//! relay, as a cluster's staff meeting would: every edit arrives, and the
//! relay coalesces what it sends so the bytes on the wire (counted by the
//! shaper, WebSocket framing included) stay a fraction of what a message
//! per change and peer cost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use partnerplan_tests::shaper::{LinkShape, Shaper};
use partnerplan_tests::{RelayProcess, TEST_PARTNERSHIP, js};

/// Nine schools' JS clients, each on its own connection, each editing the
/// plan every 50 ms, 50 edits apiece (450 in all). Through the reference
/// server this took about 7.8 MB on the wire; a relay answering every
/// message at once took 55 MB (and its storm grew with the load on the
/// machine). The bound is half the reference's.
const BYTES_BOUND: u64 = 4_000_000;

#[test]
fn nine_js_clients_editing_one_plan_converge_without_a_message_storm() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let line = Shaper::start(relay.addr, LinkShape::clear());
    let invites: Vec<String> = (0..9)
        .map(|i| {
            relay
                .invite_at(
                    TEST_PARTNERSHIP,
                    &format!("JS School {i}"),
                    "member",
                    &line.url(),
                )
                .expect("a new school gets an invite")
        })
        .collect();
    let report = js::live_edit(
        &invites,
        &["--clients", "9", "--interval-ms", "50", "--edits", "50"],
        Duration::from_secs(240),
    )
    .unwrap();
    assert_eq!(report["edits"], 450, "{report}");
    let up = line.counts().up.load(Ordering::Relaxed);
    let down = line.counts().down.load(Ordering::Relaxed);
    eprintln!("live editing: {up} bytes up, {down} down; {report}");
    assert!(
        up + down <= BYTES_BOUND,
        "{} bytes crossed the line ({up} up, {down} down) for 450 edits; the bound is {BYTES_BOUND}",
        up + down
    );
}
