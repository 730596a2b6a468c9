//! The relay's admin side end to end: its pages in Debian's headless
//! Chromium (tests/browser/admin*.mjs), refusals over raw HTTP, `/metrics`
//! read by a Prometheus text-format parser under load, and its logs.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use partnerplan_tests::app::{scenario, screenshots_dir};
use partnerplan_tests::{RelayProcess, School, client_binary, js, relay_binary, wait_until};
use serde_json::Value;

const PASSWORD: &str = "the hall is booked for Tuesday";

/// One HTTP request to `addr`, naming it as the host: the status, the
/// response's headers and its body.
fn exchange(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("the relay accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.to_string(), body.to_string())
}

fn get_from(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let (status, _, body) = exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"),
    );
    (status, body)
}

fn post_to(addr: SocketAddr, path: &str, extra: &str, body: &str) -> (u16, String, String) {
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A request to the admin pages' own listener, from this computer.
fn get(relay: &RelayProcess, path: &str, extra: &str) -> (u16, String) {
    get_from(relay.admin, path, extra)
}

fn post(relay: &RelayProcess, path: &str, extra: &str, body: &str) -> (u16, String) {
    let (status, _, body) = post_to(relay.admin, path, extra, body);
    (status, body)
}

/// The secret token in a page's forms.
fn form_token(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its token")
        .to_string()
}

fn set_password(relay: &RelayProcess, password: &str) {
    let mut child = Command::new(relay_binary())
        .arg("--data")
        .arg(&relay.data)
        .arg("admin-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn partnerships(relay: &RelayProcess) -> Vec<String> {
    let list: Value =
        serde_json::from_str(&relay.admin_ok(&["partnership", "list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_admin_pages_add_a_school_show_its_invite_once_renew_it_and_remove_it() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("relay.log");
    let relay = RelayProcess::start_logging(&root.path().join("relay"), &[], &log);
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    scenario(
        "admin.mjs",
        &[
            &format!("http://{}", relay.admin),
            client_binary().to_str().unwrap(),
            root.path().to_str().unwrap(),
            shots.to_str().unwrap(),
        ],
    );

    // The page's backup is a checked copy in the relay's backups folder.
    let backups: Vec<_> = std::fs::read_dir(root.path().join("relay").join("backups"))
        .expect("the page's backup made the folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert!(
        backups.len() == 1 && backups[0].starts_with("relay-") && backups[0].ends_with(".sqlite"),
        "{backups:?}"
    );

    // What the pages did is what the command line sees.
    let schools: Value =
        serde_json::from_str(&relay.admin_ok(&["school", "list", "--json"])).unwrap();
    let names: Vec<&str> = schools
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Kent County Council governors"], "{schools}");
    assert_eq!(schools[0]["partnerships"][0][1], "member");
    // The removed school's invites no longer work.
    let school = School::unjoined(root.path(), "Bank Road");
    let refused = school.fails(&["sync", "--timeout", "20"]);
    assert!(refused.contains("not valid"), "{refused}");

    // Every action was logged, with who and what, and no secret.
    let text = std::fs::read_to_string(&log).unwrap();
    for action in [
        "create partnership",
        "add school",
        "rotate token",
        "change role",
        "remove school",
        "back up now",
    ] {
        assert!(
            text.lines().any(|l| l.contains("admin action")
                && l.contains(action)
                && l.contains("relay's own computer")),
            "the log names {action} and who did it"
        );
    }
    assert!(!text.contains("pp_"), "no token is logged");
    assert!(!text.contains('\u{1b}'), "no colour codes in a file");
}

#[test]
fn another_site_cannot_act_and_another_computer_needs_the_password() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let (status, page) = get(&relay, "/admin", "");
    assert_eq!(status, 200, "{page}");
    let csrf = form_token(&page);
    let create = |extra: &str, token: &str| {
        post(
            &relay,
            "/admin/partnerships",
            extra,
            &format!("csrf={token}&name=Hijacked"),
        )
    };
    // Another origin, even with the token (it could not read it anyway).
    let (status, body) = create("Origin: http://evil.example\r\n", &csrf);
    assert_eq!(status, 403, "{body}");
    let (status, _) = create("Sec-Fetch-Site: cross-site\r\n", &csrf);
    assert_eq!(status, 403);
    // The relay's own origin without the page's token.
    let own = format!("Origin: http://{}\r\n", relay.admin);
    let (status, body) = create(&own, "guessed");
    assert_eq!(status, 403, "{body}");
    assert!(partnerships(&relay).is_empty(), "nothing was made");
    // Nor a backup, which writes a file.
    let (status, _) = post(&relay, "/admin/backup", &own, "csrf=guessed");
    assert_eq!(status, 403);
    let (status, _) = post(
        &relay,
        "/admin/backup",
        "Origin: http://evil.example\r\n",
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 403);
    assert!(
        !root.path().join("relay").join("backups").exists(),
        "no backup was made"
    );
    // With both, it works.
    let (status, _) = create(&own, &csrf);
    assert_eq!(status, 303);
    assert_eq!(partnerships(&relay), ["Hijacked"]);

    // A page of another site whose name resolves to 127.0.0.1.
    let (status, _, _) = exchange(
        relay.admin,
        &format!(
            "GET /admin HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
            relay.admin.port()
        ),
    );
    assert_eq!(status, 403);
    // A proxy pointed at the admin listener, that says whom it forwards.
    let (status, _) = get(&relay, "/admin", "X-Forwarded-For: 203.0.113.7\r\n");
    assert_eq!(status, 403);

    // The public listener, as another computer reaches it through a
    // reverse proxy on the relay's computer that passes neither the
    // original host nor X-Forwarded-For (nginx's default): the request is
    // from 127.0.0.1 and names 127.0.0.1, and is still refused.
    let (status, body) = get_from(relay.addr, "/admin", "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin-password"), "says what to do: {body}");
    assert!(
        body.contains(&format!("http://{}/admin", relay.admin)),
        "says where the pages open without a password: {body}"
    );
    let (status, _) = get_from(relay.addr, "/metrics", "");
    assert_eq!(status, 403);
    assert_eq!(get_from(relay.addr, "/admin/login", "").0, 403);

    // With a password: the login page, and metrics for the password only.
    set_password(&relay, PASSWORD);
    let (status, _) = get_from(relay.addr, "/admin", "");
    assert_eq!(status, 303, "sent to the login page");
    let (status, _) = get_from(relay.addr, "/metrics", "");
    assert_eq!(status, 401);
    let (status, _) = get_from(
        relay.addr,
        "/metrics",
        "Authorization: Bearer not the password\r\n",
    );
    assert_eq!(status, 401);
    let (status, body) = get_from(
        relay.addr,
        "/metrics",
        &format!("Authorization: Bearer {PASSWORD}\r\n"),
    );
    assert_eq!(status, 200);
    assert!(body.contains("partnerplan_relay_connections"));
    // The relay's own computer still goes straight in, at the admin listener.
    assert_eq!(get(&relay, "/admin", "").0, 200);

    scenario(
        "admin_guard.mjs",
        &[
            &format!("http://{}", relay.admin),
            &format!("http://{}", relay.addr),
            PASSWORD,
        ],
    );
    assert_eq!(
        partnerships(&relay),
        ["Hijacked"],
        "the other site's form made nothing"
    );
}

/// Logs in at the public listener; the session cookie.
fn log_in(relay: &RelayProcess, password: &str) -> Option<String> {
    let (_, page) = get_from(relay.addr, "/admin/login", "");
    let (status, head, _) = post_to(
        relay.addr,
        "/admin/login",
        "",
        &format!(
            "csrf={}&password={}",
            form_token(&page),
            password.replace(' ', "+")
        ),
    );
    assert!(matches!(status, 303 | 401 | 429), "{status}: {head}");
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .filter(|c| c.starts_with("pp_admin=") && c.len() > "pp_admin=".len())
        .map(str::to_string)
}

#[test]
fn a_changed_password_ends_every_login_and_the_login_page_gives_no_change_token() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    set_password(&relay, PASSWORD);
    let cookie = log_in(&relay, PASSWORD).expect("logged in");
    let with = format!("Cookie: {cookie}\r\n");
    let (status, page) = get_from(relay.addr, "/admin", &with);
    assert_eq!(status, 200, "{page}");

    // The login page is shown to anyone who reaches the relay: its token
    // does not make changes.
    let (_, login_page) = get_from(relay.addr, "/admin/login", "");
    let login_token = form_token(&login_page);
    assert_ne!(login_token, form_token(&page));
    let (status, _, body) = post_to(
        relay.addr,
        "/admin/partnerships",
        &with,
        &format!("csrf={login_token}&name=From+the+login+page"),
    );
    assert_eq!(status, 403, "{body}");
    assert!(partnerships(&relay).is_empty());

    // A new password, because the old one was seen: the old login ends.
    set_password(&relay, "a new password nobody has seen");
    let (status, _) = get_from(relay.addr, "/admin", &with);
    assert_eq!(status, 303, "sent to log in again");
    assert!(log_in(&relay, PASSWORD).is_none(), "the old password fails");
    let cookie = log_in(&relay, "a new password nobody has seen").expect("logged in");
    let with = format!("Cookie: {cookie}\r\n");
    assert_eq!(get_from(relay.addr, "/admin", &with).0, 200);
    // No password at all: nobody from elsewhere, logged in or not.
    let out = relay.admin(&["admin-password", "--remove"]);
    assert!(out.status.success());
    assert_eq!(get_from(relay.addr, "/admin", &with).0, 403);
    set_password(&relay, "a new password nobody has seen");
    assert_eq!(
        get_from(relay.addr, "/admin", &with).0,
        303,
        "a login from before the removal stays ended"
    );
}

#[test]
fn wrong_passwords_for_metrics_count_against_the_same_limit_as_logins() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    set_password(&relay, PASSWORD);
    let bearer = |password: &str| {
        get_from(
            relay.addr,
            "/metrics",
            &format!("Authorization: Bearer {password}\r\n"),
        )
        .0
    };
    assert_eq!(bearer(PASSWORD), 200);
    let mut statuses = Vec::new();
    for n in 0..12 {
        statuses.push(bearer(&format!("guess number {n}")));
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 2], "{statuses:?}");
    // Not even the right password is checked for now, at /metrics or at
    // the login page; the relay's own computer is not locked out.
    assert_eq!(bearer(PASSWORD), 429);
    assert!(log_in(&relay, PASSWORD).is_none());
    assert_eq!(get(&relay, "/metrics", "").0, 200);
}

/// Every metric the issue names, by its name in the exposition.
const METRICS: [&str; 15] = [
    "partnerplan_relay_connections",
    "partnerplan_relay_connections_opened_total",
    "partnerplan_relay_schools_connected",
    "partnerplan_relay_documents_loaded",
    "partnerplan_relay_documents_resting",
    "partnerplan_relay_documents_stored",
    "partnerplan_relay_received_bytes_total",
    "partnerplan_relay_sent_bytes_total",
    "partnerplan_relay_received_messages_total",
    "partnerplan_relay_sent_messages_total",
    "partnerplan_relay_sync_seconds",
    "partnerplan_relay_refusals_total",
    "partnerplan_relay_storage_bytes",
    "partnerplan_relay_last_backup_age_seconds",
    "partnerplan_relay_sync_seconds_count",
];

struct Scrape {
    values: HashMap<String, f64>,
    histogram: Vec<(f64, f64)>,
}

fn scrape(relay: &RelayProcess) -> Scrape {
    let (status, body) = get(relay, "/metrics", "");
    assert_eq!(status, 200, "{body}");
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text format parses");
    let mut values = HashMap::new();
    let mut histogram = Vec::new();
    for sample in parsed.samples {
        let name = match sample.labels.get("reason") {
            Some(reason) => format!("{}{{{reason}}}", sample.metric),
            None => sample.metric.clone(),
        };
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                values.insert(name.clone(), v);
                values.entry(sample.metric).or_insert(v);
            }
            prometheus_parse::Value::Histogram(buckets) => {
                values.insert(name, buckets.len() as f64);
                histogram = buckets.iter().map(|b| (b.less_than, b.count)).collect();
            }
            prometheus_parse::Value::Summary(_) => panic!("no summaries expected"),
        }
    }
    for name in METRICS {
        assert!(values.contains_key(name), "{name} is in /metrics");
    }
    Scrape { values, histogram }
}

#[test]
fn metrics_are_all_there_and_move_under_load() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let before = scrape(&relay);
    assert_eq!(before.values["partnerplan_relay_connections"], 0.0);
    assert!(before.values["partnerplan_relay_last_backup_age_seconds"].is_infinite());

    // Three schools write and sync; one stays connected.
    let schools: Vec<School> = ["Bank Road", "William Lilley", "Hilltop"]
        .iter()
        .map(|name| School::init(root.path(), name, &relay))
        .collect();
    for (i, school) in schools.iter().enumerate() {
        for n in 0..4 {
            let url = school.create(&format!("Plan {i}.{n}"));
            school.ok(&["edit", &url, "title", "--append", " (draft)"]);
        }
        school.sync();
    }
    // A connection with a token that is not valid is refused.
    let intruder = School::join(
        root.path(),
        "Intruder",
        &format!("{}/?token=pp_not_a_real_token", relay.url()),
    );
    let _ = intruder.run(&["sync", "--timeout", "10"]);
    relay.admin_ok(&[
        "backup",
        "--to",
        root.path().join("b.sqlite").to_str().unwrap(),
    ]);
    let _watch = schools[0].watch();
    wait_until(
        Duration::from_secs(30),
        "a school shows as connected",
        || {
            let now = scrape(&relay);
            now.values["partnerplan_relay_connections"] >= 1.0
                && now.values["partnerplan_relay_schools_connected"] >= 1.0
                && now.values["partnerplan_relay_documents_loaded"] >= 1.0
        },
    );
    let after = scrape(&relay);
    let grew = |name: &str| {
        assert!(
            after.values[name] > before.values[name],
            "{name} moved: {} then {}",
            before.values[name],
            after.values[name]
        )
    };
    for name in [
        "partnerplan_relay_connections_opened_total",
        "partnerplan_relay_received_bytes_total",
        "partnerplan_relay_sent_bytes_total",
        "partnerplan_relay_received_messages_total",
        "partnerplan_relay_sent_messages_total",
        "partnerplan_relay_sync_seconds_count",
        "partnerplan_relay_sync_seconds_sum",
        "partnerplan_relay_documents_stored",
        "partnerplan_relay_storage_bytes",
        "partnerplan_relay_refusals_total{bad_token}",
    ] {
        grew(name);
    }
    assert!(after.values["partnerplan_relay_documents_stored"] >= 12.0);
    let age = after.values["partnerplan_relay_last_backup_age_seconds"];
    assert!(
        (0.0..600.0).contains(&age),
        "the backup's age is known: {age}"
    );
    // The histogram is cumulative and ends at +Inf with the count.
    let (last_bound, last_count) = *after.histogram.last().unwrap();
    assert!(last_bound.is_infinite());
    assert_eq!(
        last_count,
        after.values["partnerplan_relay_sync_seconds_count"]
    );
    assert!(after.histogram.windows(2).all(|w| w[0].1 <= w[1].1));
}

#[test]
fn the_admin_page_names_each_schools_client_and_health_names_the_last_backup() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let ours = School::init(root.path(), "Bank Road", &relay);
    ours.create("Plan");
    ours.sync();
    let js_invite = relay
        .invite(partnerplan_tests::TEST_PARTNERSHIP, "Hilltop", "member")
        .unwrap();
    js::client(&["create", &js_invite, r#"{"title":"Audit from JS"}"#]).unwrap();

    let (_, health) = get(&relay, "/health", "");
    assert!(health.contains("last backup: none yet"), "{health}");
    relay.admin_ok(&[
        "backup",
        "--to",
        root.path().join("b.sqlite").to_str().unwrap(),
    ]);
    let (status, health) = get(&relay, "/health", "");
    assert_eq!(status, 200);
    assert!(
        health.contains("last backup: 2") && health.trim_end().ends_with('Z'),
        "{health}"
    );

    wait_until(
        Duration::from_secs(20),
        "the page names both schools' clients",
        || {
            let (_, page) = get(&relay, "/admin", "");
            let row = |school: &str| {
                page.split("<tr>")
                    .find(|r| r.contains(&format!("<td>{school}</td>")))
                    .unwrap_or("")
                    .to_string()
            };
            row("Bank Road").contains(concat!("partnerplan ", env!("CARGO_PKG_VERSION")))
                && row("Hilltop").contains("automerge-repo client (JavaScript)")
        },
    );
    // The command line sees the same last syncs.
    let schools: Value =
        serde_json::from_str(&relay.admin_ok(&["school", "list", "--json"])).unwrap();
    for school in schools.as_array().unwrap() {
        assert!(school["last_sync"]["at"].as_i64().unwrap() > 0, "{school}");
    }
    let documents: Value =
        serde_json::from_str(&relay.admin_ok(&["document", "list", "--json"])).unwrap();
    assert_eq!(documents.as_array().unwrap().len(), 2, "{documents}");
    for document in documents.as_array().unwrap() {
        assert!(document["bytes"].as_u64().unwrap() > 0);
        assert!(document["changed_at"].as_i64().is_some());
    }
}

#[test]
fn logs_have_no_colour_codes_off_a_terminal_and_are_json_when_asked() {
    let root = tempfile::tempdir().unwrap();
    for (format, data) in [("text", "text"), ("json", "json")] {
        let log = root.path().join(format!("{format}.log"));
        let mut relay =
            RelayProcess::start_logging(&root.path().join(data), &["--log-format", format], &log);
        let school = School::init(root.path(), &format!("School {format}"), &relay);
        school.create("Plan");
        school.sync();
        relay.stop();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains('\u{1b}'), "{format}: no colour codes");
        assert!(text.contains("relay listening"), "{format}: {text}");
        if format == "json" {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a JSON object a line ({e}): {line}"));
                assert!(value["level"].is_string() && value["timestamp"].is_string());
            }
        }
    }
}

#[test]
fn install_service_shows_the_unit_it_would_install() {
    let out = partnerplan_tests::run_bounded(
        {
            let mut c = Command::new(relay_binary());
            c.args([
                "install-service",
                "--dry-run",
                "--data-dir",
                "/srv/relay",
                "--public-url",
                "wss://relay.example",
            ]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("User=partnerplan-relay"), "{said}");
    assert!(
        said.contains(
            "--data /srv/relay serve --listen 0.0.0.0:7171 --public-url wss://relay.example"
        ),
        "{said}"
    );
    assert!(said.contains("useradd --system"), "{said}");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/partnerplan-relay.service")
            .exists()
    );
}

#[test]
fn the_admin_pages_never_listen_beyond_this_computer() {
    let root = tempfile::tempdir().unwrap();
    let out = partnerplan_tests::run_bounded(
        {
            let mut c = Command::new(relay_binary());
            c.arg("--data")
                .arg(root.path().join("relay"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(["--admin-listen", "0.0.0.0:0"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("must be a loopback address") && said.contains("admin-password"),
        "{said}"
    );
}
