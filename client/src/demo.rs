//! `partnerplan demo`: the product as a partnership would run it, on
//! this machine. It starts the real programs — the lead school's relay
//! (`partnerplan-relay serve`, found beside this program) and two
//! schools' apps (this program, `app`) — with the seed action plan
//! imported into one school and opened by the other, prints both apps'
//! addresses, and keeps running until Ctrl-C. Pressing Enter takes the
//! second school offline and brings it back: its line to the relay runs
//! through a small forwarder here (`Line`), which the demo cuts. Both
//! schools keep editing meanwhile, and their edits merge when it returns.
//!
//! The client does not link the relay: the demo runs it as a program,
//! so it shows exactly what a lead school runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::ClientError;

/// The seed plan (the 2017–18 plan of Bank Road and William Lilley infant
/// schools), in the binary so the demo works wherever it is run.
const SEED_PLAN: &str = include_str!("../../tests/fixtures/action-plan-000.json");

const PARTNERSHIP: &str = "Hilltop and Valley Federation";
const FIRST: &str = "Hilltop Primary";
const SECOND: &str = "Valley Infants";

/// Names a relay program to run instead of the one beside this program.
pub const RELAY_PROGRAM_ENV: &str = "PARTNERPLAN_RELAY_PROGRAM";

/// The longest one setup command (join, import, sync …) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);
/// How long a started program has to say where it listens.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a program has to stop after being asked, before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How often the demo checks that its programs still run.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the demo waits for once it runs.
enum Event {
    /// Enter was pressed: take the second school offline, or bring it back.
    Toggle,
    /// Ctrl-C or SIGTERM.
    Stop,
}

/// Runs the demo until Ctrl-C (or SIGTERM); `open_browser` opens the
/// first school's app.
pub fn run(open_browser: bool) -> Result<(), ClientError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| ClientError::Other(format!("could not start: {e}")))?;
    let (events, waiting) = mpsc::channel();
    // Listening for Ctrl-C before any program starts, so a stop during
    // setup still stops what was started and removes the folder.
    let stop = events.clone();
    let (listening, listening_rx) = mpsc::channel();
    runtime.spawn(async move {
        stop_signal(listening).await;
        let _ = stop.send(Event::Stop);
    });
    let _ = listening_rx.recv_timeout(Duration::from_secs(5));
    let mut demo = Demo::set_up(&waiting)?;

    let (first, second) = (demo.apps[0].url.clone(), demo.apps[1].url.clone());
    println!(
        "\n{} app: {first}  {} app: {second} — edit in one tab and watch the other.",
        possessive(FIRST),
        possessive(SECOND)
    );
    if open_browser && webbrowser::open(&first).is_err() {
        println!("Open {first} in your web browser.");
    }
    println!(
        "\nPress Enter to take {SECOND} offline: both schools keep editing on their own computers. Press Enter again to bring it back and watch the edits merge. Ctrl-C stops the demo."
    );
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines().map_while(Result::ok) {
            if events.send(Event::Toggle).is_err() {
                break;
            }
        }
    });
    let mut stopped = None;
    loop {
        let event = match waiting.recv_timeout(WATCH_EVERY) {
            Ok(event) => event,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stopped = demo.stopped();
                if stopped.is_some() {
                    break;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            Event::Stop => break,
            Event::Toggle if demo.line.is_up() => {
                demo.line.cut();
                println!(
                    "{SECOND} is offline. Edit the same action in both tabs: {SECOND}'s edits stay on its own computer, and its tab says so. Press Enter to bring it back."
                );
            }
            Event::Toggle => {
                demo.line.restore();
                println!(
                    "{SECOND} is back online. It reconnects by itself (within half a minute) and the edits merge in both tabs; a value both set differently shows as a conflict to resolve. Press Enter to take it offline again."
                );
            }
        }
    }
    println!("Stopping the demo: its relay, its two apps, and its folder.");
    drop(demo);
    match stopped {
        None => Ok(()),
        Some(what) => Err(ClientError::Other(format!(
            "{what} stopped by itself (what it said is above), so the demo stopped too. Run `partnerplan demo` again."
        ))),
    }
}

/// "Hilltop Primary's", "Valley Infants'".
fn possessive(name: &str) -> String {
    match name.ends_with('s') {
        true => format!("{name}'"),
        false => format!("{name}'s"),
    }
}

/// A program the demo started.
struct Running {
    child: Child,
    /// Where it listens: the relay's ws:// address, an app's http:// one.
    url: String,
}

/// Everything the demo started, stopped (and its folder removed) when
/// dropped, however the demo ends.
struct Demo {
    client: PathBuf,
    relay_program: PathBuf,
    relay_dir: PathBuf,
    /// The relay's listen address, kept so it comes back where the
    /// schools' invites point.
    relay_listen: String,
    relay: Option<Running>,
    /// The second school's line to the relay, which the demo can cut.
    line: Line,
    apps: Vec<Running>,
    // Last, so its folder goes after every program using it has stopped.
    workspace: tempfile::TempDir,
}

impl Demo {
    fn set_up(events: &mpsc::Receiver<Event>) -> Result<Demo, ClientError> {
        let client = std::env::current_exe().map_err(|e| {
            ClientError::Other(format!("could not tell where this program is: {e}."))
        })?;
        let relay_program = relay_program(&client)?;
        let workspace = tempfile::tempdir().map_err(|e| {
            ClientError::Other(format!(
                "could not make a folder for the demo: {e}. Check the temporary folder can be written to."
            ))
        })?;
        let relay_dir = workspace.path().join("relay");
        let mut demo = Demo {
            client,
            relay_program,
            relay_dir,
            relay_listen: "127.0.0.1:0".into(),
            relay: None,
            line: Line::default(),
            apps: Vec::new(),
            workspace,
        };
        let stopped = || -> Result<(), ClientError> {
            match events.try_recv() {
                Ok(Event::Stop) => Err(ClientError::Other("the demo was stopped.".into())),
                _ => Ok(()),
            }
        };

        demo.start_relay()?;
        let relay_url = demo
            .relay
            .as_ref()
            .map(|r| r.url.clone())
            .unwrap_or_default();
        println!(
            "1. The lead school's relay is running at {relay_url} (its data in {}).",
            demo.relay_dir.display()
        );
        demo.admin(&["partnership", "create", PARTNERSHIP])?;
        let mut dirs = Vec::new();
        for school in [FIRST, SECOND] {
            stopped()?;
            let added = demo.admin(&[
                "school",
                "add",
                "--partnership",
                PARTNERSHIP,
                school,
                "--json",
            ])?;
            let invite = serde_json::from_str::<serde_json::Value>(&added)
                .ok()
                .and_then(|v| v["invite"].as_str().map(str::to_string))
                .ok_or_else(|| {
                    ClientError::Other(format!(
                        "the relay gave no invite for {school}. Check that {} is the relay of this version of partnerplan.",
                        demo.relay_program.display()
                    ))
                })?;
            let dir = demo
                .workspace
                .path()
                .join(school.to_lowercase().replace(' ', "-"));
            // The second school reaches the relay through a line the demo
            // can cut, as a rural school's connection drops.
            let invite = if school == SECOND {
                let through = demo.line.open(&demo.relay_listen)?;
                invite.replacen(&demo.relay_listen, &through, 1)
            } else {
                invite
            };
            demo.school(&dir, &["join", &invite, "--school", school])?;
            dirs.push(dir);
        }
        println!(
            "2. It registered the {PARTNERSHIP} and invited {FIRST} and {SECOND}; each school joined with its invite and keeps its own copy."
        );

        stopped()?;
        let file = demo.workspace.path().join("action-plan-000.json");
        std::fs::write(&file, SEED_PLAN).map_err(|e| {
            ClientError::Other(format!("could not write the seed plan for the demo: {e}."))
        })?;
        let file = file.to_string_lossy().into_owned();
        let imported = demo.school(&dirs[0], &["--as", "Ann Head", "import", &file])?;
        let urls: Vec<&str> = imported
            .lines()
            .filter_map(|line| {
                line.split_whitespace()
                    .find(|w| w.starts_with("automerge:"))
            })
            .collect();
        demo.school(&dirs[0], &["sync", "--timeout", "60"])?;
        stopped()?;
        for url in &urls {
            demo.school(&dirs[1], &["open", url])?;
        }
        demo.school(&dirs[1], &["sync", "--timeout", "60"])?;
        println!(
            "3. {FIRST} imported the 2017-18 action plan of Bank Road and William Lilley infant schools and synced it; {SECOND} opened it and synced."
        );

        for dir in &dirs {
            stopped()?;
            let app = demo.start(
                demo.client.clone(),
                &[
                    "--data",
                    &dir.to_string_lossy(),
                    "app",
                    "--listen",
                    "127.0.0.1:0",
                    "--no-browser",
                ],
                "running for this school at ",
            )?;
            demo.apps.push(app);
        }
        println!("4. Both schools' apps are running, each on its own copy.");
        Ok(demo)
    }

    /// Starts the relay (again, at the address it had).
    fn start_relay(&mut self) -> Result<(), ClientError> {
        let relay = self.start(
            self.relay_program.clone(),
            &[
                "serve",
                "--listen",
                &self.relay_listen.clone(),
                // Any free port: a relay the lead school runs on this
                // computer keeps the usual one for its admin pages.
                "--admin-listen",
                "127.0.0.1:0",
                "--data",
                &self.relay_dir.to_string_lossy(),
            ],
            "listening on ",
        )?;
        if let Some(addr) = relay.url.strip_prefix("ws://") {
            self.relay_listen = addr.trim_end_matches('/').to_string();
        }
        self.relay = Some(relay);
        Ok(())
    }

    /// The first of the demo's programs that has stopped by itself, by
    /// what it is to the person watching ("The relay", "Hilltop
    /// Primary's app").
    fn stopped(&mut self) -> Option<String> {
        if let Some(relay) = &mut self.relay
            && !matches!(relay.child.try_wait(), Ok(None))
        {
            return Some("The demo's relay".into());
        }
        for (app, name) in self.apps.iter_mut().zip([FIRST, SECOND]) {
            if !matches!(app.child.try_wait(), Ok(None)) {
                return Some(format!("{} app", possessive(name)));
            }
        }
        None
    }

    fn stop_relay(&mut self) {
        if let Some(mut relay) = self.relay.take() {
            stop(&mut relay.child);
        }
    }

    /// Starts `program` and waits for the line that says where it
    /// listens: the word after `marker`.
    fn start(&self, program: PathBuf, args: &[&str], marker: &str) -> Result<Running, ClientError> {
        let mut command = Command::new(&program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        quiet(&mut command);
        let mut child = command.spawn().map_err(|e| {
            ClientError::Other(format!("could not start {}: {e}.", program.display()))
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines, said) = mpsc::channel();
        // Reads every line, so the program never waits on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match said.recv_timeout(left) {
                Ok(line) => {
                    let Some((_, rest)) = line.split_once(marker) else {
                        continue;
                    };
                    let url = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    return Ok(Running { child, url });
                }
                Err(_) => {
                    stop(&mut child);
                    return Err(ClientError::Other(format!(
                        "{} did not start within {} seconds; what it said is above.",
                        program.display(),
                        START_LIMIT.as_secs()
                    )));
                }
            }
        }
    }

    /// One of the relay's admin commands; returns what it printed.
    fn admin(&self, args: &[&str]) -> Result<String, ClientError> {
        let mut command = Command::new(&self.relay_program);
        command.arg("--data").arg(&self.relay_dir).args(args);
        run_bounded(command)
    }

    /// One `partnerplan` command for the school in `dir`.
    fn school(&self, dir: &Path, args: &[&str]) -> Result<String, ClientError> {
        let mut command = Command::new(&self.client);
        command.arg("--data").arg(dir).args(args);
        run_bounded(command)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for app in &mut self.apps {
            stop(&mut app.child);
        }
        self.stop_relay();
    }
}

/// The relay program: named by `PARTNERPLAN_RELAY_PROGRAM`, or beside
/// this program (as `cargo build` leaves them, under either name the
/// workspace builds it).
fn relay_program(client: &Path) -> Result<PathBuf, ClientError> {
    if let Some(named) = std::env::var_os(RELAY_PROGRAM_ENV) {
        let named = PathBuf::from(named);
        return match named.is_file() {
            true => Ok(named),
            false => Err(ClientError::Other(format!(
                "{RELAY_PROGRAM_ENV} names {}, which is not a program. Give the path of partnerplan-relay, or unset it to use the one beside partnerplan.",
                named.display()
            ))),
        };
    }
    let folder = client.parent().unwrap_or(Path::new("."));
    ["partnerplan-relay", "e2e-partnerplan-relay"]
        .iter()
        .map(|name| folder.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            ClientError::Other(format!(
                "the demo runs the relay program, partnerplan-relay, but it is not in {}. Build both programs with `cargo build --release` and run `./target/release/partnerplan demo`.",
                folder.display()
            ))
        })
}

/// The demo's programs log only errors, unless `PARTNERPLAN_LOG` asks for
/// more: a relay taken offline on purpose is not worth a warning.
fn quiet(command: &mut Command) {
    if std::env::var_os("PARTNERPLAN_LOG").is_none() {
        command.env("PARTNERPLAN_LOG", "error");
    }
}

/// Runs a setup command to its end, within `COMMAND_LIMIT`; its output,
/// or a sentence with what it said.
fn run_bounded(mut command: Command) -> Result<String, ClientError> {
    quiet(&mut command);
    let program = command.get_program().to_string_lossy().into_owned();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ClientError::Other(format!("could not start {program}: {e}.")))?;
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output: Output = match finished.recv_timeout(COMMAND_LIMIT) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(ClientError::Other(format!(
                "{program} could not be run: {e}."
            )));
        }
        Err(_) => {
            send_signal(pid, Signal::Kill);
            return Err(ClientError::Other(format!(
                "{program} did not finish within {} seconds; the demo stops.",
                COMMAND_LIMIT.as_secs()
            )));
        }
    };
    if !output.status.success() {
        return Err(ClientError::Other(format!(
            "the demo's setup failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

enum Signal {
    Terminate,
    Kill,
}

fn send_signal(pid: u32, signal: Signal) {
    #[cfg(unix)]
    {
        let number = match signal {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        // SAFETY: kill(2) with a pid this process started.
        unsafe {
            libc::kill(pid as libc::pid_t, number);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (pid, signal);
    }
}

/// Asks a program to stop (SIGTERM, so the relay finishes its writes),
/// and kills it if it has not within `STOP_LIMIT`.
fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    send_signal(child.id(), Signal::Terminate);
    let deadline = Instant::now() + STOP_LIMIT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Ctrl-C, or SIGTERM where there is one. Says on `listening` once the
/// handlers are in place.
async fn stop_signal(listening: mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            let _ = listening.send(());
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let ctrl_c = tokio::signal::ctrl_c();
    let _ = listening.send(());
    let _ = ctrl_c.await;
}

/// A school's line to the relay: a forwarder on 127.0.0.1 that the demo
/// can cut (every connection through it is dropped, and new ones are
/// refused) and restore.
#[derive(Default, Clone)]
struct Line {
    state: std::sync::Arc<std::sync::Mutex<LineState>>,
}

#[derive(Default)]
struct LineState {
    down: bool,
    open: Vec<std::net::TcpStream>,
}

impl Line {
    /// Starts forwarding to `relay` (host:port); returns the address to use instead.
    fn open(&self, relay: &str) -> Result<String, ClientError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| ClientError::Other(format!("could not start the demo's line: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| ClientError::Other(format!("could not start the demo's line: {e}")))?
            .to_string();
        let relay = relay.to_string();
        let line = self.clone();
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(school) = incoming else { continue };
                if line.lock().down {
                    continue; // dropped: the line is cut
                }
                let Ok(upstream) = std::net::TcpStream::connect(&relay) else {
                    continue;
                };
                let (Ok(school_copy), Ok(upstream_copy)) =
                    (school.try_clone(), upstream.try_clone())
                else {
                    continue;
                };
                {
                    let mut state = line.lock();
                    state.open.push(school_copy);
                    state.open.push(upstream_copy);
                }
                pipe(&school, &upstream);
                pipe(&upstream, &school);
            }
        });
        Ok(address)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_up(&self) -> bool {
        !self.lock().down
    }

    fn cut(&self) {
        let mut state = self.lock();
        state.down = true;
        for stream in state.open.drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.lock().down = false;
    }
}

/// Copies one direction of a forwarded connection until either side ends.
fn pipe(from: &std::net::TcpStream, to: &std::net::TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Both);
        let _ = from.shutdown(std::net::Shutdown::Both);
    });
}
