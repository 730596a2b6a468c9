//! Backups and restores of a relay, with the real relay and client
//! programs: a backup taken while schools sync, a restore from an older
//! backup after which schools send what the relay lost, refusals, and
//! scheduled backups.

use std::path::{Path, PathBuf};
use std::time::Duration;

use partnerplan_sync::store::check_copy;
use partnerplan_sync::{DocumentId, Store};
use partnerplan_tests::{RelayProcess, School, wait_until};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(90);

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The documents a database file holds, read from a copy so the file
/// itself is not touched.
fn documents_in(file: &Path) -> Vec<DocumentId> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.sqlite");
    // A scheduled backup may be pruned meanwhile: then it holds nothing.
    if std::fs::copy(file, &copy).is_err() {
        return Vec::new();
    }
    Store::open(&copy)
        .and_then(|s| s.document_ids())
        .unwrap_or_default()
}

fn id(url: &str) -> DocumentId {
    DocumentId::parse_url_or_id(url).unwrap()
}

#[test]
fn a_backup_taken_while_a_school_syncs_is_whole_and_holds_what_was_synced() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), "School A", &relay);
    let synced: Vec<String> = (0..3).map(|i| a.create(&format!("Plan {i}"))).collect();
    a.sync();

    // The school keeps editing and syncing while the backup is made.
    let _watch = a.watch();
    let editing = {
        let a = School::unjoined(root.path(), "School A");
        let url = synced[0].clone();
        std::thread::spawn(move || {
            for i in 0..15 {
                a.ok(&["edit", &url, "title", "--append", &format!(" {i}")]);
                a.create(&format!("Later {i}"));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let to = root.path().join("first.sqlite");
    let out = relay.admin(&["backup", "--to", to.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("first.sqlite") && said.contains("documents"),
        "says where it went and how big: {said}"
    );
    editing.join().unwrap();

    let summary = check_copy(&to).expect("the backup passes its check");
    assert!(summary.documents >= 3);
    let held = documents_in(&to);
    for url in &synced {
        assert!(held.contains(&id(url)), "the backup holds {url}");
    }
    // The relay recorded when.
    let store = Store::open(relay.data.join("relay.sqlite")).unwrap();
    assert!(store.meta("backup.last").unwrap().is_some());
}

#[test]
fn a_restore_from_an_older_backup_loses_nothing_the_schools_still_hold() {
    let root = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), "School A", &relay);
    let b = School::init(root.path(), "School B", &relay);
    let plan = a.create("Plan");
    a.sync();
    b.ok(&["open", &plan]);
    b.sync();
    assert_eq!(b.show(&plan)["title"], json!("Plan"));

    let backup = root.path().join("older.sqlite");
    relay.admin_ok(&["backup", "--to", backup.to_str().unwrap()]);

    // After the backup: a new document and edits from both schools, synced.
    let later = a.create("Later plan");
    a.ok(&["set", &plan, "lead", "Mrs Okafor"]);
    b.ok(&["edit", &plan, "title", "--append", " 2027"]);
    a.sync();
    b.sync();
    a.sync();
    b.ok(&["open", &later]);
    b.sync();
    assert_eq!(b.show(&plan)["lead"], json!("Mrs Okafor"));

    relay.stop();
    let out = relay.admin(&["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("before-restore"), "{said}");
    let kept: Vec<PathBuf> = std::fs::read_dir(&relay.data)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.to_string_lossy().contains("relay.sqlite.before-restore-"))
        .collect();
    assert!(!kept.is_empty(), "the replaced database is kept");
    assert!(
        !documents_in(&relay.data.join("relay.sqlite")).contains(&id(&later)),
        "the restored relay is the older one"
    );
    relay.start_again();

    let expect = |school: &School| {
        let doc = school.show(&plan);
        doc["title"] == json!("Plan 2027")
            && doc["lead"] == json!("Mrs Okafor")
            && school.has(&later)
    };
    wait_until(CONVERGE, "both schools sync and hold every edit", || {
        let _ = a.run(&["sync", "--timeout", "20"]);
        let _ = b.run(&["sync", "--timeout", "20"]);
        expect(&a) && expect(&b) && a.show(&plan) == b.show(&plan)
    });
    wait_until(CONVERGE, "the relay holds the newer changes again", || {
        // The live file (its WAL too), opened as the admin commands do.
        let held = Store::open(relay.data.join("relay.sqlite"))
            .and_then(|s| s.document_ids())
            .unwrap_or_default();
        held.contains(&id(&later))
    });

    // A school joining now receives everything from the relay alone.
    let c = School::init(root.path(), "School C", &relay);
    wait_until(CONVERGE, "a new school receives every edit", || {
        c.ok(&["open", &plan]);
        c.ok(&["open", &later]);
        let _ = c.run(&["sync", "--timeout", "20"]);
        c.has(&plan) && expect(&c) && c.show(&plan) == a.show(&plan)
    });
}

#[test]
fn after_a_restore_partners_send_back_the_changes_of_a_school_that_never_returns() {
    let root = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), "School A", &relay);
    let b = School::init(root.path(), "School B", &relay);
    let plan = a.create("Plan");
    a.sync();
    b.ok(&["open", &plan]);
    b.sync();
    let backup = root.path().join("older.sqlite");
    relay.admin_ok(&["backup", "--to", backup.to_str().unwrap()]);

    // After the backup School A edits, School B receives it and edits on
    // top of it; then School A's computer is lost for good.
    a.ok(&["set", &plan, "lead", "Mrs Okafor"]);
    a.sync();
    b.sync();
    b.ok(&["edit", &plan, "title", "--append", " 2027"]);
    b.sync();
    drop(a);

    relay.stop();
    relay.admin_ok(&["restore", backup.to_str().unwrap()]);
    relay.start_again();

    // School B sends back School A's change with its own: the relay takes
    // both (School A has not connected since the restore), and a school
    // joining now receives everything from the relay alone.
    let synced = b.ok(&["sync", "--timeout", "60"]);
    assert!(synced.contains("In sync"), "{synced}");
    let c = School::init(root.path(), "School C", &relay);
    c.ok(&["open", &plan]);
    c.sync();
    let doc = c.show(&plan);
    assert_eq!(doc["title"], json!("Plan 2027"));
    assert_eq!(doc["lead"], json!("Mrs Okafor"));
}

#[test]
fn restore_refuses_while_the_relay_runs_and_backup_refuses_to_overwrite() {
    let root = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), "School A", &relay);
    let plan = a.create("Plan");
    a.sync();

    let to = root.path().join("b.sqlite");
    relay.admin_ok(&["backup", "--to", to.to_str().unwrap()]);
    let before = std::fs::read(&to).unwrap();
    let out = relay.admin(&["backup", "--to", to.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&to).unwrap(), before, "left as it was");
    relay.admin_ok(&["backup", "--to", to.to_str().unwrap(), "--force"]);

    let out = relay.admin(&["restore", to.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("running") && stderr(&out).contains("Stop it first"),
        "{}",
        stderr(&out)
    );
    // A second relay on the same data directory is refused too.
    let second = partnerplan_tests::run_bounded(
        {
            let mut c = std::process::Command::new(partnerplan_tests::relay_binary());
            c.args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(&relay.data);
            c
        },
        Duration::from_secs(30),
    );
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already using"),
        "{}",
        stderr(&second)
    );

    // Not a backup at all: refused, nothing changed.
    relay.stop();
    let junk = root.path().join("junk.sqlite");
    std::fs::write(&junk, b"not a database").unwrap();
    let out = relay.admin(&["restore", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    relay.start_again();
    a.ok(&["set", &plan, "lead", "Mr Adeyemi"]);
    a.sync();
}

#[test]
fn scheduled_backups_keep_only_the_newest() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("backups");
    let relay = RelayProcess::start(
        &root.path().join("relay"),
        &[
            "--backup-every",
            "1s",
            "--backup-keep",
            "2",
            "--backup-dir",
            dir.to_str().unwrap(),
        ],
    );
    let a = School::init(root.path(), "School A", &relay);
    let plan = a.create("Plan");
    a.sync();

    let names = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let mut seen = std::collections::BTreeSet::new();
    wait_until(Duration::from_secs(30), "four backups are made", || {
        seen.extend(names().into_iter().filter(|n| n.starts_with("relay-")));
        seen.len() >= 4
    });
    // Each backup is renamed into place and then the oldest pruned, so a
    // look in between may catch one more for a moment.
    wait_until(
        Duration::from_secs(10),
        "only the newest two are kept",
        || names().iter().filter(|n| n.starts_with("relay-")).count() <= 2,
    );
    wait_until(Duration::from_secs(10), "a backup holds the plan", || {
        names().iter().rev().any(|n| {
            let file = dir.join(n);
            n.ends_with("Z.sqlite")
                && check_copy(&file).is_ok()
                && documents_in(&file).contains(&id(&plan))
        })
    });
    let store = Store::open(relay.data.join("relay.sqlite")).unwrap();
    let last = store.meta("backup.last").unwrap().expect("recorded");
    assert!(last.ends_with('Z'), "{last}");
}

/// Every document a school holds, with its title (`list --json`).
fn titles(school: &School) -> std::collections::BTreeMap<String, String> {
    let out = school.run(&["list", "--json"]);
    let list: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    list.as_array()
        .map(|docs| {
            docs.iter()
                .filter_map(|d| {
                    Some((
                        d["url"].as_str()?.to_string(),
                        d["title"].as_str().unwrap_or("").to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_backup_during_a_live_load_of_nine_schools_then_a_restore_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let schools: Vec<School> = (1..=9)
        .map(|i| School::init(root.path(), &format!("School {i}"), &relay))
        .collect();
    let first: Vec<String> = schools
        .iter()
        .map(|s| s.create(&format!("Plan of {}", s.name)))
        .collect();
    for school in &schools {
        school.sync();
    }
    // Every school syncs live, and holds every plan before the load.
    let watchers: Vec<_> = schools.iter().map(School::watch).collect();
    wait_until(CONVERGE, "every school holds every plan", || {
        schools.iter().all(|s| {
            let held = titles(s);
            first.iter().all(|url| held.contains_key(url))
        })
    });

    // The load: each school edits its own plan and a neighbour's, and
    // starts new documents, while the backup is made.
    let backup = root.path().join("during-load.sqlite");
    let load: Vec<_> = (0..9)
        .map(|i| {
            let school = School::unjoined(root.path(), &format!("School {}", i + 1));
            let own = first[i].clone();
            let neighbour = first[(i + 1) % 9].clone();
            std::thread::spawn(move || {
                let mut created = Vec::new();
                for n in 0..8 {
                    school.ok(&["edit", &own, "title", "--append", &format!(" s{i}e{n}")]);
                    if n % 3 == 1 {
                        school.ok(&[
                            "edit",
                            &neighbour,
                            "title",
                            "--append",
                            &format!(" n{i}e{n}"),
                        ]);
                        created.push(school.create(&format!("Note {i}.{n}")));
                    }
                    std::thread::sleep(Duration::from_millis(150));
                }
                created
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    relay.admin_ok(&["backup", "--to", backup.to_str().unwrap()]);
    let created: Vec<String> = load
        .into_iter()
        .flat_map(|t| t.join().expect("the load ran"))
        .collect();
    assert_eq!(created.len(), 9 * 3);

    // What every school must end with: every document, every edit.
    let converged = |schools: &[&School]| -> bool {
        let lists: Vec<_> = schools.iter().map(|s| titles(s)).collect();
        let whole = |list: &std::collections::BTreeMap<String, String>| {
            first
                .iter()
                .chain(&created)
                .all(|url| list.contains_key(url))
                && (0..9).all(|i| {
                    let own = &list[&first[i]];
                    let neighbour = &list[&first[(i + 1) % 9]];
                    (0..8).all(|n| own.contains(&format!(" s{i}e{n}")))
                        && [1, 4, 7]
                            .iter()
                            .all(|n| neighbour.contains(&format!(" n{i}e{n}")))
                })
        };
        lists.iter().all(|l| whole(l) && l == &lists[0])
    };
    let all: Vec<&School> = schools.iter().collect();
    wait_until(
        CONVERGE,
        "every school holds every edit before the restore",
        || converged(&all),
    );
    wait_until(
        CONVERGE,
        "the relay holds every document before the restore",
        || {
            let held = Store::open(relay.data.join("relay.sqlite"))
                .and_then(|s| s.document_ids())
                .unwrap_or_default();
            created.iter().all(|url| held.contains(&id(url)))
        },
    );
    check_copy(&backup).expect("the backup made under load passes its check");
    let in_backup = documents_in(&backup);
    assert!(
        first.iter().all(|url| in_backup.contains(&id(url))),
        "the backup holds what was synced before it"
    );
    assert!(
        created.iter().any(|url| !in_backup.contains(&id(url))),
        "the backup is older than the load's end, so the restore loses something the schools must send again"
    );

    // Restore the backup taken under load while the schools keep running.
    relay.stop();
    relay.admin_ok(&["restore", backup.to_str().unwrap()]);
    relay.start_again();
    wait_until(CONVERGE, "every school converges after the restore", || {
        if converged(&all) {
            return true;
        }
        // Speeds up schools whose watch is still waiting to reconnect.
        for school in &schools {
            let _ = school.run(&["sync", "--timeout", "20"]);
        }
        converged(&all)
    });

    // Nothing is lost at the relay either: a school joining now receives
    // every document and every edit from the relay alone. (The schools
    // held everything all along, so the wait above ends at once; they
    // keep running meanwhile, sending the relay what it lost.)
    let late = School::init(root.path(), "School 10", &relay);
    let mut with_late = all.clone();
    with_late.push(&late);
    wait_until(
        CONVERGE,
        "a school joining after the restore holds everything",
        || {
            let _ = late.run(&["sync", "--timeout", "20"]);
            converged(&with_late)
        },
    );
    drop(watchers);
}
