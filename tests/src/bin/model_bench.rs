//! `partnerplan-model-bench`: how long a typed edit and a full read of
//! the 000 action plan take in a warm process, from the library call to
//! the SQLite commit (edit) and to a complete `DocView` (read).
//!
//! The plan is imported from `tests/fixtures/action-plan-000.json` into a
//! fresh store in a temporary folder; then `--edits` edits alternate a
//! status change and a sentence appended to an action's notes, and
//! `--reads` full reads follow. Prints the median and 95th percentile of
//! each, in milliseconds. See BENCHMARKS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automerge::{ActorId, AutoCommit};
use clap::Parser;
use partnerplan_model::doc::{self, Author, ProseEdit};
use partnerplan_model::plan_file::{self, PlanFile};
use partnerplan_sync::{DocumentId, Store};

type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 400)]
    edits: usize,
    #[arg(long, default_value_t = 400)]
    reads: usize,
    #[arg(long, default_value = "tests/fixtures/action-plan-000.json")]
    fixture: PathBuf,
}

fn author() -> Author {
    Author {
        school: "Hilltop Primary".into(),
        person: Some("Ann Head".into()),
        time: 1_700_000_000,
    }
}

/// Today's path: the CLI loads the document to learn its kind, then
/// `Store::change` loads it again to edit it.
fn load(store: &Store, id: &DocumentId) -> AutoCommit {
    let doc = store.load_document(id).unwrap().unwrap();
    AutoCommit::load(&doc.save()).unwrap()
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("school.sqlite")).unwrap();
    let plan = PlanFile::from_json(&std::fs::read_to_string(&args.fixture).unwrap()).unwrap();
    let who = author();
    let actor = ActorId::random();
    let id = DocumentId::random();
    store
        .change(&id, &actor, None, |d| {
            plan_file::import_content(d, &plan, None, &who).map_err(Error::from)
        })
        .unwrap();
    store
        .change(&id, &actor, None, |d| {
            plan_file::import_reviews(d, &plan, &who)
                .map(|_| ())
                .map_err(Error::from)
        })
        .unwrap();
    let view = doc::read(&load(&store, &id)).unwrap();
    let actions: Vec<String> = view
        .rows()
        .into_iter()
        .filter(|(_, row)| row.field("status").is_some())
        .map(|(_, row)| row.id.clone())
        .collect();
    assert!(!actions.is_empty(), "the fixture has actions");

    let statuses = ["red", "amber", "green", "done"];
    let mut edit_times = Vec::with_capacity(args.edits);
    for i in 0..args.edits {
        let row = &actions[i % actions.len()];
        let start = Instant::now();
        let existing = load(&store, &id);
        doc::kind_of(&existing).unwrap();
        store
            .change(&id, &actor, Some("bench".into()), |d| {
                if i % 2 == 0 {
                    doc::set_field(d, Some(row), "status", statuses[i % 4], &who)
                } else {
                    doc::edit_prose(
                        d,
                        Some(row),
                        "notes",
                        &ProseEdit::Append(format!(" Checked {i}.")),
                        &who,
                    )
                    .map(|_| ())
                }
                .map_err(Error::from)
            })
            .unwrap();
        edit_times.push(start.elapsed());
    }

    let mut read_times = Vec::with_capacity(args.reads);
    for _ in 0..args.reads {
        let start = Instant::now();
        let view = doc::read(&load(&store, &id)).unwrap();
        std::hint::black_box(view);
        read_times.push(start.elapsed());
    }

    println!("typed edit (call to commit): {}", summary(&mut edit_times));
    println!("full read into a DocView:    {}", summary(&mut read_times));
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.2} ms, p95 {:.2} ms ({} runs)",
        ms(at(0.5)),
        ms(at(0.95)),
        times.len()
    )
}
