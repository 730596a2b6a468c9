//! The local authority's comments to one partnership, end to end: a real
//! relay with two partnerships (ACE: two schools; RAiD: one) and a local
//! authority that views both with one token. Its comment reaches ACE's
//! schools only, nobody but it may change it, it still cannot change
//! ACE's plan, and all of this holds after the relay restarts. Then the
//! same in the apps, in Debian's headless Chromium
//! (tests/browser/la_comment.mjs): the local authority's form and a
//! school's view of the comments.

use partnerplan_tests::app::{AppProcess, scenario};
use partnerplan_tests::{RelayProcess, School, js};
use serde_json::Value;

const LA: &str = "Kent County Council";
const PLAN_TITLE: &str = "ACE action plan 2024-2025";
const FIRST: &str = "The writing actions need review dates before the summer term.";
const SECOND: &str = "Thank you: the review dates are in. We will visit in June.";

/// Every comment's text in a comments document, as `view --json` gives it.
fn comment_texts(school: &School, url: &str) -> Vec<String> {
    let out = school.ok(&["view", url, "--json"]);
    let view: Value = serde_json::from_str(&out).expect("view --json prints JSON");
    view["comments"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of comments: {view}"))
        .iter()
        .map(|row| {
            let field = |key: &str| row[key].as_str().unwrap_or_default().to_string();
            format!(
                "{} | {} | {} | {}",
                field("date"),
                field("officer"),
                field("concerning"),
                field("text")
            )
        })
        .collect()
}

fn lists(school: &School, url: &str) -> bool {
    let id = url.trim_start_matches("automerge:");
    school.ok(&["list", "--json"]).contains(id)
}

#[test]
fn the_local_authority_comments_to_one_partnership_and_writes_nothing_of_its_own() {
    let root = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let la_invite = relay.invite(LA, LA, "member").unwrap();
    let hamstreet = School::join(
        root.path(),
        "Hamstreet Primary",
        &relay.invite("ACE", "Hamstreet Primary", "member").unwrap(),
    );
    let woodchurch = School::join(
        root.path(),
        "Woodchurch Primary",
        &relay.invite("ACE", "Woodchurch Primary", "member").unwrap(),
    );
    let raid_invite = relay.invite("RAiD", "Priory Fields", "member").unwrap();
    let priory = School::join(root.path(), "Priory Fields", &raid_invite);
    for partnership in ["ACE", "RAiD"] {
        assert_eq!(relay.invite(partnership, LA, "viewer"), None);
    }
    let plan = hamstreet.ok(&[
        "--as",
        "Ann Head",
        "new",
        "action-plan",
        "--title",
        PLAN_TITLE,
    ]);
    let plan = plan.lines().next().unwrap().trim().to_string();
    hamstreet.sync();
    let la = School::join(root.path(), LA, &la_invite);
    la.sync();
    assert!(la.has(&plan), "the local authority reads ACE's plan");

    // The local authority comments to ACE from the command line.
    let comments = la.ok(&[
        "--as",
        "Jane Okafor",
        "comment",
        "ACE",
        FIRST,
        "--date",
        "14 March 2025",
        "--concerning",
        PLAN_TITLE,
    ]);
    let comments = comments.trim().to_string();
    la.sync();

    // ACE's schools receive it and read it, and may not change it.
    woodchurch.sync();
    assert!(lists(&woodchurch, &comments), "listed to ACE's school");
    assert_eq!(
        comment_texts(&woodchurch, &comments),
        vec![format!("2025-03-14 | Jane Okafor | {PLAN_TITLE} | {FIRST}")]
    );
    let refused = woodchurch.fails(&["put", &comments, "title", "Ours now"]);
    assert!(
        refused.contains("can read it but not change it"),
        "{refused}"
    );

    // RAiD's school is never told of it, and cannot ask for it.
    priory.sync();
    assert!(!lists(&priory, &comments), "not listed to RAiD");
    priory.ok(&["open", &comments]);
    priory.sync();
    assert!(!priory.has(&comments), "RAiD's school cannot fetch it");
    let asked = js::client(&["read", &raid_invite, &comments, "--timeout-ms", "5000"]);
    assert!(
        asked.is_err(),
        "a JS client with RAiD's token reads it: {asked:?}"
    );

    // The local authority still cannot change ACE's own plan: its command
    // line says so, and the relay takes nothing from a program that tries.
    let refused = la.fails(&["put", &plan, "period", "2099"]);
    assert!(refused.contains("can read"), "{refused}");
    let forced = js::client(&[
        "set",
        &la_invite,
        &plan,
        "period",
        r#""2099""#,
        "--timeout-ms",
        "5000",
    ]);
    assert!(
        forced.as_ref().is_err_and(|e| e.contains("confirm")),
        "the relay must not confirm the local authority's change to ACE's plan: {forced:?}"
    );
    hamstreet.sync();
    assert!(
        !hamstreet.ok(&["view", &plan, "--json"]).contains("2099"),
        "ACE's plan is unchanged"
    );

    // After a restart the relay still knows whose the comments are.
    relay.restart();
    la.ok(&[
        "--as",
        "Jane Okafor",
        "comment",
        "ACE",
        SECOND,
        "--date",
        "2 May 2025",
    ]);
    la.sync();
    let late = School::join(
        root.path(),
        "Kingsnorth Primary",
        &relay.invite("ACE", "Kingsnorth Primary", "member").unwrap(),
    );
    late.sync();
    woodchurch.sync();
    for school in [&late, &woodchurch] {
        let texts = comment_texts(school, &comments);
        assert_eq!(texts.len(), 2, "{}: {texts:?}", school.name);
        assert!(texts[1].ends_with(SECOND), "{texts:?}");
    }
    priory.sync();
    assert!(!priory.has(&comments), "still not RAiD's after the restart");

    // The apps: the local authority's form, and a school's view.
    let la_app = AppProcess::start(&la);
    let school_app = AppProcess::start(&woodchurch);
    scenario("la_comment.mjs", &[&la_app.url, &school_app.url]);
    // An edit to the comments sent to the school's app anyway (its pages
    // offer none) is forbidden, saying whose they are.
    let host = school_app.host();
    let (_, token) = school_app.home_and_token();
    let id = comments.trim_start_matches("automerge:");
    let body = r#"{"key":"title","value":"Ours now","heads":""}"#;
    let (status, answer) = school_app.raw(&format!(
        "POST /doc/{id}/field HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nX-CSRF-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains("the local authority's document"),
        "{answer}"
    );
    drop(la_app);
    drop(school_app);
    hamstreet.sync();
    let texts = comment_texts(&hamstreet, &comments);
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[2].contains("Maria Lopez"), "{texts:?}");
    priory.sync();
    assert!(!priory.has(&comments));
}
