//! The official automerge-repo JavaScript client (2.5.x, from npm) and
//! our relay and client, in both directions and live. The JS client needs
//! no changes: the invite line is a URL it connects to as it is.

use std::time::Duration;

use partnerplan_tests::js;
use partnerplan_tests::{RelayProcess, School, TEST_PARTNERSHIP, wait_until};
use serde_json::json;

fn relay_with_js_school(root: &std::path::Path, extra: &[&str]) -> (RelayProcess, String) {
    let relay = RelayProcess::start(&root.join("relay"), extra);
    let invite = relay
        .invite(TEST_PARTNERSHIP, "JS School", "member")
        .unwrap();
    (relay, invite)
}

#[test]
fn a_document_created_by_the_js_client_is_read_by_our_client() {
    let root = tempfile::tempdir().unwrap();
    let (relay, js_school) = relay_with_js_school(root.path(), &[]);
    let created = js::client(&[
        "create",
        &js_school,
        r#"{"title":"Audit from JS","pupils":212}"#,
    ])
    .unwrap();
    let url = created["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("automerge:"));
    let school = School::init(root.path(), "Hilltop", &relay);
    school.ok(&["open", &url]);
    school.sync();
    let doc = school.show(&url);
    assert_eq!(doc["title"], json!("Audit from JS"));
    assert_eq!(doc["pupils"], json!(212));
}

#[test]
fn a_document_created_by_our_client_is_read_by_the_js_client() {
    let root = tempfile::tempdir().unwrap();
    let (relay, js_school) = relay_with_js_school(root.path(), &[]);
    let school = School::init(root.path(), "Hilltop", &relay);
    let url = school.create("Plan from Rust");
    school.ok(&["set", &url, "status", "green"]);
    school.ok(&["set", &url, "objectives", "[1, 2, 5]"]);
    school.sync();
    let read = js::client(&["read", &js_school, &url]).unwrap();
    assert_eq!(read["doc"]["title"], json!("Plan from Rust"));
    assert_eq!(read["doc"]["status"], json!("green"));
    assert_eq!(read["doc"]["objectives"], json!([1, 2, 5]));
}

#[test]
fn live_changes_flow_both_ways_between_js_and_our_client() {
    let root = tempfile::tempdir().unwrap();
    let (relay, js_school) = relay_with_js_school(root.path(), &[]);
    let school = School::init(root.path(), "Hilltop", &relay);
    let url = school.create("Live plan");
    school.sync();
    let _watch = school.watch();

    js::client(&["set", &js_school, &url, "status", r#""amber""#]).unwrap();
    wait_until(
        Duration::from_secs(30),
        "our client sees the JS client's change",
        || school.show(&url)["status"] == json!("amber"),
    );

    school.ok(&["set", &url, "lead", "Mrs Okafor"]);
    let seen = js::client(&[
        "wait-for",
        &js_school,
        &url,
        "lead",
        r#""Mrs Okafor""#,
        "--timeout-ms",
        "30000",
    ])
    .unwrap();
    assert_eq!(seen["doc"]["status"], json!("amber"));
    assert_eq!(seen["doc"]["title"], json!("Live plan"));
}

#[test]
fn the_js_client_is_told_why_a_bad_connection_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (relay, js_school) = relay_with_js_school(root.path(), &["--max-frame-bytes", "4096"]);
    let no_token = js::client(&["expect-refused", &relay.url()]).unwrap();
    assert_eq!(no_token["closed"], json!(true));
    assert!(
        no_token["error_message"]
            .as_str()
            .unwrap()
            .contains("needs an access token"),
        "{no_token}"
    );
    assert_eq!(
        no_token["http_status"],
        json!(null),
        "refused with a message, not an HTTP error"
    );
    let wrong = format!("{}/?token=pp_0000", relay.url());
    let wrong = js::client(&["expect-refused", &wrong]).unwrap();
    assert!(
        wrong["error_message"]
            .as_str()
            .unwrap()
            .contains("access token is not valid"),
        "{wrong}"
    );

    let garbage = js::client(&["expect-refused", &js_school, "--garbage"]).unwrap();
    assert_eq!(garbage["closed"], json!(true));
    assert!(
        garbage["error_message"]
            .as_str()
            .unwrap()
            .contains("could not be read"),
        "{garbage}"
    );
    let versions = js::client(&["expect-refused", &js_school, "--protocol-versions", "2"]).unwrap();
    assert!(
        versions["error_message"]
            .as_str()
            .unwrap()
            .contains("protocol version 1"),
        "{versions}"
    );
    let big = js::client(&["expect-refused", &js_school, "--oversize-bytes", "3000000"]).unwrap();
    assert!(
        big["error_message"]
            .as_str()
            .unwrap()
            .contains("limit of 4096 bytes"),
        "{big}"
    );
}

/// Our client against the Node reference server: the server never says
/// `partnerplanCompact` (nor lists documents), so our client keeps to the
/// standard protocol, and documents go both ways as with our relay.
#[test]
fn our_client_syncs_with_the_reference_server_in_the_standard_protocol() {
    let root = tempfile::tempdir().unwrap();
    let server = js::ReferenceServer::start(&root.path().join("reference"));
    let school = School::unjoined(root.path(), "Hilltop");
    school.ok(&["init", "--school", "Hilltop", "--relay", &server.url()]);
    let ours = school.create("Plan from Rust");
    school.ok(&["set", &ours, "status", "\"amber\""]);
    school.sync();
    let read = js::client(&["read", &server.url(), &ours]).unwrap();
    assert_eq!(read["doc"]["title"], json!("Plan from Rust"));
    assert_eq!(read["doc"]["status"], json!("amber"));

    let created = js::client(&[
        "create",
        &server.url(),
        r#"{"title":"Audit from JS","pupils":212}"#,
    ])
    .unwrap();
    let theirs = created["url"].as_str().unwrap().to_string();
    school.ok(&["open", &theirs]);
    school.sync();
    assert_eq!(school.show(&theirs)["pupils"], json!(212));

    // Offline edits at our school reach a JS reader through the server.
    for i in 0..10 {
        school.ok(&["set", &ours, &format!("note{i}"), &format!("\"seen {i}\"")]);
    }
    school.sync();
    let read = js::client(&["wait-for", &server.url(), &ours, "note9", "\"seen 9\""]).unwrap();
    assert!(read.get("error").is_none(), "{read}");
}
