//! `partnerplan-la-bench`: a local authority at county scale (seed 003:
//! 58 action plans from 436 schools). A relay holds 58 partnerships of 2
//! to 50 schools (436 in all), about 600 documents written by each
//! partnership's lead school; the local authority, a viewer of all 58
//! with one token, starts its app for the first time. Measured: how long
//! until every document is on its computer, what the sync indicator says
//! meanwhile (read from the app's own live channel, as the page shows
//! it), and how long the overview and the other pages take to render.
//! See BENCHMARKS.md ("A local authority at county scale").
//!
//!   cargo build --release -p partnerplan-tests
//!   ./target/release/partnerplan-la-bench [--renders 20]
//!
//! It runs the relay and client programs built beside it (`partnerplan`
//! and `partnerplan-relay`, or the tests' copies of them).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use partnerplan_relay::directory::{Directory, Role};

const PARTNERSHIPS: usize = 58;
const SCHOOLS: usize = 436;
const LA: &str = "Kent County Council";
const DISTRICTS: [&str; 12] = [
    "Ashford",
    "Canterbury",
    "Dartford",
    "Dover",
    "Gravesham",
    "Maidstone",
    "Sevenoaks",
    "Shepway",
    "Swale",
    "Thanet",
    "Tonbridge & Malling",
    "Tunbridge Wells",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let renders: usize = match (args.next().as_deref(), args.next()) {
        (Some("--renders"), Some(n)) => n.parse().expect("--renders takes a number"),
        _ => 20,
    };
    let root = tempfile::tempdir().expect("a temporary folder");
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("the bench knows where it is");
    let program = |names: &[&str]| -> PathBuf {
        names
            .iter()
            .map(|n| bin.join(n))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("build {names:?} beside this program first"))
    };
    let client = program(&["partnerplan", "e2e-partnerplan"]);
    let relay_program = program(&["partnerplan-relay", "e2e-partnerplan-relay"]);

    let sizes = sizes();
    assert_eq!(sizes.len(), PARTNERSHIPS);
    assert_eq!(sizes.iter().sum::<usize>(), SCHOOLS);
    println!(
        "{PARTNERSHIPS} partnerships of {} to {} schools, {SCHOOLS} schools",
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap()
    );

    // The relay, and its register: every school of every partnership, and
    // the local authority as a viewer of all of them with one token.
    let data = root.path().join("relay");
    let relay = Relay::start(&relay_program, &data);
    let url = relay.url.clone();
    let mut directory = Directory::open(&data).expect("the relay's register opens");
    let mut leads = Vec::new();
    let mut la_invite = None;
    for (p, size) in sizes.iter().enumerate() {
        let name = partnership_name(p);
        directory.create_partnership(&name).unwrap();
        for s in 0..*size {
            let school = format!("{name} school {}", s + 1);
            let (invite, _, _) = directory
                .add_school(&name, &school, Role::Member, &url)
                .unwrap();
            if s == 0 {
                leads.push((school, invite.unwrap().line()));
            }
        }
        let (invite, _, _) = directory.add_school(&name, LA, Role::Viewer, &url).unwrap();
        la_invite = la_invite.or(invite.map(|i| i.line()));
    }
    drop(directory);

    // Each lead school writes its partnership's documents and shares them.
    let setup = Instant::now();
    let mut documents = 0;
    for (p, (lead, invite)) in leads.iter().enumerate() {
        let dir = root.path().join(format!("lead-{p}"));
        run(&client, &dir, &["join", invite, "--school", lead]);
        let file = root.path().join(format!("partnership-{p}.json"));
        let (text, count) = documents_file(p, sizes[p]);
        std::fs::write(&file, text).unwrap();
        let out = run(
            &client,
            &dir,
            &["--as", "Lead headteacher", "import", file.to_str().unwrap()],
        );
        documents += count;
        if let Some(plan) = out
            .lines()
            .find(|l| l.contains("2012-2013"))
            .and_then(|l| l.strip_prefix("Partnership action plan: "))
            .and_then(|l| l.split_whitespace().next())
        {
            run(
                &client,
                &dir,
                &[
                    "review",
                    "record",
                    plan,
                    "--date",
                    "11 March 2013",
                    "--by",
                    "the headteachers",
                    "--sign",
                    &format!("; headteacher; {lead}"),
                ],
            );
        }
        run(&client, &dir, &["sync", "--timeout", "120"]);
    }
    println!(
        "{documents} documents written and shared by the lead schools in {:.1} s (setup, not measured)",
        setup.elapsed().as_secs_f64()
    );

    // The local authority's first start: join, then the app.
    let la = root.path().join("la");
    run(
        &client,
        &la,
        &["join", &la_invite.expect("an invite"), "--school", LA],
    );
    let started = Instant::now();
    let mut app = App::start(&client, &la);
    println!(
        "the app answered {:.2} s after it was started",
        started.elapsed().as_secs_f64()
    );
    let indicator = app.indicator();
    let mut said: Vec<(f64, String)> = Vec::new();
    let joined = loop {
        let (at, text) = indicator
            .recv_timeout(Duration::from_secs(300))
            .expect("the sync indicator keeps talking");
        let at = at.duration_since(started).as_secs_f64();
        if said.last().is_none_or(|(_, last)| *last != text) {
            said.push((at, text.clone()));
        }
        if text.starts_with("Shared with partners at") {
            break at;
        }
    };
    let receiving: Vec<&(f64, String)> = said
        .iter()
        .filter(|(_, t)| t.starts_with("Receiving"))
        .collect();
    println!("what the sync indicator said (seconds after the app started):");
    let step = (receiving.len() / 12).max(1);
    for (i, (at, text)) in said.iter().enumerate() {
        let is_receiving = text.starts_with("Receiving");
        if !is_receiving || i % step == 0 || i + 1 == said.len() {
            println!("  {at:7.2} s  {text}");
        }
    }
    println!(
        "first join: every document on the local authority's computer {joined:.2} s after its app started ({} progress messages)",
        receiving.len()
    );

    // The overview: its first render after the join, then warm ones.
    for (path, name) in [
        ("/", "the overview (home page)"),
        ("/county?term=Spring+2013", "the county table"),
        ("/outcomes", "the outcomes"),
        ("/funding", "the funding"),
        ("/documents", "every document (a list)"),
    ] {
        let (first, size, body) = app.get(path);
        assert!(
            path != "/"
                || body.contains(&format!(
                    "{PARTNERSHIPS} partnerships with {SCHOOLS} member schools listed"
                )),
            "the overview lists every partnership: {}",
            &body[..body.len().min(2000)]
        );
        let mut times: Vec<Duration> = (0..renders).map(|_| app.get(path).0).collect();
        times.sort();
        println!(
            "{name:<28} first {:7.1} ms, then median {:7.1} ms, max {:7.1} ms over {renders}; {} KB",
            ms(first),
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            size / 1024
        );
    }
    app.stop();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn partnership_name(p: usize) -> String {
    format!("{} collaborative {}", DISTRICTS[p % DISTRICTS.len()], p + 1)
}

/// 58 sizes from 2 to 50 that add up to 436: one alliance of 50, one of
/// 30, the rest from 2 to 12, as the seed papers' groups are.
fn sizes() -> Vec<usize> {
    let mut sizes = vec![50, 30];
    sizes.extend((0..PARTNERSHIPS - 2).map(|i| 2 + (i * 7) % 11));
    let mut i = 2;
    while sizes.iter().sum::<usize>() != SCHOOLS {
        let total: usize = sizes.iter().sum();
        if total < SCHOOLS && sizes[i] < 12 {
            sizes[i] += 1;
        } else if total > SCHOOLS && sizes[i] > 2 {
            sizes[i] -= 1;
        }
        i = 2 + (i - 1) % (PARTNERSHIPS - 2);
    }
    sizes
}

/// One partnership's documents, as a lead school imports them: its
/// partnership document, an action plan, three termly progress reports,
/// last year's plan, outcomes for its schools, and the principles,
/// memorandum and two audits: eleven documents (eight where no report was
/// sent), with words about as long as the seeds'.
fn documents_file(p: usize, size: usize) -> (String, usize) {
    let name = partnership_name(p);
    let schools: Vec<serde_json::Value> = (0..size)
        .map(
            |s| serde_json::json!({"name": format!("{name} school {}", s + 1), "phase": "primary"}),
        )
        .collect();
    let statuses = ["red", "amber", "green", "done", "green", "amber"];
    let areas: Vec<serde_json::Value> = ["Teaching and learning", "Moderation", "CPD", "Governors", "Parents"]
        .iter()
        .enumerate()
        .map(|(a, area)| serde_json::json!({
            "name": area,
            "keyObjectives": format!("Improve {area} across the {size} schools of the partnership, sharing what works."),
            "outcome": "Pupils make better progress; staff share practice; governors hold the partnership to account.",
            "actions": (0..4).map(|i| serde_json::json!({
                "what": format!("Action {} of {area}: joint work between the schools, with a named lead and a date.", i + 1),
                "status": statuses[(p + a + i) % statuses.len()],
                "reviewDate": (["Autumn 2012", "Spring 2013", "Summer 2013", "Autumn 2013"][(a + i) % 4]),
                "responsibility.person": "Lead headteacher",
            })).collect::<Vec<_>>(),
        }))
        .collect();
    let development = "Continued work on the key priorities, particularly in the context of identified vulnerable groups.\nFurther development of mini groups to enable members to get to know each others schools better.\nJoint commissioning of external providers to provide cross school training.";
    let reports: Vec<serde_json::Value> = ["Autumn 2012", "Spring 2013", "Summer 2013"]
        .iter()
        .filter(|_| p % 7 != 3) // some partnerships have sent no report
        .map(|term| {
            serde_json::json!({
                "kind": "progress-report",
                "title": format!("Progress report, {term}"),
                "fields": {
                    "period": term, "collaborative": name, "leadSchool": format!("{name} school 1"),
                    "activity": "Joint INSET day, learning walks, moderation of writing.",
                    "progress": "Good progress against priorities 1 and 2; priority 3 started.",
                    "strengths": "Headteachers trust each other and share data openly.",
                    "development": development,
                }
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = (0..size)
        .flat_map(|s| {
            let school = format!("{name} school {}", s + 1);
            ["Level 4+ R, W & M", "Level 5+ R, W & M"]
                .iter()
                .enumerate()
                .map(move |(m, measure)| serde_json::json!({
                    "school": school, "year": 2014, "keyStage": "KS2", "inPartnership": "in",
                    "pupils": 15 + (s * 3) % 20, "measure": measure, "percent": ([78.3, 23.3][m]),
                }))
        })
        .collect();
    let mut documents = vec![
        serde_json::json!({
            "kind": "partnership", "title": name,
            "fields": {
                "partnershipKind": "collaborative", "district": DISTRICTS[p % DISTRICTS.len()],
                "localAuthority": LA, "leadSchools": format!("{name} school 1"),
                "budgetHolder": format!("{name} school 1"), "funding": 20_000 + 1_000 * size,
            },
            "tables": {"schools": schools},
        }),
        serde_json::json!({
            "kind": "action-plan", "title": format!("{name} action plan 2012-2013"),
            "fields": {"period": "2012-2013", "overridingObjective": "Every pupil makes good progress in reading, writing and maths."},
            "tables": {"areas": areas},
        }),
        serde_json::json!({
            "kind": "action-plan", "title": format!("{name} action plan 2011-2012"),
            "fields": {"period": "2011-2012", "overridingObjective": "Last year's plan, kept."},
            "tables": {"areas": [{"name": "Reading", "actions": [{"what": "Reading buddies", "status": "done"}]}]},
        }),
        serde_json::json!({"kind": "outcomes", "title": format!("{name} outcomes 2014"), "tables": {"results": results}}),
        serde_json::json!({"kind": "principles", "title": "Principles", "tables": {"principles": [{"text": "Shared goals"}, {"text": "Openness with policies and resources"}]}}),
        serde_json::json!({"kind": "memorandum", "title": "Memorandum of understanding", "fields": {"term": "Two years", "noticePeriod": "One term"}}),
        serde_json::json!({"kind": "aims-audit", "title": "Partnership aims audit"}),
        serde_json::json!({"kind": "partnership-audit", "title": "Partnership audit"}),
    ];
    documents.extend(reports);
    let count = documents.len();
    let file = serde_json::json!({"format": "partnerplan-documents", "version": 1, "documents": documents});
    (file.to_string(), count)
}

/// Runs the client program for the school in `dir`; its stdout.
fn run(client: &Path, dir: &Path, args: &[&str]) -> String {
    let output = Command::new(client)
        .arg("--data")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the client program runs");
    assert!(
        output.status.success(),
        "partnerplan {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Relay {
    child: Child,
    url: String,
}

impl Relay {
    fn start(program: &Path, data: &Path) -> Relay {
        let mut child = Command::new(program)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .env("PARTNERPLAN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the relay starts");
        // Read all it says, so it never writes into a closed pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split_whitespace().find(|w| w.starts_with("ws://")) {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay says where it listens");
        Relay { child, url }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct App {
    child: Child,
    host: String,
}

impl App {
    fn start(client: &Path, dir: &Path) -> App {
        let mut child = Command::new(client)
            .arg("--data")
            .arg(dir)
            .args(["app", "--listen", "127.0.0.1:0", "--no-browser"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the app starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split(" at ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the app says where it listens");
        App {
            child,
            host: url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// Each sentence of the sync indicator, with when it came, from the
    /// app's live channel (`/events`), as the page hears it.
    fn indicator(&self) -> mpsc::Receiver<(Instant, String)> {
        let (tx, rx) = mpsc::channel();
        let mut stream = TcpStream::connect(&self.host).unwrap();
        write!(
            stream,
            "GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.host
        )
        .unwrap();
        std::thread::spawn(move || {
            let mut event = String::new();
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_string();
                } else if let Some(data) = line.strip_prefix("data: ")
                    && event == "sync"
                {
                    let text = strip_tags(data);
                    if tx.send((Instant::now(), text)).is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }

    /// GET `path`: how long until the whole page arrived, its size, and it.
    fn get(&self, path: &str) -> (Duration, usize, String) {
        let start = Instant::now();
        let mut stream = TcpStream::connect(&self.host).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host
        )
        .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let took = start.elapsed();
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "{path}: {}",
            &text[..text.len().min(300)]
        );
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (took, body.len(), body)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in html.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
