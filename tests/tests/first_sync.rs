//! A school joining a partnership that already holds many documents, over
//! a rural line (256 kbit/s, 300 ms each way) that drops three times on
//! the way: it finishes without starting over, and says how far it has
//! got as the documents arrive.
//!
//! The case is 5 MB in about 40 documents (some 160 s at 256
//! kbit/s, a benchmark in BENCHMARKS.md); this test moves 40 documents of
//! about 12 KB, so it runs in well under a minute.

use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use partnerplan_tests::shaper::{LinkShape, Shaper};
use partnerplan_tests::{RelayProcess, School, TEST_PARTNERSHIP};
use rand::Rng;
use serde_json::Value;

const DOCUMENTS: usize = 40;
/// Characters of random text per document: about 12 KB stored.
const TEXT_CHARS: usize = 15_000;

#[test]
fn a_large_first_sync_cut_three_times_finishes_without_starting_over() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let lead = School::init(root.path(), "Lead School", &relay);
    let mut rng = rand::rng();
    let urls: Vec<String> = (0..DOCUMENTS)
        .map(|i| {
            let url = lead.create(&format!("Evidence folder {i}"));
            let text: String = (0..TEXT_CHARS)
                .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
                .collect();
            lead.ok(&["set", &url, "evidence", &format!("\"{text}\"")]);
            url
        })
        .collect();
    lead.sync();

    let line = Shaper::start(relay.addr, LinkShape::rural(300, 0, 256, 9));
    let invite = relay
        .invite_at(TEST_PARTNERSHIP, "New School", "member", &line.url())
        .unwrap();
    let school = School::join(root.path(), "New School", &invite);
    let mut sync = school
        .command(&["sync", "--timeout", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = sync.stdout.take().unwrap();
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });

    // Watch `status` as a person would, and cut the line when a quarter,
    // half and three quarters of the documents have arrived.
    let started = Instant::now();
    let mut seen_done = 0;
    let mut total_bytes = 0;
    let mut cuts_at = vec![3 * DOCUMENTS / 4, DOCUMENTS / 2, DOCUMENTS / 4];
    let mut sentences = Vec::new();
    let finished = loop {
        if let Some(status) = sync.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the first sync did not finish in two minutes"
        );
        let status: Value = serde_json::from_str(&school.ok(&["status", "--json"])).unwrap();
        if let Some(receiving) = status.get("receiving").filter(|r| !r.is_null()) {
            let done = receiving["documents_done"].as_u64().unwrap() as usize;
            assert_eq!(receiving["documents"], DOCUMENTS as u64);
            assert!(
                done >= seen_done,
                "progress went back from {seen_done} to {done} documents"
            );
            seen_done = done;
            total_bytes = receiving["bytes"].as_u64().unwrap();
            if cuts_at.last().is_some_and(|&at| done >= at) {
                cuts_at.pop();
                line.cut_all();
                sentences.push(school.ok(&["status"]));
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    let output = said.join().unwrap();
    let mut stderr = String::new();
    let _ = sync.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(finished.success(), "the sync failed: {stderr}{output}");
    assert!(cuts_at.is_empty(), "the line was cut three times mid-way");
    assert_eq!(line.counts().cuts.load(Ordering::Relaxed), 3);

    // Every document arrived whole.
    for url in &urls {
        let theirs = lead.stored(url).unwrap();
        let ours = school.stored(url).expect("every document arrived");
        assert_eq!(ours.get_heads(), theirs.get_heads());
    }

    // The person saw how far it had got: in `status`, and as the sync ran.
    assert!(
        sentences
            .iter()
            .any(|s| s.contains(&format!("of {DOCUMENTS} documents"))),
        "status said: {sentences:?}"
    );
    assert!(
        output.contains(&format!("of {DOCUMENTS} documents")) && output.contains("KB"),
        "the sync said: {output}"
    );

    // What arrived before each cut was kept and not sent again: the line
    // carried the documents once, plus at most the one cut short at each
    // cut and each reconnection's own opening. Starting over would have
    // carried three quarters of them again, and a half, and a quarter.
    let down = line.counts().down.load(Ordering::Relaxed);
    let largest = total_bytes / DOCUMENTS as u64 * 2;
    let allowed = total_bytes + 3 * (largest + 8_000) + 8_000;
    eprintln!("{down} bytes down for {total_bytes} bytes of documents");
    assert!(total_bytes > (DOCUMENTS * TEXT_CHARS / 2) as u64);
    assert!(
        down <= allowed,
        "{down} bytes came down the line for {total_bytes} bytes of documents"
    );
}
