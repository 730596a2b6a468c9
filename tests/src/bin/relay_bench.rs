//! `partnerplan-relay-bench`: our relay against the Node reference server
//! (tests/js/reference-server.mjs), in the same run, on what schools do
//! with official JS clients and with our own:
//!
//! - `live`: nine automerge-repo clients (tests/js/live-edit.mjs) edit
//!   one action plan at once, every 50 ms, 50 edits each;
//! - `join`: 1,000 small plans are seeded, the server restarts, and one
//!   JS client opens them all with `repo.find` (tests/js/cold-join.mjs);
//! - `memory`: 50 connected schools (partnerplan-load) sync 10,000
//!   plans, then stay connected and idle; the server's memory before and
//!   after;
//! - `edit`: our own synthetic schools' edit fan-out (partnerplan-load's
//!   edit phase), for the edit latency our clients see, with
//!   `--baseline-relay` as well to compare two builds of the relay.
//!
//! JS clients reach the server through the link shaper with a clear link
//! (tests/src/shaper.rs), which counts the bytes each way, WebSocket
//! framing included. CPU is user + system time from /proc, for the server
//! over the scenario and for the client process as it reports it. Every
//! server gets a fresh data directory and a random 127.0.0.1 port; runs
//! alternate (ours, reference, ours, ...). One JSON line per run goes to
//! `OUT/runs.jsonl`, and a table of medians with ratios to stdout.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use partnerplan_tests::js::js_dir;
use partnerplan_tests::process_mib;
use partnerplan_tests::shaper::{LinkShape, Shaper};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "partnerplan-relay-bench",
    about = "Our relay against the Node reference server with official JS clients and our own, on 127.0.0.1."
)]
struct Args {
    /// The relay program to measure.
    #[arg(long)]
    relay: PathBuf,
    /// Another relay program (an older build) for the `edit` scenario.
    #[arg(long)]
    baseline_relay: Option<PathBuf>,
    /// Where runs, logs and data go.
    #[arg(long)]
    out: PathBuf,
    /// Scenarios, comma-separated: live, join, memory, edit.
    #[arg(long, default_value = "live,join,memory,edit")]
    scenarios: String,
    /// Which servers to run: ours, node (and baseline, with
    /// --baseline-relay, in the edit scenario).
    #[arg(long, default_value = "ours,node,baseline")]
    servers: String,
    /// Runs of each scenario per server.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// live: clients, edits each, ms between a client's edits.
    #[arg(long, default_value_t = 9)]
    live_clients: usize,
    #[arg(long, default_value_t = 50)]
    live_edits: usize,
    #[arg(long, default_value_t = 50)]
    live_interval_ms: u64,
    /// join: documents, and rows in each plan.
    #[arg(long, default_value_t = 1000)]
    join_documents: usize,
    #[arg(long, default_value_t = 10)]
    join_rows: usize,
    /// memory: documents, connected schools, subscribers per document.
    #[arg(long, default_value_t = 10_000)]
    memory_documents: usize,
    #[arg(long, default_value_t = 50)]
    memory_clients: usize,
    #[arg(long, default_value_t = 1)]
    memory_subscribers: usize,
    /// memory: how long everyone stays idle, and our relay's --idle-unload.
    #[arg(long, default_value_t = 70)]
    memory_idle_secs: u64,
    #[arg(long, default_value = "1m")]
    memory_idle_unload: String,
    /// edit: partnerplan-load's workload.
    #[arg(long, default_value_t = 50)]
    edit_clients: usize,
    #[arg(long, default_value_t = 1000)]
    edit_documents: usize,
    #[arg(long, default_value_t = 60)]
    edit_edits: usize,
}

#[derive(Clone, Debug)]
enum Kind {
    Ours(PathBuf),
    Node,
}

struct Server {
    kind: Kind,
    child: Child,
    addr: SocketAddr,
    data: PathBuf,
}

fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out).expect("the output folder can be made");
    let scenarios: Vec<&str> = args.scenarios.split(',').map(str::trim).collect();
    let mut servers = vec![
        ("ours", Kind::Ours(args.relay.clone())),
        ("node", Kind::Node),
    ];
    let mut runs: Vec<Value> = Vec::new();
    let log = args.out.join("runs.jsonl");
    for scenario in &scenarios {
        if *scenario == "edit"
            && let Some(baseline) = &args.baseline_relay
        {
            servers.push(("baseline", Kind::Ours(baseline.clone())));
        }
        for repeat in 0..args.repeats {
            for (name, kind) in &servers {
                if (*name == "baseline" && *scenario != "edit")
                    || !args.servers.split(',').any(|s| s.trim() == *name)
                {
                    continue;
                }
                let dir = args.out.join(format!("{scenario}-{name}-{repeat}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                eprintln!("[bench] {scenario} on {name}, run {}", repeat + 1);
                let result = match *scenario {
                    "live" => live(&args, kind, &dir),
                    "join" => join(&args, kind, &dir),
                    "memory" => memory(&args, kind, &dir),
                    "edit" => edit(&args, kind, &dir),
                    other => Err(format!("no scenario called {other}")),
                };
                let mut run = match result {
                    Ok(value) => value,
                    Err(error) => json!({ "error": error }),
                };
                run["scenario"] = json!(scenario);
                run["server"] = json!(name);
                run["repeat"] = json!(repeat);
                eprintln!("[bench] {run}");
                let mut line = run.to_string();
                line.push('\n');
                append(&log, &line);
                runs.push(run);
            }
        }
    }
    print_table(&runs);
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the run log can be written");
    file.write_all(text.as_bytes()).unwrap();
}

// ---------------------------------------------------------------- servers

impl Server {
    fn start(kind: &Kind, data: &Path, extra: &[&str]) -> Result<Server, String> {
        std::fs::create_dir_all(data).map_err(|e| e.to_string())?;
        let mut command = match kind {
            Kind::Ours(relay) => {
                let mut c = Command::new(relay);
                c.args(["serve", "--listen", "127.0.0.1:0", "--data"])
                    .arg(data)
                    .args(extra)
                    .env("PARTNERPLAN_LOG", "warn");
                c
            }
            Kind::Node => {
                let mut c = Command::new("node");
                c.arg(js_dir().join("reference-server.mjs"))
                    .arg("0")
                    .arg(data);
                c
            }
        };
        let stderr =
            std::fs::File::create(data.with_extension("server.err")).map_err(|e| e.to_string())?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("the server did not start: {e}"))?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| "the server did not say where it listens".to_string())?;
        let addr = match kind {
            Kind::Ours(_) => line
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok()),
            Kind::Node => line
                .strip_prefix("listening ")
                .and_then(|port| format!("127.0.0.1:{}", port.trim()).parse().ok()),
        }
        .ok_or_else(|| format!("unexpected first line from the server: {line}"))?;
        Ok(Server {
            kind: kind.clone(),
            child,
            addr,
            data: data.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// SIGTERM, then a kill after 15 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Schools in one partnership, each with its token (ours only).
    fn schools(&self, count: usize) -> Result<Vec<String>, String> {
        let Kind::Ours(relay) = &self.kind else {
            return Ok(Vec::new());
        };
        let admin = |args: &[&str]| -> Result<String, String> {
            let output = Command::new(relay)
                .arg("--data")
                .arg(&self.data)
                .args(args)
                .output()
                .map_err(|e| e.to_string())?;
            if !output.status.success() {
                return Err(String::from_utf8_lossy(&output.stderr).into_owned());
            }
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        };
        let list: Value = serde_json::from_str(&admin(&["partnership", "list", "--json"])?)
            .map_err(|e| e.to_string())?;
        if !list
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["name"] == "Benchmark"))
        {
            admin(&["partnership", "create", "Benchmark"])?;
        }
        let url = self.url();
        (0..count)
            .map(|i| {
                let name = format!("School {}", uuid_like(i));
                let out = admin(&[
                    "school",
                    "add",
                    "--partnership",
                    "Benchmark",
                    &name,
                    "--role",
                    "member",
                    "--url",
                    &url,
                    "--json",
                ])?;
                let value: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
                value["token"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("no token in {out}"))
            })
            .collect()
    }
}

fn uuid_like(i: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{i}-{nanos:x}")
}

fn with_token(url: &str, token: Option<&String>) -> String {
    match token {
        Some(token) => format!("{url}/?token={token}"),
        None => url.to_string(),
    }
}

/// User + system CPU time of a process, in ms.
fn cpu_ms(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 here.
    (ticks(11) + ticks(12)) * 1000 / clock_ticks()
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Peak and current resident memory, in MiB.
fn memory_mib(pid: u32) -> Value {
    json!({
        "peak_rss_mib": process_mib(pid, "VmHWM:"),
        "rss_mib": process_mib(pid, "VmRSS:"),
    })
}

/// Runs a program to completion (bounded), returning the last JSON line it
/// printed; its stderr goes to `log`.
fn run_json(mut command: Command, log: &Path, limit: Duration) -> Result<Value, String> {
    let stderr = std::fs::File::create(log).map_err(|e| e.to_string())?;
    command.stdin(Stdio::null()).stderr(stderr);
    command.stdout(Stdio::piped());
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut buffer);
        buffer
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("gave up after {limit:?} (see {})", log.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap_or_default();
    let stdout = String::from_utf8_lossy(&stdout);
    let value: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("no JSON report (see {})", log.display()))?;
    if !status.success() || value.get("error").is_some() {
        return Err(format!("failed: {value} (see {})", log.display()));
    }
    Ok(value)
}

fn load_tool() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .with_file_name("partnerplan-load")
}

// -------------------------------------------------------------- scenarios

fn live(args: &Args, kind: &Kind, dir: &Path) -> Result<Value, String> {
    let server = Server::start(kind, &dir.join("data"), &[])?;
    let line = Shaper::start(server.addr, LinkShape::clear());
    let tokens = server.schools(args.live_clients)?;
    let urls: Vec<String> = match tokens.is_empty() {
        true => vec![line.url()],
        false => tokens
            .iter()
            .map(|t| with_token(&line.url(), Some(t)))
            .collect(),
    };
    let cpu_before = cpu_ms(server.pid());
    let mut node = Command::new("node");
    node.arg(js_dir().join("live-edit.mjs"))
        .arg(urls.join(","))
        .args(["--clients", &args.live_clients.to_string()])
        .args(["--edits", &args.live_edits.to_string()])
        .args(["--interval-ms", &args.live_interval_ms.to_string()])
        .args(["--timeout-ms", "600000"])
        .current_dir(js_dir());
    let report = run_json(node, &dir.join("client.log"), Duration::from_secs(620));
    let server_cpu = cpu_ms(server.pid()) - cpu_before;
    let memory = memory_mib(server.pid());
    let (up, down) = counts(&line);
    server.stop();
    let report = report?;
    Ok(json!({
        "converge_secs": report["converge_ms"].as_f64().map(|ms| ms / 1000.0),
        "latency_p50_ms": report["latency_ms"]["p50"],
        "latency_p95_ms": report["latency_ms"]["p95"],
        "wire_mb": (up + down) as f64 / 1e6,
        "wire_up_mb": up as f64 / 1e6,
        "wire_down_mb": down as f64 / 1e6,
        "messages": report["messages"]["sent"].as_u64().unwrap_or(0)
            + report["messages"]["received"].as_u64().unwrap_or(0),
        "server_cpu_secs": server_cpu as f64 / 1000.0,
        "client_cpu_secs": report["cpu_ms"].as_f64().map(|ms| ms / 1000.0),
        "server_peak_rss_mib": memory["peak_rss_mib"],
    }))
}

fn join(args: &Args, kind: &Kind, dir: &Path) -> Result<Value, String> {
    let data = dir.join("data");
    let server = Server::start(kind, &data, &[])?;
    let seeders = 10;
    let tokens = server.schools(seeders + 1)?;
    let ids = dir.join("ids");
    let mut seed = Command::new(load_tool());
    seed.args(["--url", &server.url(), "--clients", &seeders.to_string()])
        .args(["--documents", &args.join_documents.to_string()])
        .args(["--rows", &args.join_rows.to_string(), "--subscribers", "1"])
        .args([
            "--seed-only",
            "--json",
            "--timeout-secs",
            "600",
            "--ids-out",
        ])
        .arg(&ids);
    if !tokens.is_empty() {
        let file = dir.join("tokens");
        std::fs::write(&file, tokens[..seeders].join("\n")).map_err(|e| e.to_string())?;
        seed.arg("--tokens").arg(file);
    }
    let seeded = run_json(seed, &dir.join("seed.log"), Duration::from_secs(900));
    server.stop();
    let seeded = seeded?;
    // The restart: nothing of the seeding stays in memory.
    let server = Server::start(kind, &data, &[])?;
    let line = Shaper::start(server.addr, LinkShape::clear());
    let cpu_before = cpu_ms(server.pid());
    let mut node = Command::new("node");
    node.arg(js_dir().join("cold-join.mjs"))
        .arg(with_token(&line.url(), tokens.last()))
        .arg(&ids)
        .args(["--timeout-ms", "600000"])
        .current_dir(js_dir());
    let report = run_json(node, &dir.join("client.log"), Duration::from_secs(620));
    let server_cpu = cpu_ms(server.pid()) - cpu_before;
    let memory = memory_mib(server.pid());
    let (up, down) = counts(&line);
    server.stop();
    let report = report?;
    Ok(json!({
        "documents": report["found"],
        "doc_bytes": seeded["doc_bytes_avg"],
        "join_secs": report["secs"],
        "wire_mb": (up + down) as f64 / 1e6,
        "server_cpu_secs": server_cpu as f64 / 1000.0,
        "client_cpu_secs": report["cpu_ms"].as_f64().map(|ms| ms / 1000.0),
        "server_peak_rss_mib": memory["peak_rss_mib"],
    }))
}

fn memory(args: &Args, kind: &Kind, dir: &Path) -> Result<Value, String> {
    let extra = ["--idle-unload", args.memory_idle_unload.as_str()];
    let extra: &[&str] = match kind {
        Kind::Ours(_) => &extra,
        Kind::Node => &[],
    };
    let server = Server::start(kind, &dir.join("data"), extra)?;
    let tokens = server.schools(args.memory_clients)?;
    let mut load = Command::new(load_tool());
    load.args(["--url", &server.url()])
        .args(["--clients", &args.memory_clients.to_string()])
        .args(["--documents", &args.memory_documents.to_string()])
        .args(["--subscribers", &args.memory_subscribers.to_string()])
        .args([
            "--edits",
            "1",
            "--idle-secs",
            &args.memory_idle_secs.to_string(),
        ])
        .args(["--pid", &server.pid().to_string()])
        .args(["--json", "--timeout-secs", "1200"]);
    if !tokens.is_empty() {
        let file = dir.join("tokens");
        std::fs::write(&file, tokens.join("\n")).map_err(|e| e.to_string())?;
        load.arg("--tokens").arg(file);
    }
    let report = run_json(load, &dir.join("load.log"), Duration::from_secs(3600));
    let memory = memory_mib(server.pid());
    server.stop();
    let report = report?;
    let mib = |key: &str, field: &str| {
        report[key][field]
            .as_f64()
            .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
    };
    Ok(json!({
        "documents": args.memory_documents,
        "clients": args.memory_clients,
        "seed_docs_per_sec": report["seed"]["docs_per_sec"],
        "rss_before_idle_mib": mib("server_memory_before_idle", "vm_rss_kb"),
        "rss_after_idle_mib": mib("server_memory_after_idle", "vm_rss_kb"),
        "server_peak_rss_mib": memory["peak_rss_mib"],
        "edit_after_idle_p50_ms": report["edit"]["latency_ms"]["p50"],
    }))
}

fn edit(args: &Args, kind: &Kind, dir: &Path) -> Result<Value, String> {
    let server = Server::start(kind, &dir.join("data"), &[])?;
    let tokens = server.schools(args.edit_clients)?;
    let cpu_before = cpu_ms(server.pid());
    let mut load = Command::new(load_tool());
    load.args(["--url", &server.url()])
        .args(["--clients", &args.edit_clients.to_string()])
        .args(["--documents", &args.edit_documents.to_string()])
        .args(["--edits", &args.edit_edits.to_string()])
        .args(["--pid", &server.pid().to_string()])
        .args(["--json", "--timeout-secs", "600"]);
    if !tokens.is_empty() {
        let file = dir.join("tokens");
        std::fs::write(&file, tokens.join("\n")).map_err(|e| e.to_string())?;
        load.arg("--tokens").arg(file);
    }
    let report = run_json(load, &dir.join("load.log"), Duration::from_secs(1800));
    let server_cpu = cpu_ms(server.pid()) - cpu_before;
    server.stop();
    let report = report?;
    let e = &report["edit"];
    Ok(json!({
        "edits_per_sec": e["edits_per_sec"],
        "latency_p50_ms": e["latency_ms"]["p50"],
        "latency_p95_ms": e["latency_ms"]["p95"],
        "latency_p99_ms": e["latency_ms"]["p99"],
        "server_cpu_secs": server_cpu as f64 / 1000.0,
        "wire_mb": (report["traffic"]["bytes_in"].as_f64().unwrap_or(0.0)
            + report["traffic"]["bytes_out"].as_f64().unwrap_or(0.0)) / 1e6,
        "server_peak_rss_mib": report["server_memory"]["vm_hwm_kb"].as_f64().map(|kb| kb / 1024.0),
    }))
}

fn counts(line: &Shaper) -> (u64, u64) {
    use std::sync::atomic::Ordering;
    (
        line.counts().up.load(Ordering::Relaxed),
        line.counts().down.load(Ordering::Relaxed),
    )
}

// ------------------------------------------------------------------ table

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn print_table(runs: &[Value]) {
    let mut by: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for run in runs {
        let (Some(scenario), Some(server)) = (run["scenario"].as_str(), run["server"].as_str())
        else {
            continue;
        };
        let Some(fields) = run.as_object() else {
            continue;
        };
        let entry = by
            .entry((scenario.to_string(), server.to_string()))
            .or_default();
        for (key, value) in fields {
            if let Some(number) = value.as_f64() {
                entry.entry(key.clone()).or_default().push(number);
            }
        }
    }
    let scenarios: Vec<String> = {
        let mut s: Vec<String> = by.keys().map(|(s, _)| s.clone()).collect();
        s.dedup();
        s
    };
    for scenario in scenarios {
        println!("\n{scenario}: medians");
        println!(
            "| metric | ours | node | ours / node | baseline | ours / baseline |\n|---|---:|---:|---:|---:|---:|"
        );
        let get = |server: &str| by.get(&(scenario.clone(), server.to_string()));
        let Some(ours) = get("ours") else { continue };
        for (key, values) in ours {
            if key == "repeat" {
                continue;
            }
            let o = median(values.clone());
            let n = get("node")
                .and_then(|m| m.get(key))
                .and_then(|v| median(v.clone()));
            let b = get("baseline")
                .and_then(|m| m.get(key))
                .and_then(|v| median(v.clone()));
            let ratio = |x: Option<f64>| match (o, x) {
                (Some(o), Some(x)) if x != 0.0 => format!("{:.2}×", o / x),
                _ => String::new(),
            };
            let show = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.2}"));
            println!(
                "| {key} | {} | {} | {} | {} | {} |",
                show(o),
                show(n),
                ratio(n),
                show(b),
                ratio(b)
            );
        }
    }
}
