//! What our own client and relay put on the wire between them (the
//! compact sync they agree on in `join`/`peer`), counted by the link
//! shaper with WebSocket framing, against the information floor of the
//! changes sent (tests/src/floor.rs).

use std::path::Path;
use std::time::Duration;

use automerge::ChangeHash;
use partnerplan_tests::floor::Floor;
use partnerplan_tests::shaper::{LinkShape, Shaper};
use partnerplan_tests::{RelayProcess, School, TEST_PARTNERSHIP, wait_until};
use serde_json::{Value, json};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/action-plan-000.json")
}

/// A member school whose every connection goes through `line`.
fn school_behind(root: &Path, relay: &RelayProcess, line: &Shaper, name: &str) -> School {
    let invite = relay
        .invite_at(TEST_PARTNERSHIP, name, "member", &line.url())
        .expect("a new school gets an invite");
    School::join(root, name, &invite)
}

/// The seed plan imported at `school`: its URL.
fn import_plan(school: &School) -> String {
    let out = school.ok(&[
        "--as",
        "Carole Clemens",
        "import",
        fixture().to_str().unwrap(),
    ]);
    out.lines()
        .find_map(|l| l.strip_prefix("Action plan:"))
        .map(|u| u.trim().to_string())
        .expect("import prints the plan's URL")
}

/// `k` edits as a person makes them at the command line: a status change,
/// then a sentence appended to an action's notes, in turn.
fn edit_offline(school: &School, url: &str, actions: &[String], k: usize) {
    let statuses = ["amber", "green", "done", "red"];
    for i in 0..k {
        let row = &actions[i % actions.len()];
        if i % 2 == 0 {
            school.ok(&["put", url, "status", statuses[i / 2 % 4], "--row", row]);
        } else {
            school.ok(&[
                "type",
                url,
                "notes",
                "--row",
                row,
                "--append",
                &format!(" Checked with the head on visit {i}; evidence filed."),
            ]);
        }
    }
}

/// Fifty edits made offline at one school on the seed plan (25 status
/// changes, 25 sentences appended to notes) reach the relay, when the
/// school reconnects, in at most 1.3 times the smallest encoding of those
/// changes (bundle, deflate or zstd): the reconnect costs that much more
/// than one with nothing to send. (Automerge's standard exchange sent the
/// whole plan again: some 8 times the floor.)
#[test]
fn fifty_offline_edits_cost_at_most_a_third_more_than_their_floor() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let line = Shaper::start(relay.addr, LinkShape::clear());
    let school = school_behind(root.path(), &relay, &line, "Hilltop");
    let url = import_plan(&school);
    school.sync();

    // A reconnect with nothing to send: the connection's own cost.
    let before = line.bytes();
    school.sync();
    let idle = line.bytes() - before;

    let heads: Vec<ChangeHash> = school
        .stored(&url)
        .expect("the school holds it")
        .get_heads();
    edit_offline(&school, &url, &school.action_ids(&url), 50);
    let floor = Floor::since(&school.stored(&url).expect("the school holds it"), &heads);
    assert_eq!(floor.changes, 50);

    let before = line.bytes();
    school.sync();
    let reconnect = line.bytes() - before;
    let edits = reconnect - idle;
    eprintln!(
        "50 edits: {reconnect} bytes on reconnect, {idle} for one with nothing to send; floor {floor:?}"
    );
    assert!(
        edits as f64 <= 1.3 * floor.smallest() as f64,
        "the edits added {edits} bytes to the reconnect; their floor is {} ({floor:?})",
        floor.smallest()
    );

    // And they arrived: another school reads them.
    let other = School::init(root.path(), "Valley", &relay);
    other.ok(&["open", &url]);
    other.sync();
    assert_eq!(
        other.stored(&url).expect("the school holds it").get_heads(),
        school
            .stored(&url)
            .expect("the school holds it")
            .get_heads()
    );
}

/// A lone live edit at one school costs each other school's line, both
/// ways, at most twice the change's own size.
#[test]
fn a_lone_live_edit_costs_each_receiving_school_at_most_twice_its_size() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let lines: Vec<Shaper> = (0..3)
        .map(|_| Shaper::start(relay.addr, LinkShape::clear()))
        .collect();
    let schools: Vec<School> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| school_behind(root.path(), &relay, line, &format!("School {i}")))
        .collect();
    let url = import_plan(&schools[0]);
    let row = schools[0].action_ids(&url)[0].clone();
    schools[0].sync();
    let _watching: Vec<_> = schools.iter().map(School::watch).collect();
    let status_at = |school: &School| -> Value {
        let plan: Value = serde_json::from_str(&school.ok(&["view", &url, "--json"])).unwrap();
        plan["areas"][0]["actions"][0]["status"].clone()
    };
    wait_until(
        Duration::from_secs(60),
        "every school holds the plan",
        || schools[1..].iter().all(|s| s.has(&url)),
    );
    // Let the first syncs settle.
    std::thread::sleep(Duration::from_secs(2));

    let heads = schools[0]
        .stored(&url)
        .expect("the school holds it")
        .get_heads();
    let before: Vec<u64> = lines.iter().map(Shaper::bytes).collect();
    schools[0].ok(&["put", &url, "status", "green", "--row", &row]);
    wait_until(
        Duration::from_secs(30),
        "the edit reaches every school",
        || schools[1..].iter().all(|s| status_at(s) == json!("green")),
    );
    // The acknowledgements follow the change.
    std::thread::sleep(Duration::from_secs(1));
    let change = Floor::since(
        &schools[0].stored(&url).expect("the school holds it"),
        &heads,
    );
    assert_eq!(change.changes, 1);
    for (i, line) in lines.iter().enumerate().skip(1) {
        let cost = line.bytes() - before[i];
        eprintln!(
            "school {i}: {cost} bytes for a change of {} bytes",
            change.raw
        );
        assert!(
            cost <= 2 * change.raw as u64,
            "school {i}'s line carried {cost} bytes for a change of {} bytes",
            change.raw
        );
    }
}
