//! What the end-to-end tests share: running the real relay and client
//! programs as processes on 127.0.0.1, and bounded waits.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod app;
pub mod attack;
pub mod floor;
pub mod js;
pub mod shaper;

/// The longest any single command in a test may take.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(90);

pub fn relay_binary() -> PathBuf {
    built_binary("e2e-partnerplan-relay")
}

pub fn client_binary() -> PathBuf {
    built_binary("e2e-partnerplan")
}

/// `partnerplan-load`, the load generator (tests/src/bin/load.rs).
pub fn load_binary() -> PathBuf {
    built_binary("partnerplan-load")
}

/// This crate's binaries sit in the target directory, one level above the
/// test executable (`target/<profile>/deps/<test>`), or beside a benchmark
/// program of this crate (`target/<profile>/<bench>`). Cargo builds them
/// before it runs the integration tests.
fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows where it runs from");
    let beside = exe.with_file_name(name);
    if beside.exists() {
        return beside;
    }
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first",
        path.display()
    );
    path
}

/// Polls `check` every 50 ms until it holds, failing the test with `what`
/// after `limit`.
/// A memory figure of a running process from `/proc/PID/status`
/// (`VmHWM:` is its peak resident set, `VmRSS:` what it holds now), in
/// MiB to a tenth; `None` once it has gone.
pub fn process_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > limit {
            panic!("gave up after {limit:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion, killing it if it outlives `limit`.
pub fn run_bounded(mut command: Command, limit: Duration) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the program starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A relay process with its own data directory.
pub struct RelayProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The admin pages' own listener (on a random port of 127.0.0.1,
    /// unless `extra` names one).
    pub admin: SocketAddr,
    /// Serving wss://.
    pub secure: bool,
    pub data: PathBuf,
    extra: Vec<String>,
}

impl RelayProcess {
    /// Starts a relay on a random port of 127.0.0.1.
    pub fn start(data: &Path, extra: &[&str]) -> RelayProcess {
        Self::start_at(data, "127.0.0.1:0".parse().unwrap(), extra)
    }

    pub fn start_at(data: &Path, listen: SocketAddr, extra: &[&str]) -> RelayProcess {
        Self::spawn(data, listen, extra, None)
    }

    /// Starts a relay logging everything (`trace`) into `log`.
    pub fn start_logging(data: &Path, extra: &[&str], log: &Path) -> RelayProcess {
        Self::spawn(data, "127.0.0.1:0".parse().unwrap(), extra, Some(log))
    }

    fn spawn(data: &Path, listen: SocketAddr, extra: &[&str], log: Option<&Path>) -> RelayProcess {
        let mut command = Command::new(relay_binary());
        command
            .arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data")
            .arg(data)
            .args(extra);
        if !extra.contains(&"--admin-listen") {
            command.args(["--admin-listen", "127.0.0.1:0"]);
        }
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        match log {
            Some(log) => command
                .env("PARTNERPLAN_LOG", "trace")
                .stderr(std::fs::File::create(log).expect("the log file can be created")),
            None => command
                .env("PARTNERPLAN_LOG", "warn")
                .stderr(Stdio::inherit()),
        };
        let mut child = command.spawn().expect("the relay starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay says where it listens within 30 seconds");
        let secure = line.contains("wss://");
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("the relay's first line names its address: {line}"));
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay says where its admin pages are");
        let admin = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.strip_suffix("/admin"))
            .and_then(|admin| admin.parse().ok())
            .unwrap_or_else(|| panic!("the relay's second line names its admin pages: {line}"));
        RelayProcess {
            child: Some(child),
            addr,
            admin,
            secure,
            data: data.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The relay's process id, to watch its memory.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the relay is running").id()
    }

    pub fn url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// Runs an admin command (`partnership …`, `school …`, `token …`)
    /// against this relay's data directory, as the lead school would.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut command = Command::new(relay_binary());
        command.arg("--data").arg(&self.data).args(args);
        run_bounded(command, COMMAND_LIMIT)
    }

    /// An admin command that must succeed; returns its stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let output = self.admin(args);
        assert!(
            output.status.success(),
            "partnerplan-relay {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Creates a partnership if it does not exist yet.
    pub fn partnership(&self, name: &str) {
        let list = self.admin_ok(&["partnership", "list", "--json"]);
        let list: Value = serde_json::from_str(&list).expect("JSON");
        if !list.as_array().unwrap().iter().any(|p| p["name"] == name) {
            self.admin_ok(&["partnership", "create", name]);
        }
    }

    /// Adds a school to a partnership and returns its invite line (or
    /// `None` if the school already had a token).
    pub fn invite(&self, partnership: &str, school: &str, role: &str) -> Option<String> {
        self.invite_at(partnership, school, role, &self.url())
    }

    /// An invite that names `url` as the relay's address: a school that
    /// reaches the relay through a [`shaper::Shaper`].
    pub fn invite_at(
        &self,
        partnership: &str,
        school: &str,
        role: &str,
        url: &str,
    ) -> Option<String> {
        self.partnership(partnership);
        let out = self.admin_ok(&[
            "school",
            "add",
            "--partnership",
            partnership,
            school,
            "--role",
            role,
            "--url",
            url,
            "--json",
        ]);
        let json: Value = serde_json::from_str(&out).expect("school add --json prints JSON");
        json["invite"].as_str().map(str::to_string)
    }

    /// Stops the relay with SIGTERM, as an operator would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let start = Instant::now();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(
                        status.success(),
                        "the relay exits cleanly on SIGTERM: {status}"
                    );
                    break;
                }
                if start.elapsed() > Duration::from_secs(15) {
                    let _ = child.kill();
                    panic!("the relay did not stop within 15 seconds of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills the relay outright, as a power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the relay and starts it again on the same address and data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    fn try_start_at(data: &Path, addr: SocketAddr, extra: &[&str]) -> Option<RelayProcess> {
        std::panic::catch_unwind(|| RelayProcess::start_at(data, addr, extra)).ok()
    }

    pub fn start_again(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let started = retry_bind(|| RelayProcess::try_start_at(&self.data, self.addr, &extra));
        *self = started;
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }
}

fn retry_bind(mut start: impl FnMut() -> Option<RelayProcess>) -> RelayProcess {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(relay) = start() {
            return relay;
        }
        assert!(
            Instant::now() < deadline,
            "the relay could not listen on its old address again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One school: a data directory driven through the `partnerplan` program.
pub struct School {
    pub dir: PathBuf,
    pub name: String,
}

/// The partnership `School::init` puts schools in.
pub const TEST_PARTNERSHIP: &str = "Test Cluster";

impl School {
    /// A member school of the test partnership, joined with its invite.
    pub fn init(root: &Path, name: &str, relay: &RelayProcess) -> School {
        let invite = relay
            .invite(TEST_PARTNERSHIP, name, "member")
            .expect("a new school gets an invite");
        School::join(root, name, &invite)
    }

    /// A school set up from an invite line.
    pub fn join(root: &Path, name: &str, invite: &str) -> School {
        let school = School::unjoined(root, name);
        school.ok(&["join", invite, "--school", name]);
        school
    }

    /// A school set up with a relay address that nothing answers at, for
    /// tests that never sync.
    pub fn offline(root: &Path, name: &str) -> School {
        let school = School::unjoined(root, name);
        school.ok(&["init", "--school", name, "--relay", "ws://127.0.0.1:9"]);
        school
    }

    /// A school's data directory, not set up yet.
    pub fn unjoined(root: &Path, name: &str) -> School {
        School {
            dir: root.join(name.to_lowercase().replace(' ', "-")),
            name: name.to_string(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(client_binary());
        command.arg("--data").arg(&self.dir).args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_bounded(self.command(args), COMMAND_LIMIT)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{} {:?} failed: {}{}",
            self.name,
            args,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command that must fail; returns what it said on stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "{} {:?} should have failed but said: {}",
            self.name,
            args,
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    pub fn create(&self, title: &str) -> String {
        self.ok(&["create", "--title", title]).trim().to_string()
    }

    pub fn sync(&self) {
        self.ok(&["sync", "--timeout", "60"]);
    }

    /// The document as this school stores it, read from its database
    /// (`None` if it has not arrived).
    pub fn stored(&self, url: &str) -> Option<automerge::Automerge> {
        let store = partnerplan_sync::Store::open(self.dir.join("school.sqlite"))
            .expect("the school's database opens");
        let id = partnerplan_sync::DocumentId::parse_url_or_id(url).expect("a document URL");
        store
            .load_document(&id)
            .expect("the school's database reads")
    }

    /// The ids of an action plan's action rows, as `view --json` gives them.
    pub fn action_ids(&self, url: &str) -> Vec<String> {
        let plan: Value = serde_json::from_str(&self.ok(&["view", url, "--json"]))
            .expect("view --json prints JSON");
        plan["areas"]
            .as_array()
            .expect("a plan has areas")
            .iter()
            .flat_map(|area| area["actions"].as_array().cloned().unwrap_or_default())
            .map(|action| {
                action["id"]
                    .as_str()
                    .expect("an action has an id")
                    .to_string()
            })
            .collect()
    }

    /// A new action plan with one review recorded (11 July 2017, by the
    /// HTs), not yet signed: the plan's URL and the review's id.
    pub fn plan_with_review(&self) -> (String, String) {
        let plan = self
            .ok(&["new", "action-plan", "--title", "Plan"])
            .trim()
            .to_string();
        let review = self
            .ok(&[
                "review",
                "record",
                &plan,
                "--date",
                "11 July 2017",
                "--by",
                "the HTs",
            ])
            .trim()
            .to_string();
        (plan, review)
    }

    /// The document as this school holds it (`show --json`).
    pub fn show(&self, url: &str) -> Value {
        let out = self.ok(&["show", url, "--json"]);
        serde_json::from_str::<Value>(&out).expect("show --json prints JSON")["document"].clone()
    }

    /// Whether this school holds the document at all.
    pub fn has(&self, url: &str) -> bool {
        self.run(&["show", url, "--json"]).status.success()
    }

    /// `sync --watch` in the background.
    pub fn watch(&self) -> Watcher {
        let child = self
            .command(&["sync", "--watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sync --watch starts");
        Watcher { child }
    }
}

/// A background `partnerplan sync --watch`, killed when dropped.
pub struct Watcher {
    pub child: Child,
}

impl Watcher {
    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
