//! `partnerplan-model-bench`: how long a typed edit and a full read of
//! the 000 action plan take, from the library call to the SQLite commit
//! (edit) and to a complete `DocView` (read).
//!
//! Two paths are measured on the same store:
//! - the command line's: each call reads the document from SQLite
//!   (`Store::change` assembles it once; a read assembles an `Automerge`
//!   and the model reads it in place);
//! - the app's, a warm long-running process: the document stays in
//!   memory between calls (`app::library::Library`).
//!
//! The plan is imported from `tests/fixtures/action-plan-000.json` into a
//! fresh store in a temporary folder; each path makes `--edits` edits,
//! alternating a status change and a sentence appended to an action's
//! notes, then `--reads` full reads. Prints the median and 95th
//! percentile of each, in milliseconds. See BENCHMARKS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automerge::{ActorId, AutoCommit};
use clap::Parser;
use partnerplan_client::app::library::Library;
use partnerplan_model::ModelError;
use partnerplan_model::plan_file::{self, PlanFile};
use partnerplan_model::{Author, ProseEdit, edit, read};
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

fn edit_one(d: &mut AutoCommit, i: usize, row: &str, who: &Author) -> Result<(), ModelError> {
    let statuses = ["red", "amber", "green", "done"];
    if i.is_multiple_of(2) {
        edit::set_field(d, Some(row), "status", statuses[i % 4], who)
    } else {
        edit::edit_prose(
            d,
            Some(row),
            "notes",
            &ProseEdit::Append(format!(" Checked {i}.")),
            who,
        )
        .map(|_| ())
    }
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
    let view = read::read(&store.load_document(&id).unwrap().unwrap()).unwrap();
    let actions: Vec<String> = view
        .rows()
        .into_iter()
        .filter(|(_, row)| row.field("status").is_some())
        .map(|(_, row)| row.id.clone())
        .collect();
    assert!(!actions.is_empty(), "the fixture has actions");

    // The command line's path.
    let mut edit_times = Vec::with_capacity(args.edits);
    for i in 0..args.edits {
        let row = &actions[i % actions.len()];
        let start = Instant::now();
        store
            .change(&id, &actor, Some("bench".into()), |d| {
                edit_one(d, i, row, &who).map_err(Error::from)
            })
            .unwrap();
        edit_times.push(start.elapsed());
    }
    let mut read_times = Vec::with_capacity(args.reads);
    for _ in 0..args.reads {
        let start = Instant::now();
        let view = read::read(&store.load_document(&id).unwrap().unwrap()).unwrap();
        std::hint::black_box(view);
        read_times.push(start.elapsed());
    }
    println!(
        "command line, typed edit (call to commit): {}",
        summary(&mut edit_times)
    );
    println!(
        "command line, full read into a DocView:    {}",
        summary(&mut read_times)
    );
    drop(store);

    // The app's path: a warm process that keeps the document in memory.
    let library = Library::open(dir.path()).unwrap();
    library.read(&id).unwrap().unwrap();
    let mut edit_times = Vec::with_capacity(args.edits);
    for i in 0..args.edits {
        let row = &actions[i % actions.len()];
        let start = Instant::now();
        library
            .edit(&id, &actor, &who, None, "bench".into(), |d| {
                edit_one(d, i, row, &who)
            })
            .unwrap();
        edit_times.push(start.elapsed());
    }
    let mut read_times = Vec::with_capacity(args.reads);
    for _ in 0..args.reads {
        let start = Instant::now();
        let view = library.read(&id).unwrap().unwrap();
        std::hint::black_box(view);
        read_times.push(start.elapsed());
    }
    println!(
        "app, typed edit (call to commit):          {}",
        summary(&mut edit_times)
    );
    println!(
        "app, full read into a DocView:             {}",
        summary(&mut read_times)
    );
}

fn summary(times: &mut [Duration]) -> String {
    if times.is_empty() {
        return "not measured (0 runs)".into();
    }
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
