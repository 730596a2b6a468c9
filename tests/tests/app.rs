//! The school's app end to end: the real `partnerplan app` process, the
//! real relay, driven in Debian's headless Chromium (tests/browser).

use std::path::{Path, PathBuf};

use partnerplan_tests::app::{AppProcess, scenario, screenshots_dir};
use partnerplan_tests::{RelayProcess, School};

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
    scenario(
        "plan.mjs",
        &[
            &app.url,
            shots.to_str().unwrap(),
            fixture().to_str().unwrap(),
        ],
    );
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

/// Two schools of one partnership, each with its app, and the relay.
struct Partners {
    root: tempfile::TempDir,
    relay: RelayProcess,
    a: AppProcess,
    b: AppProcess,
    plan: String,
    /// Bank Road's data folder.
    a_dir: PathBuf,
}

fn partners() -> Partners {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), "Bank Road Infant and Nursery School", &relay);
    let b = School::init(
        root.path(),
        "William Lilley Infant and Nursery School",
        &relay,
    );
    let out = a.ok(&["--as", "Ann Head", "import", fixture().to_str().unwrap()]);
    let plan = out
        .lines()
        .find_map(|l| l.strip_prefix("Action plan: "))
        .expect("import prints the plan's URL")
        .trim()
        .to_string();
    a.sync();
    b.ok(&["--as", "Bea Chair", "open", &plan]);
    let app_a = AppProcess::start(&a);
    let app_b = AppProcess::start(&b);
    let id = plan.trim_start_matches("automerge:").to_string();
    Partners {
        root,
        relay,
        a: app_a,
        b: app_b,
        plan: id,
        a_dir: a.dir.clone(),
    }
}

#[test]
fn a_partners_edits_appear_live_and_text_typed_at_once_keeps_both() {
    let p = partners();
    scenario("live.mjs", &[&p.a.url, &p.b.url, &p.plan]);
}

#[test]
fn a_conflict_made_offline_is_shown_at_both_schools_and_resolved_with_a_click() {
    let mut p = partners();
    // Both apps hold the plan before the line goes down.
    scenario("live.mjs", &[&p.a.url, &p.b.url, &p.plan]);
    p.relay.stop();
    scenario("conflict_make.mjs", &[&p.a.url, &p.b.url, &p.plan]);
    p.relay.start_again();
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    scenario(
        "conflict_resolve.mjs",
        &[&p.a.url, &p.b.url, &p.plan, shots.to_str().unwrap()],
    );
}

/// Writes into Bank Road's copy, as a program that skips every check
/// might, a signature for the review of 11 July 2017 naming William
/// Lilley, sealed with a key no school published.
fn forge_a_signature(p: &Partners) {
    use partnerplan_model::records::{SignatureInput, find};
    use partnerplan_model::{Author, review, signing::Signer};
    let stranger = p.root.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    let key = partnerplan_client::school::signing_key(&stranger).unwrap();
    let signer = Signer::new(key, "William Lilley Infant and Nursery School", Vec::new());
    let mut store = partnerplan_sync::Store::open(p.a_dir.join("school.sqlite")).unwrap();
    let id = partnerplan_sync::DocumentId::parse_url_or_id(&p.plan).unwrap();
    let who = Author {
        school: "William Lilley Infant and Nursery School".into(),
        person: None,
        time: partnerplan_client::status::now_unix(),
    };
    store
        .change(
            &id,
            &automerge::ActorId::random(),
            Some("a forged signature".into()),
            |doc| -> Result<(), partnerplan_client::ClientError> {
                let (_, paper) = find(doc, "11 July 2017")?;
                let input = SignatureInput {
                    name: Some("Someone Forged".into()),
                    role: "headteacher".into(),
                    school: String::new(),
                    date: None,
                };
                review::sign(doc, &id.to_string(), &paper.id, &input, &signer, &who)?;
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn each_school_signs_from_its_own_app_and_later_edits_are_marked() {
    let p = partners();
    forge_a_signature(&p);
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    scenario(
        "review.mjs",
        &[&p.a.url, &p.b.url, &p.plan, shots.to_str().unwrap()],
    );
}

#[test]
fn a_school_joins_from_the_invite_and_every_document_arrives_by_itself() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), "Bank Road Infant and Nursery School", &relay);
    a.ok(&["--as", "Ann Head", "import", fixture().to_str().unwrap()]);
    a.sync();
    let invite = relay
        .invite(
            partnerplan_tests::TEST_PARTNERSHIP,
            "William Lilley Infant and Nursery School",
            "member",
        )
        .unwrap();
    // A new computer: nothing set up, the app started first.
    let b = School::unjoined(root.path(), "William Lilley Infant and Nursery School");
    let app = AppProcess::start(&b);
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    scenario(
        "join.mjs",
        &[
            &app.url,
            &invite,
            partnerplan_tests::client_binary().to_str().unwrap(),
            a.dir.to_str().unwrap(),
            b.dir.to_str().unwrap(),
            shots.to_str().unwrap(),
        ],
    );
}

#[test]
fn a_viewer_sees_no_edit_control_and_its_edits_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), "Bank Road Infant and Nursery School", &relay);
    let out = a.ok(&["--as", "Ann Head", "import", fixture().to_str().unwrap()]);
    let plan = out
        .lines()
        .find_map(|l| l.strip_prefix("Action plan: "))
        .unwrap()
        .trim()
        .trim_start_matches("automerge:")
        .to_string();
    a.sync();
    let invite = relay
        .invite(
            partnerplan_tests::TEST_PARTNERSHIP,
            "Kent County Council",
            "viewer",
        )
        .unwrap();
    let la = School::join(root.path(), "Kent County Council", &invite);
    let app = AppProcess::start(&la);
    scenario("viewer.mjs", &[&app.url, &plan]);
}

#[test]
fn a_second_start_finds_the_running_app() {
    let root = tempfile::tempdir().unwrap();
    let school = school_with_plan(root.path());
    let app = AppProcess::start(&school);
    let output = partnerplan_tests::run_bounded(
        school.command(&["app", "--no-browser"]),
        std::time::Duration::from_secs(20),
    );
    assert!(output.status.success());
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&format!("already running for this school at {}", app.url)),
        "{said}"
    );
}

#[test]
fn every_kind_of_document_has_its_page() {
    let root = tempfile::tempdir().unwrap();
    let school = School::offline(root.path(), "Hilltop Primary");
    let app = AppProcess::start(&school);
    scenario("kinds.mjs", &[&app.url]);
}

#[test]
fn served_with_a_password_the_app_opens_only_to_it() {
    let root = tempfile::tempdir().unwrap();
    let school = school_with_plan(root.path());
    // No password set: the app will not serve beyond this computer.
    let output = partnerplan_tests::run_bounded(
        school.command(&[
            "app",
            "--listen",
            "127.0.0.1:0",
            "--no-browser",
            "--require-password",
        ]),
        std::time::Duration::from_secs(20),
    );
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("needs a password") && said.contains("partnerplan app-password"),
        "{said}"
    );

    let password = "the hall is booked for Tuesday";
    let mut set = school
        .command(&["app-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(set.stdin.take().unwrap(), "{password}").unwrap();
    assert!(set.wait().unwrap().success());

    let app = AppProcess::start_with(&school, &["--require-password"]);
    // Without logging in, a change is refused too.
    let host = app.host();
    let (status, _) = app.raw(&format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 303, "the home page sends to the login page");
    scenario("login.mjs", &[&app.url, password]);

    // Guessing is slow: after ten wrong passwords in a minute, even the
    // right one waits, with a sentence that says how long.
    let (_, form) = app.raw(&format!(
        "GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    let login_token = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login form carries its token")
        .to_string();
    let try_password = |given: &str| {
        let body = format!("csrf={login_token}&password={}", given.replace(' ', "+"));
        app.raw(&format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    // One wrong guess was made in the browser above.
    for i in 1..10 {
        let (status, _) = try_password(&format!("guess number {i}"));
        assert_eq!(status, 401, "guess {i}");
    }
    let (status, page) = try_password(password);
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Wait a minute, then try again"), "{page}");
}

/// The page's token and the plan's address, read from the app's pages.
fn token_and_plan(app: &AppProcess) -> (String, String) {
    let (body, token) = app.home_and_token();
    // The plan's link, by its name (the list's order follows the clock).
    let plan = body
        .split("href=\"/doc/")
        .skip(1)
        .find(|rest| rest.contains("\">Collaboration action plan"))
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    (token, plan)
}

#[test]
fn huge_or_odd_input_gets_a_sentence_and_a_long_text_does_not_stall_the_app() {
    let root = tempfile::tempdir().unwrap();
    let school = school_with_plan(root.path());
    let app = AppProcess::start(&school);
    let host = app.host();
    let (token, plan) = token_and_plan(&app);
    let post = |path: &str, body: &str| {
        app.raw(&format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nX-CSRF-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let (status, body) = post(&format!("/doc/{plan}/field"), &"x".repeat(2 * 1024 * 1024));
    assert_eq!(status, 413);
    assert!(body.contains("more than one change can carry"), "{body}");
    // A document this computer does not hold: a sentence, not a crash.
    let (status, body) = post(
        &format!("/doc/{}/field", partnerplan_sync::DocumentId::random()),
        r#"{"key":"title","value":"x","heads":""}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("holds no such document"), "{body}");
    // A row a partner removed meanwhile: what to do on the page, not a
    // command to type.
    let (status, body) = post(
        &format!("/doc/{plan}/field"),
        r#"{"row":"a0a0a0a0","key":"action","value":"x","heads":""}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("Reload the page"), "{body}");
    assert!(!body.contains('`'), "{body}");
    let (status, body) = post(&format!("/doc/{plan}/rows"), r#"{"do":"explode"}"#);
    assert!(status == 422 || status == 400, "{status}");
    assert!(
        body.contains("could not read, so nothing was changed"),
        "{body}"
    );

    // A long text pasted over another, as one change: quick, and the app
    // answers others meanwhile and after.
    let long: String = (0..12_000).map(|i| format!("w{i} ")).collect();
    let (status, body) = post(
        &format!("/doc/{plan}/text"),
        &serde_json::json!({"key": "overridingObjective", "heads": "", "after": long}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let reversed: String = long.chars().rev().collect();
    let (status, _) = post(
        &format!("/doc/{plan}/text"),
        &serde_json::json!({"key": "overridingObjective", "heads": "", "after": reversed})
            .to_string(),
    );
    assert_eq!(status, 200);
    // The app still answers, and the plan's page shows the second text
    // whole (its speed is measured in BENCHMARKS.md, not timed here).
    let (status, _) = app.raw(&format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 200);
    let (status, page) = app.raw(&format!(
        "GET /doc/{plan} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 200);
    let reversed = reversed.trim();
    assert!(
        page.contains(&reversed[..60]),
        "the start of the new text is shown"
    );
    assert!(
        page.contains(&reversed[reversed.len() - 60..]),
        "and its end"
    );
    assert!(!page.contains("w11999 "), "the old text is gone");
}

#[test]
fn the_command_lines_as_does_not_change_who_edits_in_the_app() {
    let root = tempfile::tempdir().unwrap();
    let school = school_with_plan(root.path());
    let app = AppProcess::start(&school);
    let (_, plan) = token_and_plan(&app);
    school.ok(&[
        "--as",
        "Bob Office",
        "put",
        &plan,
        "title",
        "The two schools' partnership",
    ]);
    let host = app.host();
    let (_, page) = app.raw(&format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert!(
        page.contains("· Ann Head"),
        "the app still edits as Ann Head"
    );
    // The data folder is the school's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&school.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

#[test]
fn a_command_line_edit_shows_on_the_open_page_before_the_school_joins() {
    let root = tempfile::tempdir().unwrap();
    let school = School::unjoined(root.path(), "Hilltop Primary");
    school.ok(&["init", "--school", "Hilltop Primary"]);
    school.ok(&["--as", "Ann Head", "import", fixture().to_str().unwrap()]);
    let app = AppProcess::start(&school);
    scenario(
        "cli_beside.mjs",
        &[
            &app.url,
            partnerplan_tests::client_binary().to_str().unwrap(),
            school.dir.to_str().unwrap(),
        ],
    );
}
