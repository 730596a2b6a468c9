//! Runs the official automerge-repo JavaScript client (tests/js) against
//! a relay. Its npm packages are installed on first use, once per
//! checkout, under a file lock so parallel tests do not race.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::run_bounded;

pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Installs tests/js's npm packages if they are missing. Fails loudly when
/// node or npm is not installed: these tests never skip.
pub fn ensure_installed() {
    npm_ci(&js_dir());
}

/// Runs `npm ci` in `dir` unless its packages are installed, once per
/// checkout, under a file lock so parallel tests do not race.
pub fn npm_ci(dir: &std::path::Path) {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".install.lock"))
        .expect("the install lock file can be created");
    lock.lock().expect("the install lock can be taken");
    if !dir.join("node_modules/.package-lock.json").exists() {
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir);
        let output = run_bounded(npm, Duration::from_secs(600));
        assert!(
            output.status.success(),
            "npm ci in {} failed (node and npm must be installed; .ci/run installs them): {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = lock.unlock();
}

/// Runs `node client.mjs <args>` and returns the JSON line it printed.
pub fn client(args: &[&str]) -> Result<Value, String> {
    ensure_installed();
    let mut node = Command::new("node");
    node.arg(js_dir().join("client.mjs"))
        .args(args)
        .current_dir(js_dir());
    let output = run_bounded(node, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    let value: Value = serde_json::from_str(line).map_err(|_| {
        format!(
            "node client.mjs {args:?} printed no JSON result; stdout: {stdout}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if output.status.success() {
        Ok(value)
    } else {
        Err(format!(
            "node client.mjs {args:?} failed: {value}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The Node reference sync server (`js/reference-server.mjs`: automerge-repo
/// with its WebSocket server adapter and file storage) on a random port of
/// 127.0.0.1, stopped when dropped.
pub struct ReferenceServer {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl ReferenceServer {
    /// Starts it over the data directory `data`.
    pub fn start(data: &std::path::Path) -> ReferenceServer {
        use std::io::BufRead;
        ensure_installed();
        std::fs::create_dir_all(data).expect("the server's folder can be made");
        let mut child = Command::new("node")
            .arg(js_dir().join("reference-server.mjs"))
            .arg("0")
            .arg(data)
            .current_dir(js_dir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node starts the reference server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line.strip_prefix("listening ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("the reference server says where it listens");
        ReferenceServer {
            child,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The process, for reading its CPU time and memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `node live-edit.mjs` (N official clients editing one plan at
/// once, each at the matching URL of `urls`) and returns its JSON report,
/// or what went wrong. Bounded by `limit`.
pub fn live_edit(urls: &[String], args: &[&str], limit: Duration) -> Result<Value, String> {
    ensure_installed();
    let mut node = Command::new("node");
    node.arg(js_dir().join("live-edit.mjs"))
        .arg(urls.join(","))
        .args(args)
        .arg("--timeout-ms")
        .arg(
            limit
                .saturating_sub(Duration::from_secs(5))
                .as_millis()
                .to_string(),
        )
        .current_dir(js_dir());
    let output = run_bounded(node, limit);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            format!(
                "live-edit.mjs printed no JSON result; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    if output.status.success() {
        Ok(value)
    } else {
        Err(format!("live-edit.mjs failed: {value}"))
    }
}
