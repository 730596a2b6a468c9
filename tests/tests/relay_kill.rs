//! The relay killed with SIGKILL at random moments, 50 times, while three
//! schools (the real programs: `sync --watch` in the background, edits
//! from the command line) keep editing one shared document.
//!
//! An edit counts as acknowledged once the school's `status --json` lists
//! no unconfirmed changes after it was made: that is what a person would
//! trust. After every kill, before the relay starts again, its file passes
//! `PRAGMA integrity_check` and holds every edit acknowledged so far. At
//! the end every edit made is in the relay's file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::ReadDoc;
use partnerplan_sync::{DocumentId, Store};
use partnerplan_tests::{RelayProcess, School, wait_until};
use serde_json::Value;

const KILLS: usize = 50;
const SCHOOLS: usize = 3;

/// A small generator for the kill moments, seeded from the clock; the
/// seed is printed so a failing run can be told apart.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// What one school has done: its edits are `s{school}e{n}` for n in
/// 1..=made, and 1..=acknowledged of them were confirmed by its status.
#[derive(Default, Clone, Copy)]
struct Progress {
    made: u64,
    acknowledged: u64,
}

fn key(school: usize, n: u64) -> String {
    format!("s{school}e{n}")
}

/// No unconfirmed changes, says the school's own status.
fn confirmed(school: &School) -> bool {
    let out = school.run(&["status", "--json"]);
    out.status.success()
        && serde_json::from_slice::<Value>(&out.stdout)
            .is_ok_and(|s| s["unconfirmed"].as_array().is_some_and(|u| u.is_empty()))
}

/// One school's live load: an edit, then its status a few times until it
/// says the edit is confirmed (or the relay is down: the next edit then).
fn edit_until_stopped(
    school: &School,
    index: usize,
    url: &str,
    progress: &Mutex<Progress>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let n = progress.lock().unwrap().made + 1;
        school.ok(&["set", url, &key(index, n), "done"]);
        progress.lock().unwrap().made = n;
        for _ in 0..6 {
            if confirmed(school) {
                let mut p = progress.lock().unwrap();
                p.acknowledged = p.acknowledged.max(n);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The relay's file after a kill: intact, and holding these edits.
fn check_file(data: &Path, id: &DocumentId, wanted: &[(usize, u64)]) -> Result<usize, String> {
    let path = data.join(partnerplan_relay::DATABASE_FILE);
    let conn = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if verdict != "ok" {
        return Err(format!("integrity_check said: {verdict}"));
    }
    drop(conn);
    let store = Store::open(&path).map_err(|e| e.to_string())?;
    let doc = store
        .load_document(id)
        .map_err(|e| e.to_string())?
        .ok_or("the relay's file lost the document")?;
    let mut checked = 0;
    for &(school, upto) in wanted {
        for n in 1..=upto {
            if doc
                .get(automerge::ROOT, key(school, n))
                .ok()
                .flatten()
                .is_none()
            {
                return Err(format!(
                    "School {school}'s edit {n} was acknowledged, but the killed relay's file lacks it"
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

#[test]
fn no_acknowledged_edit_is_lost_when_the_relay_is_killed_fifty_times_under_load() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("relay");
    let mut relay = RelayProcess::start(&data, &[]);
    let schools: Vec<School> = (0..SCHOOLS)
        .map(|i| School::init(root.path(), &format!("School {i}"), &relay))
        .collect();
    let url = schools[0].create("Kill test");
    schools[0].sync();
    for school in &schools[1..] {
        school.ok(&["open", &url]);
        school.sync();
    }
    let id = DocumentId::parse_url_or_id(&url).unwrap();
    let _watchers: Vec<_> = schools.iter().map(School::watch).collect();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("relay kills: seed {seed}");
    let mut moments = Moments(seed);
    let progress: Vec<Arc<Mutex<Progress>>> = (0..SCHOOLS).map(|_| Arc::default()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut checked = 0;
    let mut acknowledged_at_kills = Vec::new();
    std::thread::scope(|scope| {
        for (i, school) in schools.iter().enumerate() {
            let (progress, stop, url) = (progress[i].clone(), stop.clone(), url.clone());
            scope.spawn(move || edit_until_stopped(school, i, &url, &progress, &stop));
        }
        let result = (|| -> Result<(), String> {
            for kill in 0..KILLS {
                std::thread::sleep(Duration::from_millis(100 + moments.next_ms(1100)));
                // What was acknowledged before the kill must survive it.
                let wanted: Vec<(usize, u64)> = progress
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i, p.lock().unwrap().acknowledged))
                    .collect();
                relay.kill();
                checked += check_file(&data, &id, &wanted)
                    .map_err(|e| format!("after kill {}: {e}", kill + 1))?;
                acknowledged_at_kills.push(wanted.iter().map(|(_, n)| n).sum::<u64>());
                relay.start_again();
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        if let Err(error) = result {
            panic!("{error}");
        }
    });
    let killing = started.elapsed();

    // Every edit made reaches the relay's file once the schools say so.
    for school in &schools {
        wait_until(
            Duration::from_secs(60),
            "every school's edits are confirmed",
            || confirmed(school),
        );
    }
    relay.kill();
    let everything: Vec<(usize, u64)> = progress
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.lock().unwrap().made))
        .collect();
    let total = check_file(&data, &id, &everything).expect("the relay's file holds every edit");
    let acknowledged: u64 = *acknowledged_at_kills.last().unwrap();
    eprintln!(
        "relay kills: {KILLS} kills in {killing:?}; {total} edits made, {acknowledged} acknowledged by the last kill, {checked} checks of acknowledged edits in killed relays' files"
    );
    // The test proves something only if edits were acknowledged between
    // kills and then checked in the files the kills left.
    let distinct: HashMap<u64, ()> = acknowledged_at_kills.iter().map(|n| (*n, ())).collect();
    assert!(
        distinct.len() >= KILLS / 5,
        "too few acknowledgements between kills ({} distinct totals) for the test to mean much",
        distinct.len()
    );
}
