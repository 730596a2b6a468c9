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

/// Twenty schools, each connected throughout, sync 1,000 plans of a few
/// KB (each shared by two of them); then nobody touches anything for a
/// while, past the relay's idle time; then every school edits.
#[test]
fn idle_documents_leave_the_relays_memory_while_their_schools_stay_connected() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &["--idle-unload", "2s"]);
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

    // While every school is connected and idle, every document rests.
    let started = Instant::now();
    let mut seen = None;
    while load.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the load tool took too long"
        );
        let said = health(&relay);
        if said.contains("documents: 0 in memory, 1000 at rest") {
            seen = Some(said);
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
    assert!(
        seen.is_some(),
        "the relay never had every document at rest while the schools idled: {}",
        health(&relay)
    );
    // The edits after the idle time woke the documents and reached the
    // other school of each.
    assert_eq!(report["edit"]["complete"], true, "{report}");
    assert!(health(&relay).contains("at rest"));
}
