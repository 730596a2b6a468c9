//! The relay's memory while schools stay connected: a document nobody has
//! touched for the idle time leaves memory even though the schools that
//! sync it are still there (the relay's /health counts them), and their
//! next edits bring it back. (What that does to the relay's RSS is in
//! BENCHMARKS.md: `partnerplan-relay-bench`'s memory scenario.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use partnerplan_tests::{RelayProcess, TEST_PARTNERSHIP, load_binary};
use serde_json::Value;

/// What the relay's health check says.
fn health(relay: &RelayProcess) -> String {
    let mut stream = TcpStream::connect(relay.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        relay.addr
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// What the load tool reported, and the last /health that met `seen`
/// while it ran.
struct Run {
    report: Value,
    seen: Option<String>,
}

/// Twenty schools, each connected throughout, sync 1,000 plans of a few
/// KB (each shared by two of them); then nobody touches anything for ten
/// seconds; then every school edits. `seen` is checked against /health
/// every quarter second meanwhile.
fn twenty_schools_sync_and_idle(relay: &RelayProcess, seen: impl Fn(&str) -> bool) -> Run {
    let root = tempfile::tempdir().unwrap();
    let tokens: Vec<String> = (0..20)
        .map(|i| {
            let invite = relay
                .invite(TEST_PARTNERSHIP, &format!("School {i}"), "member")
                .expect("a new school gets an invite");
            invite
                .split("token=")
                .nth(1)
                .expect("an invite carries a token")
                .to_string()
        })
        .collect();
    let token_file = root.path().join("tokens");
    std::fs::write(&token_file, tokens.join("\n")).unwrap();
    let mut load = Command::new(load_binary())
        .args(["--url", &relay.url(), "--tokens"])
        .arg(&token_file)
        .args([
            "--clients",
            "20",
            "--documents",
            "1000",
            "--subscribers",
            "2",
            "--edits",
            "5",
            "--idle-secs",
            "10",
            "--timeout-secs",
            "300",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the load tool starts");
    let started = Instant::now();
    let mut last_seen = None;
    while load.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the load tool took too long"
        );
        let said = health(relay);
        if seen(&said) {
            last_seen = Some(said);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut stdout = String::new();
    load.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    load.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("the load tool printed no report: {stdout} {stderr}"));
    assert_eq!(report["ok"], true, "{report}");
    Run {
        report,
        seen: last_seen,
    }
}

/// How many documents /health says are in memory and at rest.
fn documents_held(health: &str) -> Option<(u64, u64)> {
    let rest = health.split("documents: ").nth(1)?;
    let mut words = rest.split_whitespace();
    let in_memory = words.next()?.parse().ok()?;
    let at_rest = words.nth(2)?.trim_end_matches(',').parse().ok()?;
    Some((in_memory, at_rest))
}

#[test]
fn idle_documents_leave_the_relays_memory_while_their_schools_stay_connected() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &["--idle-unload", "2s"]);
    // While every school is connected and idle, every document rests.
    let run = twenty_schools_sync_and_idle(&relay, |said| {
        said.contains("documents: 0 in memory, 1000 at rest")
    });
    assert!(
        run.seen.is_some(),
        "the relay never had every document at rest while the schools idled: {}",
        health(&relay)
    );
    // The edits after the idle time woke the documents and reached the
    // other school of each.
    assert_eq!(run.report["edit"]["complete"], true, "{}", run.report);
    assert!(health(&relay).contains("at rest"));
}

/// With an idle time far longer than the run, the documents' memory bound
/// alone sends them to rest: a burst of schools syncing many documents
/// costs the bound, not every document they touched.
#[test]
fn past_its_memory_bound_the_relay_rests_documents_before_their_idle_time() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        &root.path().join("relay"),
        &["--idle-unload", "1h", "--document-memory-mb", "1"],
    );
    let run = twenty_schools_sync_and_idle(&relay, |said| {
        documents_held(said).is_some_and(|(_, at_rest)| at_rest >= 900)
    });
    let said = run
        .seen
        .unwrap_or_else(|| panic!("the relay kept its documents in memory: {}", health(&relay)));
    // A plan of a few KB is estimated at some 40 KB in memory: a
    // megabyte holds a few dozen.
    let (in_memory, _) = documents_held(&said).unwrap();
    assert!(in_memory <= 100, "{in_memory} documents in memory: {said}");
    assert_eq!(run.report["edit"]["complete"], true, "{}", run.report);
}
