//! The school's app end to end: the real `partnerplan app` process, the
//! real relay, driven in Debian's headless Chromium (tests/browser).

use std::path::{Path, PathBuf};

use partnerplan_tests::School;
use partnerplan_tests::app::{AppProcess, scenario, screenshots_dir};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/action-plan-000.json")
}

/// A school, offline, holding the imported 000 plan.
fn school_with_plan(root: &Path) -> School {
    let school = School::offline(root, "Bank Road Infant and Nursery School");
    school.ok(&["--as", "Ann Head", "import", fixture().to_str().unwrap()]);
    school
}

#[test]
fn the_plan_reads_like_the_paper_and_is_edited_in_place() {
    let root = tempfile::tempdir().unwrap();
    let school = school_with_plan(root.path());
    let app = AppProcess::start(&school);
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    scenario("plan.mjs", &[&app.url, shots.to_str().unwrap()]);
}

#[test]
fn another_site_can_neither_read_nor_change_the_schools_documents() {
    let root = tempfile::tempdir().unwrap();
    let school = school_with_plan(root.path());
    let app = AppProcess::start(&school);
    let host = app.host();

    let (status, body) = app.raw(&format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 200, "{body}");
    let token = body
        .split("name=\"csrf\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its token")
        .to_string();
    let doc = body
        .split("href=\"/doc/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the home page links a document")
        .to_string();

    // DNS rebinding: a page at evil.example that resolves to 127.0.0.1.
    let (status, _) = app.raw(&format!(
        "GET /doc/{doc} HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
        host.rsplit(':').next().unwrap()
    ));
    assert_eq!(status, 421, "a request for another host name is refused");

    let change = |extra: &str| {
        let body = r#"{"key":"title","value":"Hijacked","heads":""}"#;
        app.raw(&format!(
            "POST /doc/{doc}/field HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    // Another origin, even with the token (it could not read it anyway).
    let (status, body) = change(&format!(
        "Origin: http://evil.example\r\nX-CSRF-Token: {token}\r\n"
    ));
    assert_eq!(status, 403, "{body}");
    // A cross-site form post carries no token.
    let (status, body) = change("Sec-Fetch-Site: cross-site\r\n");
    assert_eq!(status, 403, "{body}");
    let (status, body) = change("");
    assert_eq!(status, 403, "no token: {body}");
    assert!(
        body.contains("did not come from one of this app's pages"),
        "{body}"
    );
    // The title is unchanged.
    let (_, page) = app.raw(&format!(
        "GET /doc/{doc} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert!(!page.contains("Hijacked"));
    // With the page's own token and origin, the same change is made.
    let (status, body) = change(&format!(
        "Origin: http://{host}\r\nX-CSRF-Token: {token}\r\n"
    ));
    assert_eq!(status, 200, "{body}");
}
