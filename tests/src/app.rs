//! The school's app as a real process, and browser scenarios that drive it
//! in Debian's headless Chromium (tests/browser, playwright-core).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{School, run_bounded};

/// A running `partnerplan app`, stopped when dropped.
pub struct AppProcess {
    child: Child,
    pub url: String,
}

impl AppProcess {
    /// Starts the school's app on a random port of 127.0.0.1.
    pub fn start(school: &School) -> AppProcess {
        Self::start_with(school, &[])
    }

    /// Starts the app with more arguments (such as `--require-password`).
    pub fn start_with(school: &School, extra: &[&str]) -> AppProcess {
        let mut args = vec!["app", "--listen", "127.0.0.1:0", "--no-browser"];
        args.extend_from_slice(extra);
        let mut child = school
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("partnerplan app starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split(" at ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the app prints its address within 20 s");
        AppProcess { child, url }
    }

    /// host:port
    pub fn host(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }

    /// Sends one raw HTTP request and returns the status code and body.
    pub fn raw(&self, request: &str) -> (u16, String) {
        raw_http(&self.host(), request)
    }

    /// The home page and the per-process token every change must carry,
    /// read from it as the page's script does.
    pub fn home_and_token(&self) -> (String, String) {
        let host = self.host();
        let (_, home) = self.raw(&format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ));
        let token = home
            .split("name=\"csrf\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page carries its token")
            .to_string();
        (home, token)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one raw HTTP request to `host` (host:port) and returns the
/// status code and body.
pub fn raw_http(host: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(host).expect("the app accepts connections");
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
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Installs tests/browser's npm packages if missing, and checks that
/// Debian's Chromium is there. Fails loudly: these tests never skip.
pub fn ensure_browser() {
    crate::js::npm_ci(&browser_dir());
    assert!(
        Path::new("/usr/bin/chromium").exists()
            || std::env::var_os("PARTNERPLAN_CHROMIUM").is_some(),
        "Debian's chromium is needed for the browser tests: apt-get install chromium (.ci/run does)"
    );
}

/// Runs `node tests/browser/<script> <args>`; panics with what it said
/// unless it succeeded.
pub fn scenario(script: &str, args: &[&str]) {
    ensure_browser();
    let mut node = Command::new("node");
    node.arg(browser_dir().join(script))
        .args(args)
        .current_dir(browser_dir());
    let output = run_bounded(node, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser scenario {script} failed:\n{stdout}\n{stderr}"
    );
}

/// Where screenshots for the README go: `docs/screenshots`.
pub fn screenshots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join("screenshots")
}
