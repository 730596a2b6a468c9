//! `partnerplan-sync-bench`: what syncing costs a school on a rural line,
//! our client and relay against the official JS client and the Node
//! reference server, in one run. Every school reaches its server through
//! the link shaper (tests/src/shaper.rs: 300 ms each way, 256 kbit/s),
//! which counts the bytes each way, WebSocket framing and HTTP upgrade
//! included. See BENCHMARKS.md.
//!
//! - `offline`: the seed plan, K edits made offline at one school (a
//!   status change and a sentence appended to notes, in turn), then the
//!   reconnect: bytes on the line and time to converge, for our client and
//!   the JS client, each against our relay and the reference server,
//!   against the floor of the changes (tests/src/floor.rs).
//! - `shaped`: two schools on their own lines hold the plan; one sets an
//!   action's status N times, a few seconds apart: the time until the other
//!   sees each edit, and the bytes per edit on each line. Ours (the sync
//!   running in this process as the app runs it: the edit made in the
//!   store, the engine poked), and two JS clients, through our relay and
//!   through the reference server.
//! - `first-sync`: a school joins a partnership holding `--docs` documents
//!   of `--mb` MB in all; once over a clean line, once with the line cut
//!   when a quarter, a half and three quarters have arrived.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::{ActorId, ChangeHash};
use clap::Parser;
use partnerplan_client::sync::{Link, SyncOptions};
use partnerplan_model::{Author, edit};
use partnerplan_sync::engine::{EngineSender, Input};
use partnerplan_sync::{DocumentId, Store};
use partnerplan_tests::floor::Floor;
use partnerplan_tests::js::{ReferenceServer, js_dir};
use partnerplan_tests::shaper::{LinkShape, Shaper};
use partnerplan_tests::{RelayProcess, School, TEST_PARTNERSHIP, process_mib};
use rand::Rng;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
struct Args {
    /// offline, shaped, first-sync or all.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Offline edits before the reconnect.
    #[arg(long, default_value_t = 50)]
    k: usize,
    /// Live edits in the shaped-link scenario.
    #[arg(long, default_value_t = 10)]
    edits: usize,
    /// First sync: documents, and megabytes in all.
    #[arg(long, default_value_t = 40)]
    docs: usize,
    #[arg(long, default_value_t = 5.0)]
    mb: f64,
    /// The line: one-way latency (ms) and bandwidth (kbit/s).
    #[arg(long, default_value_t = 300)]
    latency_ms: u64,
    #[arg(long, default_value_t = 256)]
    kbit: u64,
    /// Where the servers and schools keep their files.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/action-plan-000.json")
}

fn main() {
    let args = Args::parse();
    let temp = tempfile::tempdir().unwrap();
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let mut report = serde_json::Map::new();
    let all = args.scenario == "all";
    if all || args.scenario == "offline" {
        report.insert("offline".into(), offline(&root.join("offline"), &args));
    }
    if all || args.scenario == "shaped" {
        report.insert("shaped".into(), shaped(&root.join("shaped"), &args));
    }
    if all || args.scenario == "first-sync" {
        report.insert("first_sync".into(), first_sync(&root.join("first"), &args));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(report)).unwrap()
    );
}

fn line(to: std::net::SocketAddr, args: &Args, seed: u64) -> Shaper {
    Shaper::start(to, LinkShape::rural(args.latency_ms, 0, args.kbit, seed))
}

/// A server of either kind, with a lead school (our client, directly
/// connected) that imported the seed plan into it.
enum Server {
    Ours(RelayProcess),
    Reference(ReferenceServer),
}

impl Server {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Server::Ours(relay) => relay.addr,
            Server::Reference(server) => server.addr,
        }
    }

    /// The server's peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let pid = match self {
            Server::Ours(relay) => relay.pid(),
            Server::Reference(server) => server.pid(),
        };
        process_mib(pid, "VmHWM:")
    }

    fn name(&self) -> &'static str {
        match self {
            Server::Ours(_) => "our relay",
            Server::Reference(_) => "reference server",
        }
    }

    /// A school of ours reaching this server through `line`.
    fn school(&self, root: &Path, name: &str, line: &Shaper) -> School {
        match self {
            Server::Ours(relay) => {
                let invite = relay
                    .invite_at(TEST_PARTNERSHIP, name, "member", &line.url())
                    .unwrap();
                School::join(root, name, &invite)
            }
            Server::Reference(_) => {
                let school = School::unjoined(root, name);
                school.ok(&["init", "--school", name, "--relay", &line.url()]);
                school
            }
        }
    }

    /// The URL a JS client connects to through `line`.
    fn js_url(&self, name: &str, line: &Shaper) -> String {
        match self {
            Server::Ours(relay) => relay
                .invite_at(TEST_PARTNERSHIP, name, "member", &line.url())
                .unwrap(),
            Server::Reference(_) => line.url(),
        }
    }
}

fn start_server(root: &Path, ours: bool) -> Server {
    if ours {
        Server::Ours(RelayProcess::start(&root.join("relay"), &[]))
    } else {
        Server::Reference(ReferenceServer::start(&root.join("reference")))
    }
}

/// The lead school, straight to the server, with the seed plan imported
/// and synced: (school, plan URL).
fn lead_with_plan(root: &Path, server: &Server) -> (School, String) {
    let school = match server {
        Server::Ours(relay) => School::init(root, "Lead School", relay),
        Server::Reference(reference) => {
            let school = School::unjoined(root, "Lead School");
            school.ok(&[
                "init",
                "--school",
                "Lead School",
                "--relay",
                &reference.url(),
            ]);
            school
        }
    };
    let out = school.ok(&[
        "--as",
        "Carole Clemens",
        "import",
        fixture().to_str().unwrap(),
    ]);
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("Action plan:"))
        .map(|u| u.trim().to_string())
        .unwrap();
    school.sync();
    (school, url)
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1000.0
}

// ------------------------------------------------------------- offline

fn offline(root: &Path, args: &Args) -> Value {
    let mut rows = Vec::new();
    for ours in [true, false] {
        let dir = root.join(if ours { "ours" } else { "reference" });
        let server = start_server(&dir, ours);
        let (lead, url) = lead_with_plan(&dir, &server);
        rows.push(offline_ours(&dir, &server, &url, args));
        rows.push(offline_js(&dir, &server, &lead, &url, args));
        // Over both clients' runs.
        let peak = server.peak_rss_mib();
        for row in rows.iter_mut().rev().take(2) {
            row["server_peak_rss_mib"] = json!(peak);
        }
    }
    for row in &rows {
        eprintln!("offline: {row}");
    }
    Value::Array(rows)
}

/// Our client: fetch the plan, reconnect with nothing to send, edit
/// offline, reconnect.
fn offline_ours(root: &Path, server: &Server, url: &str, args: &Args) -> Value {
    let line = line(server.addr(), args, 1);
    let school = server.school(root, "Our School", &line);
    if matches!(server, Server::Reference(_)) {
        school.ok(&["open", url]);
    }
    school.sync();
    let before = line.bytes();
    let idle_ms = timed(|| school.sync());
    let idle = line.bytes() - before;
    let heads = school.stored(url).expect("the school holds it").get_heads();
    let rows = school.action_ids(url);
    let statuses = ["amber", "green", "done", "red"];
    for i in 0..args.k {
        let row = &rows[i % rows.len()];
        if i % 2 == 0 {
            school.ok(&["put", url, "status", statuses[i / 2 % 4], "--row", row]);
        } else {
            let text = format!(" Checked with the head on visit {i}; evidence filed.");
            school.ok(&["type", url, "notes", "--row", row, "--append", &text]);
        }
    }
    let floor = Floor::since(&school.stored(url).expect("the school holds it"), &heads);
    let before = line.bytes();
    let ms = timed(|| school.sync());
    let bytes = line.bytes() - before;
    json!({
        "client": "ours", "server": server.name(), "k": args.k,
        "reconnect_bytes": bytes, "idle_reconnect_bytes": idle,
        "edit_bytes": bytes.saturating_sub(idle),
        "sync_command_ms": ms.round(), "idle_sync_command_ms": idle_ms.round(),
        "floor": floor.smallest(), "floor_parts": {"raw": floor.raw, "bundle": floor.bundle, "deflate": floor.deflate, "zstd": floor.zstd},
        "ratio_to_floor": bytes as f64 / floor.smallest() as f64,
        "edit_ratio_to_floor": bytes.saturating_sub(idle) as f64 / floor.smallest() as f64,
    })
}

/// The JS client: the same, in `bench.mjs offline`; the floor is taken
/// from the lead school once the edits reach it.
fn offline_js(root: &Path, server: &Server, lead: &School, url: &str, args: &Args) -> Value {
    let line = line(server.addr(), args, 2);
    let heads = {
        lead.sync();
        lead.stored(url).expect("the school holds it").get_heads()
    };
    let storage = root.join("js-storage");
    let (mut node, mut out) = js_bench(&[
        "offline",
        &server.js_url("JS School", &line),
        url,
        storage.to_str().unwrap(),
        &args.k.to_string(),
    ]);
    let before = line.bytes();
    writeln!(node.stdin.take().unwrap(), "go").unwrap();
    let synced: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    let _ = node.wait();
    let bytes = line.bytes() - before;
    lead.sync();
    let floor = Floor::since(&lead.stored(url).expect("the school holds it"), &heads);
    json!({
        "client": "js", "server": server.name(), "k": args.k,
        "reconnect_bytes": bytes, "converged_ms": synced["ms"],
        "floor": floor.smallest(), "changes": floor.changes,
        "ratio_to_floor": bytes as f64 / floor.smallest() as f64,
    })
}

/// Starts `node bench.mjs ARGS` and waits for it to say it is ready;
/// it then waits for "go" on its standard input, and prints one JSON
/// line of results on its standard output.
fn js_bench(
    args: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut node = Command::new("node")
        .arg(js_dir().join("bench.mjs"))
        .args(args)
        .current_dir(js_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts bench.mjs");
    let mut out = BufReader::new(node.stdout.take().unwrap()).lines();
    let ready: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    assert_eq!(ready["ready"], json!(true), "{ready}");
    (node, out)
}

// -------------------------------------------------------------- shaped

fn shaped(root: &Path, args: &Args) -> Value {
    let mut rows = vec![shaped_ours(&root.join("ours"), args)];
    for ours in [true, false] {
        let dir = root.join(if ours { "js-ours" } else { "js-reference" });
        let server = start_server(&dir, ours);
        let (_lead, url) = lead_with_plan(&dir, &server);
        let (a, b) = (line(server.addr(), args, 3), line(server.addr(), args, 4));
        let (url_a, url_b) = (server.js_url("JS A", &a), server.js_url("JS B", &b));
        let (mut node, mut out) = js_bench(&[
            "pair",
            &url_a,
            &url_b,
            &url,
            &args.edits.to_string(),
            "3000",
        ]);
        let settle = (a.bytes(), b.bytes());
        writeln!(node.stdin.take().unwrap(), "go").unwrap();
        let result: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
        let _ = node.wait();
        let mut latencies: Vec<f64> = result["latencies"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let per_edit = |bytes: u64| bytes as f64 / args.edits as f64;
        rows.push(json!({
            "clients": "js", "server": server.name(),
            "latency_ms": summary(&mut latencies),
            "bytes_per_edit": [per_edit(a.bytes() - settle.0), per_edit(b.bytes() - settle.1)],
            "server_peak_rss_mib": server.peak_rss_mib(),
        }));
    }
    for row in &rows {
        eprintln!("shaped: {row}");
    }
    Value::Array(rows)
}

/// Two of our schools, their syncs running in this process as the app
/// runs them: an edit goes into A's store and A's engine is poked; B's
/// sync tells when a change is saved.
fn shaped_ours(root: &Path, args: &Args) -> Value {
    let server = start_server(root, true);
    let (lead, url) = lead_with_plan(root, &server);
    let id = DocumentId::parse_url_or_id(&url).unwrap();
    let (line_a, line_b) = (line(server.addr(), args, 5), line(server.addr(), args, 6));
    let a = server.school(root, "School A", &line_a);
    let b = server.school(root, "School B", &line_b);
    let rows = lead.action_ids(&url);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let arrived: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut engines = Vec::new();
    for (school, listen) in [(&a, false), (&b, true)] {
        let (engine_tx, engine_rx) = tokio::sync::watch::channel::<Option<EngineSender>>(None);
        let arrived = arrived.clone();
        let link = Link {
            engine: engine_tx,
            changed: Box::new(move |documents| {
                if listen && documents.contains(&id) {
                    arrived.lock().unwrap().push(Instant::now());
                }
            }),
        };
        let dir = school.dir.clone();
        let mut stop = stop_rx.clone();
        runtime.spawn(async move {
            let options = SyncOptions {
                watch: true,
                timeout: Duration::from_secs(60),
                on_receiving: None,
            };
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let _ = partnerplan_client::sync::run_linked(&dir, options, stopped, Some(link)).await;
        });
        engines.push(engine_rx);
    }
    // Both hold the plan, and everything settles.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(has(&a, &id) && has(&b, &id)) {
        assert!(
            Instant::now() < deadline,
            "the schools did not get the plan"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let engine_a = engines[0].borrow().clone().expect("A's sync runs");
    let who = Author {
        school: "School A".into(),
        person: None,
        time: 1_700_000_000,
    };
    let actor = ActorId::random();
    let mut store_a = Store::open(a.dir.join("school.sqlite")).unwrap();
    let (start_a, start_b) = (line_a.bytes(), line_b.bytes());
    let mut latencies = Vec::new();
    let mut change_bytes = 0;
    for i in 0..args.edits {
        let row = &rows[i % rows.len()];
        let status = ["amber", "green", "done", "red"][i % 4];
        let heads: Vec<ChangeHash> = store_a.load_document(&id).unwrap().unwrap().get_heads();
        let seen = arrived.lock().unwrap().len();
        let started = Instant::now();
        store_a
            .change(&id, &actor, None, |d| {
                edit::set_field(d, Some(row), "status", status, &who).map_err(Error::from)
            })
            .unwrap();
        engine_a.send(Input::Poke);
        let deadline = Instant::now() + Duration::from_secs(60);
        let at = loop {
            if let Some(at) = arrived.lock().unwrap().get(seen) {
                break *at;
            }
            assert!(Instant::now() < deadline, "edit {i} did not arrive");
            std::thread::sleep(Duration::from_millis(2));
        };
        latencies.push(at.duration_since(started).as_secs_f64() * 1000.0);
        change_bytes += Floor::since(&store_a.load_document(&id).unwrap().unwrap(), &heads).raw;
        std::thread::sleep(Duration::from_secs(3));
    }
    let per_edit = |bytes: u64| bytes as f64 / args.edits as f64;
    let result = json!({
        "clients": "ours", "server": "our relay",
        "latency_ms": summary(&mut latencies),
        "bytes_per_edit": [per_edit(line_a.bytes() - start_a), per_edit(line_b.bytes() - start_b)],
        "change_bytes": change_bytes as f64 / args.edits as f64,
        "server_peak_rss_mib": server.peak_rss_mib(),
    });
    let _ = stop_tx.send(true);
    runtime.shutdown_timeout(Duration::from_secs(10));
    result
}

fn has(school: &School, id: &DocumentId) -> bool {
    Store::open(school.dir.join("school.sqlite"))
        .ok()
        .and_then(|s| s.load_document(id).ok().flatten())
        .is_some()
}

fn summary(values: &mut [f64]) -> Value {
    if values.is_empty() {
        return json!(null);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize].round();
    json!({"median": at(0.5), "p95": at(0.95), "max": at(1.0), "n": values.len()})
}

// ---------------------------------------------------------- first sync

fn first_sync(root: &Path, args: &Args) -> Value {
    let relay = RelayProcess::start(&root.join("relay"), &[]);
    let lead = School::init(root, "Lead School", &relay);
    let chars = (args.mb * 1e6 / args.docs as f64) as usize;
    let mut rng = rand::rng();
    for i in 0..args.docs {
        let url = lead.create(&format!("Evidence folder {i}"));
        // Random letters and digits: about 6 bits each once compressed.
        let text: String = (0..chars * 4 / 3)
            .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
            .collect();
        // One argument may hold at most 128 KiB on Linux: a larger
        // document's text goes in several fields.
        let parts: Vec<&str> = text
            .as_bytes()
            .chunks(100_000)
            .map(|part| std::str::from_utf8(part).expect("ASCII"))
            .collect();
        for (n, part) in parts.iter().enumerate() {
            let field = if n == 0 {
                "evidence".to_string()
            } else {
                format!("evidence_{n}")
            };
            lead.ok(&["set", &url, &field, &format!("\"{part}\"")]);
        }
    }
    lead.sync();
    let mut rows = Vec::new();
    for cuts in [false, true] {
        let line = line(relay.addr, args, 7 + cuts as u64);
        let name = if cuts { "Cut School" } else { "Clean School" };
        let invite = relay
            .invite_at(TEST_PARTNERSHIP, name, "member", &line.url())
            .unwrap();
        let school = School::join(root, name, &invite);
        let started = Instant::now();
        let mut sync = school
            .command(&["sync", "--timeout", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut cut_at = vec![3 * args.docs / 4, args.docs / 2, args.docs / 4];
        let mut total = 0;
        let status = loop {
            if let Some(status) = sync.try_wait().unwrap() {
                break status;
            }
            let status: Value = serde_json::from_str(&school.ok(&["status", "--json"])).unwrap();
            if let Some(receiving) = status.get("receiving").filter(|r| !r.is_null()) {
                total = receiving["bytes"].as_u64().unwrap_or(0);
                let done = receiving["documents_done"].as_u64().unwrap_or(0) as usize;
                if cuts && cut_at.last().is_some_and(|&at| done >= at) {
                    cut_at.pop();
                    line.cut_all();
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let seconds = started.elapsed().as_secs_f64();
        let down = line.counts().down.load(Ordering::Relaxed);
        let ideal = total as f64 * 8.0 / (args.kbit as f64 * 1000.0);
        let row = json!({
            "cuts": line.counts().cuts.load(Ordering::Relaxed), "ok": status.success(),
            "seconds": (seconds * 10.0).round() / 10.0,
            "documents_bytes": total, "bytes_down": down,
            "down_to_documents": down as f64 / total.max(1) as f64,
            "seconds_at_line_rate": (ideal * 10.0).round() / 10.0,
        });
        eprintln!("first sync: {row}");
        rows.push(row);
    }
    Value::Array(rows)
}
