//! `partnerplan demo` end to end: it starts the real relay and two
//! schools' apps holding the seed plan, and stops every one of them when
//! it is stopped.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use partnerplan_tests::app::raw_http;
use partnerplan_tests::{client_binary, relay_binary, wait_until};

/// The demo, stopped (SIGTERM, then killed) if the test ends early.
struct DemoProcess(Child);

impl DemoProcess {
    fn terminate(&mut self) {
        // SAFETY: kill(2) with the pid of the child this test started.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.terminate();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}

/// A demo started with its output read: the demo, its lines still to
/// come, both apps' addresses and the relay's host.
struct Started {
    demo: DemoProcess,
    lines: mpsc::Receiver<String>,
    apps: Vec<String>,
    relay: String,
}

fn start_demo() -> Started {
    let child = Command::new(client_binary())
        .args(["demo", "--no-browser"])
        .env("PARTNERPLAN_RELAY_PROGRAM", relay_binary())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let mut demo = DemoProcess(child);
    let stdout = demo.0.stdout.take().expect("piped");
    let stderr = demo.0.stderr.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("demo: {line}");
                let _ = tx.send(line);
            }
        });
    }

    // The relay's address, then the line with both apps' addresses.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut relay = None;
    let apps: Vec<String> = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the demo prints both apps' addresses within two minutes");
        let urls: Vec<String> = line
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("ws://"))
            .map(str::to_string)
            .collect();
        if line.contains("relay is running at") {
            relay = urls.first().map(|u| host_of(u));
        }
        if line.contains("Hilltop Primary's app:") && line.contains("Valley Infants' app:") {
            break urls;
        }
    };
    assert_eq!(apps.len(), 2, "{apps:?}");
    let relay = relay.expect("the demo says where its relay runs");
    Started {
        demo,
        lines,
        apps,
        relay,
    }
}

#[test]
fn the_demo_runs_two_schools_apps_with_the_seed_plan_and_stops_them_all() {
    let Started {
        mut demo,
        lines: _lines,
        apps,
        relay,
    } = start_demo();

    for app in &apps {
        let host = host_of(app);
        let (status, page) = raw_http(
            &host,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{app}: {page}");
        assert!(
            page.contains("Collaboration action plan 2017-2018"),
            "{app} lists the seed plan: {page}"
        );
    }

    // Enter takes Valley Infants offline; Enter again brings it back.
    let indicator = |app: &str| {
        let host = host_of(app);
        let (_, page) = raw_http(
            &host,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        page.split("id=\"sync\"")
            .nth(1)
            .and_then(|rest| rest.split('>').nth(1))
            .unwrap_or("")
            .to_string()
    };
    for app in &apps {
        wait_until(Duration::from_secs(45), "both schools are online", || {
            indicator(app).starts_with("Shared")
        });
    }
    let mut enter = demo.0.stdin.take().expect("piped");
    writeln!(enter).unwrap();
    wait_until(
        Duration::from_secs(15),
        "Valley Infants shows it is offline",
        || indicator(&apps[1]).starts_with("Offline"),
    );
    assert!(
        !indicator(&apps[0]).starts_with("Offline"),
        "Hilltop Primary stays online"
    );
    writeln!(enter).unwrap();
    wait_until(
        Duration::from_secs(45),
        "Valley Infants is back online",
        || indicator(&apps[1]).starts_with("Shared"),
    );

    demo.terminate();
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "the demo stops within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "the demo ends cleanly when stopped: {status}"
    );
    for host in apps.iter().map(|a| host_of(a)).chain([relay]) {
        wait_until(
            Duration::from_secs(10),
            &format!("nothing answers at {host} once the demo stopped"),
            || TcpStream::connect(&host).is_err(),
        );
    }
}

/// The process ids of `parent`'s children running `program`.
fn children_running(parent: u32, program: &std::path::Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // "pid (comm) state ppid …": the comm may hold spaces, so read
        // after its closing parenthesis.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if ppid == Some(parent) && first == program.as_os_str().as_encoded_bytes() {
            found.push(pid);
        }
    }
    found
}

#[test]
fn when_its_relay_dies_the_demo_says_so_and_stops_everything() {
    let Started {
        mut demo,
        lines,
        apps,
        relay,
    } = start_demo();
    let relays = children_running(demo.0.id(), &relay_binary());
    assert_eq!(relays.len(), 1, "the demo runs one relay: {relays:?}");
    // SAFETY: kill(2) with the pid of the relay the demo started.
    unsafe {
        libc::kill(relays[0] as libc::pid_t, libc::SIGKILL);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo notices within 30 s that its relay died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "the demo ends with an error: {status}");
    let mut said = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while let Ok(line) = lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
        said.push(line);
    }
    assert!(
        said.iter()
            .any(|l| l.contains("The demo's relay stopped by itself")
                && l.contains("Run `partnerplan demo` again")),
        "the demo says what stopped and what to do: {said:?}"
    );
    for host in apps.iter().map(|a| host_of(a)).chain([relay]) {
        wait_until(
            Duration::from_secs(10),
            &format!("nothing answers at {host} once the demo stopped"),
            || TcpStream::connect(&host).is_err(),
        );
    }
}
