//! The loop the product exists for, with the real relay and client
//! programs: schools edit offline, reconnect, and converge.

use std::time::Duration;

use partnerplan_tests::{RelayProcess, School, wait_until};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(60);

fn setup(schools: usize) -> (tempfile::TempDir, RelayProcess, Vec<School>) {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let schools = (0..schools)
        .map(|i| School::init(root.path(), &format!("School {i}"), &relay))
        .collect();
    (root, relay, schools)
}

/// Every school creates-or-opens the document and syncs it once.
fn share(schools: &[School], title: &str) -> String {
    let url = schools[0].create(title);
    schools[0].sync();
    for school in &schools[1..] {
        school.ok(&["open", &url]);
        school.sync();
        assert_eq!(school.show(&url)["title"], json!(title));
    }
    url
}

fn status_values(doc: &Value) -> Vec<String> {
    match &doc["status"] {
        Value::Object(map) => map["conflict"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        Value::String(s) => vec![s.clone()],
        other => panic!("status is {other}"),
    }
}

#[test]
fn two_schools_edit_offline_and_converge_when_the_relay_returns() {
    let (_root, mut relay, schools) = setup(2);
    let (a, b) = (&schools[0], &schools[1]);
    let url = share(&schools, "Action plan");

    relay.stop();
    // Different fields, the same text field, the same scalar field.
    a.ok(&["set", &url, "lead", "Mrs Okafor"]);
    b.ok(&["set", &url, "review", "Spring 1"]);
    a.ok(&["edit", &url, "title", "--append", " 2026"]);
    b.ok(&[
        "edit",
        &url,
        "title",
        "--insert-at",
        "0",
        "--text",
        "Joint ",
    ]);
    a.ok(&["set", &url, "status", "amber"]);
    b.ok(&["set", &url, "status", "green"]);
    // Offline: the sync says so in a sentence and keeps the edits.
    let error = a.fails(&["sync", "--timeout", "3"]);
    assert!(
        error.contains("could not be reached") && error.contains("kept"),
        "{error}"
    );

    relay.start_again();
    let _watch_a = a.watch();
    let _watch_b = b.watch();
    wait_until(CONVERGE, "both schools hold identical documents", || {
        let (da, db) = (a.show(&url), b.show(&url));
        da == db
            && da.get("review").is_some()
            && da.get("lead").is_some()
            && status_values(&da).len() == 2
    });
    let doc = a.show(&url);
    assert_eq!(doc["lead"], json!("Mrs Okafor"));
    assert_eq!(doc["review"], json!("Spring 1"));
    assert_eq!(doc["title"], json!("Joint Action plan 2026"));
    let mut statuses = status_values(&doc);
    statuses.sort();
    assert_eq!(
        statuses,
        vec!["amber", "green"],
        "both values stay visible as a conflict"
    );
    let shown = a.ok(&["show", &url]);
    assert!(
        shown.contains("Conflict: two schools set “status” at once"),
        "{shown}"
    );
}

/// A person who runs `partnerplan sync` while the relay is down hears so
/// in seconds, whether nothing listens there or something listens and
/// never answers, and the sentence says why and that edits are kept.
#[test]
fn a_single_sync_says_within_seconds_that_the_relay_cannot_be_reached() {
    let (_root, mut relay, schools) = setup(1);
    let school = &schools[0];
    school.create("Action plan");
    relay.stop();

    let started = std::time::Instant::now();
    let error = school.fails(&["sync"]);
    let took = started.elapsed();
    assert!(
        error.contains("could not be reached")
            && error.contains("is the relay running")
            && error.contains("kept"),
        "{error}"
    );
    assert!(took < Duration::from_secs(5), "said so after {took:?}");

    // Something listens at the relay's address but never answers (a
    // stalled proxy, a half-dead host): the same, in the same time.
    let silent = std::net::TcpListener::bind(relay.addr).expect("the relay's address is free");
    let started = std::time::Instant::now();
    let error = school.fails(&["sync"]);
    let took = started.elapsed();
    assert!(
        error.contains("could not be reached") && error.contains("no answer in"),
        "{error}"
    );
    assert!(took < Duration::from_secs(5), "said so after {took:?}");
    drop(silent);

    // The background sync keeps trying: it sends the edit once the relay
    // is back, without being started again.
    let _watch = school.watch();
    std::thread::sleep(Duration::from_secs(2));
    relay.start_again();
    wait_until(CONVERGE, "the background sync reaches the relay", || {
        school
            .ok(&["status"])
            .contains("All 1 document is confirmed")
    });
}

#[test]
fn nine_schools_converge_after_editing_offline() {
    let (_root, mut relay, schools) = setup(9);
    let url = schools[0].create("Cluster plan");
    // The shared notes exist before anyone types in them: a text field
    // created at two schools at once would be two texts in conflict.
    schools[0].ok(&["edit", &url, "notes", "--append", "Notes: "]);
    schools[0].sync();
    for school in &schools[1..] {
        school.ok(&["open", &url]);
        school.sync();
    }
    relay.stop();
    for (i, school) in schools.iter().enumerate() {
        school.ok(&[
            "set",
            &url,
            &format!("school_{i}"),
            &format!("\"note from {i}\""),
        ]);
        school.ok(&["edit", &url, "notes", "--append", &format!("[{i}]")]);
    }
    relay.start_again();
    for school in &schools {
        school.sync();
    }
    // A second round carries what others sent after each school's first sync.
    for school in &schools {
        school.sync();
    }
    let first = schools[0].show(&url);
    for school in &schools {
        assert_eq!(
            school.show(&url),
            first,
            "{} holds the same document",
            school.name
        );
    }
    let notes = first["notes"].as_str().unwrap();
    for i in 0..9 {
        assert_eq!(
            first[format!("school_{i}")],
            json!(format!("note from {i}"))
        );
        assert!(
            notes.contains(&format!("[{i}]")),
            "notes keep every school's text: {notes}"
        );
    }
}

#[test]
fn a_relay_restart_keeps_every_document() {
    let (root, mut relay, schools) = setup(1);
    let urls: Vec<String> = (0..15)
        .map(|i| schools[0].create(&format!("Audit {i}")))
        .collect();
    // The sync finished, so the relay confirmed every change: killed at
    // once, with no chance to tidy up, it must still hold them all.
    schools[0].sync();
    relay.kill();
    relay.start_again();
    let newcomer = School::init(root.path(), "Repton Manor", &relay);
    for url in &urls {
        newcomer.ok(&["open", url]);
    }
    newcomer.sync();
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(newcomer.show(url)["title"], json!(format!("Audit {i}")));
    }
    // And a clean restart keeps them too.
    relay.restart();
    let late = School::init(root.path(), "Late Joiner", &relay);
    late.ok(&["open", &urls[14]]);
    late.sync();
    assert_eq!(late.show(&urls[14])["title"], json!("Audit 14"));
}

#[test]
fn an_edit_survives_the_sync_process_being_killed_and_is_sent_later() {
    let (_root, _relay, schools) = setup(2);
    let (a, b) = (&schools[0], &schools[1]);
    let url = share(&schools, "Plan");
    let watcher = a.watch();
    a.ok(&["set", &url, "status", "red"]);
    watcher.kill();
    assert_eq!(a.show(&url)["status"], json!("red"), "the edit is on disk");
    a.sync();
    b.sync();
    assert_eq!(b.show(&url)["status"], json!("red"));
}

#[test]
fn status_tells_what_waits_to_sync_and_when_sync_last_succeeded() {
    let (_root, mut relay, schools) = setup(1);
    let a = &schools[0];
    let url = a.create("Memorandum");
    let before = a.ok(&["status"]);
    assert!(
        before.contains("Not connected: no background sync is running"),
        "{before}"
    );
    assert!(
        before.contains("1 of 1 documents hold changes the relay has not confirmed"),
        "{before}"
    );
    assert!(before.contains(&url), "{before}");
    assert!(before.contains("No sync has succeeded yet"), "{before}");

    a.sync();
    let after = a.ok(&["status"]);
    assert!(
        after.contains("All 1 document is confirmed by the relay"),
        "{after}"
    );
    assert!(after.contains("Last successful sync:"), "{after}");

    let _watch = a.watch();
    wait_until(Duration::from_secs(20), "status says connected", || {
        a.ok(&["status"]).contains("Connected to the relay")
    });
    relay.stop();
    a.ok(&["set", &url, "status", "amber"]);
    wait_until(
        Duration::from_secs(20),
        "status says the sync keeps trying",
        || {
            let now = a.ok(&["status"]);
            now.contains("Not connected: the background sync is running") && now.contains(&url)
        },
    );
    let json: Value = serde_json::from_str(&a.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["connected"], json!(false));
    assert_eq!(json["unconfirmed"][0]["url"], json!(url));
    relay.start_again();
    wait_until(
        CONVERGE,
        "the change is confirmed after the relay returns",
        || {
            let now = a.ok(&["status"]);
            now.contains("Connected to the relay") && now.contains("All 1 document is confirmed")
        },
    );
}

#[test]
fn opening_an_unknown_document_says_the_relay_does_not_have_it() {
    let (_root, _relay, schools) = setup(1);
    let missing = "automerge:2j9knpCseyhnK8izDmLpGP5WMdZQ";
    schools[0].ok(&["open", missing]);
    let out = schools[0].ok(&["sync", "--timeout", "30"]);
    assert!(
        out.contains("The relay does not have automerge:2j9knpCseyhnK8izDmLpGP5WMdZQ"),
        "{out}"
    );
    let error = schools[0].fails(&["show", missing]);
    assert!(error.contains("has no copy"), "{error}");
}
