//! Schools on rural lines: every school reaches the relay through a
//! shaped link (tests/src/shaper.rs) that is slow, far away, jittery and
//! cut every few seconds, and still every edit arrives.

use std::time::Duration;

use partnerplan_tests::shaper::{LinkShape, Shaper};
use partnerplan_tests::{RelayProcess, School, TEST_PARTNERSHIP, wait_until};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(150);

/// Nine schools, each on its own line: 300 ± 100 ms each way, 256 kbit/s,
/// cut 3 to 6 seconds after every connection opens. They edit one
/// document while their background syncs keep being cut; every edit
/// reaches every school and the replicas end identical.
#[test]
fn nine_schools_on_bad_lines_that_keep_dropping_converge() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let lines: Vec<Shaper> = (0..9)
        .map(|i| {
            let shape = LinkShape::rural(300, 100, 256, 90 + i)
                .cut_between(Duration::from_secs(3), Duration::from_secs(6));
            Shaper::start(relay.addr, shape)
        })
        .collect();
    let schools: Vec<School> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let name = format!("School {i}");
            let invite = relay
                .invite_at(TEST_PARTNERSHIP, &name, "member", &line.url())
                .expect("a new school gets an invite");
            School::join(root.path(), &name, &invite)
        })
        .collect();

    let url = schools[0].create("Cluster plan");
    // The shared notes exist before anyone types in them.
    schools[0].ok(&["edit", &url, "notes", "--append", "Notes:"]);
    let _watching: Vec<_> = schools.iter().map(School::watch).collect();
    wait_until(CONVERGE, "every school is listed the plan", || {
        schools[1..]
            .iter()
            .all(|school| school.has(&url) && school.show(&url)["notes"] == json!("Notes:"))
    });

    // Three rounds of edits at every school while the lines keep dropping.
    for round in 0..3 {
        for (i, school) in schools.iter().enumerate() {
            school.ok(&[
                "set",
                &url,
                &format!("school_{i}_round_{round}"),
                &format!("\"from {i} in round {round}\""),
            ]);
            school.ok(&[
                "edit",
                &url,
                "notes",
                "--append",
                &format!(" [{i}.{round}]"),
            ]);
        }
        std::thread::sleep(Duration::from_secs(1));
    }

    let complete = |doc: &Value| {
        (0..9).all(|i| {
            (0..3).all(|round| {
                doc[format!("school_{i}_round_{round}")]
                    == json!(format!("from {i} in round {round}"))
                    && doc["notes"]
                        .as_str()
                        .is_some_and(|notes| notes.contains(&format!("[{i}.{round}]")))
            })
        })
    };
    wait_until(
        CONVERGE,
        "every school holds every edit and the replicas are identical",
        || {
            let first = schools[0].show(&url);
            complete(&first) && schools[1..].iter().all(|school| school.show(&url) == first)
        },
    );
    let cuts: u64 = lines
        .iter()
        .map(|line| {
            line.counts()
                .cuts
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(
        cuts >= 9,
        "the lines were cut while the schools synced ({cuts} cuts)"
    );
}

/// The shaper itself: what tests rely on it for holds. Lower bounds only:
/// a link may be slower than asked on a busy machine, never faster.
#[test]
fn the_shaper_delays_limits_counts_and_cuts_mid_stream() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    // An echo server.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });

    // 200 ms each way: a round trip takes at least 400 ms.
    let line = Shaper::start(echo_addr, LinkShape::rural(200, 0, 10_000, 1));
    let mut socket = std::net::TcpStream::connect(line.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    socket.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping");
    assert!(started.elapsed() >= Duration::from_millis(400));

    // 80 kbit/s: 20 KB each way is 2 s on the wire at least.
    let line = Shaper::start(echo_addr, LinkShape::rural(0, 0, 80, 2));
    let mut socket = std::net::TcpStream::connect(line.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let sent = vec![7u8; 20_000];
    let started = Instant::now();
    let mut writer = socket.try_clone().unwrap();
    let sending = sent.clone();
    std::thread::spawn(move || writer.write_all(&sending));
    let mut back = vec![0u8; sent.len()];
    socket.read_exact(&mut back).unwrap();
    assert_eq!(back, sent);
    assert!(started.elapsed() >= Duration::from_secs(2));
    // The count follows each write: the last may land just after we read.
    wait_until(
        Duration::from_secs(5),
        "the shaper counts every byte",
        || {
            line.counts().up.load(Ordering::Relaxed) == 20_000
                && line.counts().down.load(Ordering::Relaxed) == 20_000
        },
    );

    // A cut ends the connection part-way through what was in flight.
    let line = Shaper::start(echo_addr, LinkShape::rural(100, 0, 80, 3));
    let mut socket = std::net::TcpStream::connect(line.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = socket.try_clone().unwrap();
    std::thread::spawn(move || writer.write_all(&[1u8; 20_000]));
    // Once the first bytes are back, cut: the rest of the 20 KB is still
    // seconds away on this line.
    let mut received = vec![0u8; 1];
    socket.read_exact(&mut received).unwrap();
    line.cut_all();
    let _ = socket.read_to_end(&mut received);
    assert!(
        !received.is_empty() && received.len() < 20_000,
        "a cut mid-stream delivers some, not all: {} bytes",
        received.len()
    );
}
