//! `phases_bench`: where a command line call and an app page spend
//! their time on the 000 plan, phase by phase, in one process (so no
//! process start). See BENCHMARKS.md ("Typed edits and reads of the 000
//! plan, before and after the structure work" and "The school's app, on
//! the 000 plan").
//!
//!   phases_bench DATA_DIR PLAN_URL [--runs N]
//!
//! DATA_DIR is a school's data directory holding the imported plan (it is
//! edited: use a copy). Command line phases, each timed alone:
//! `School::open` (SQLite open, `quick_check`, the school's name), the
//! document assembled from its chunks, the full read, the text `view`
//! prints and the JSON `view --json` prints, `status`'s report, and a
//! status edit as `plan status` makes it (`Store::change`: load, edit,
//! commit). App phases, on a warm `Library`: the read, the marks of what
//! changed since the last signature (`versions::since_signed`: the signed
//! version rebuilt with `fork_at`, read and diffed), and rendering the
//! page's body to HTML.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use partnerplan_client::app::library::Library;
use partnerplan_client::app::{pages, versions};
use partnerplan_client::school::{School, person_actor};
use partnerplan_client::{documents, plan, status};
use partnerplan_model::{Author, diff, edit, read};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: phases_bench DATA_DIR PLAN_URL [--runs N]"),
    );
    let url = args
        .next()
        .expect("usage: phases_bench DATA_DIR PLAN_URL [--runs N]");
    let runs: usize = match (args.next().as_deref(), args.next()) {
        (Some("--runs"), Some(n)) => n.parse().expect("--runs takes a number"),
        _ => 50,
    };

    let line = |name: &str, f: &mut dyn FnMut()| {
        f();
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        println!("{name:<48} {}", summary(&mut times));
    };

    println!("command line phases ({runs} runs each, after one warm-up):");
    line("open the school (SQLite open + quick_check)", &mut || {
        black_box(School::open(&dir).unwrap());
    });
    let school = School::open(&dir).unwrap();
    line("assemble the document from its chunks", &mut || {
        black_box(documents::load(&school, &url).unwrap());
    });
    let (id, doc) = documents::load(&school, &url).unwrap();
    line("read it into a DocView", &mut || {
        black_box(read::read(&doc).unwrap());
    });
    let view = read::read(&doc).unwrap();
    line("view: the text for the terminal", &mut || {
        black_box(plan::terminal(&id, &view, false));
    });
    line("view --json: the JSON text", &mut || {
        black_box(serde_json::to_string_pretty(&view.to_json()).unwrap());
    });
    line("status: the report (every document)", &mut || {
        black_box(status::status(&school).unwrap());
    });
    let rows: Vec<String> = view
        .rows()
        .into_iter()
        .filter(|(_, row)| row.field("status").is_some())
        .map(|(_, row)| row.id.clone())
        .collect();
    let actor = person_actor(&school.actor().unwrap(), Some("Ann Head"));
    let who = Author {
        school: "Bank Road Infant and Nursery School".into(),
        person: Some("Ann Head".into()),
        time: 1_700_000_000,
    };
    drop(school);
    let mut school = School::open(&dir).unwrap();
    let statuses = ["red", "amber", "green", "done"];
    let mut i = 0usize;
    line(
        "plan status: Store::change (load, edit, commit)",
        &mut || {
            i += 1;
            let row = &rows[i % rows.len()];
            school
                .store
                .change(&id, &actor, Some("set status".into()), |d| {
                    edit::set_field(d, Some(row), "status", statuses[(i / rows.len()) % 4], &who)
                        .map_err(Box::<dyn std::error::Error>::from)
                })
                .unwrap();
        },
    );
    drop(school);

    println!("app phases, warm ({runs} runs each, after one warm-up):");
    let library = Library::open(&dir).unwrap();
    line("read it into a DocView (Library::read)", &mut || {
        black_box(library.read(&id).unwrap().unwrap());
    });
    let (view, heads) = library.read(&id).unwrap().unwrap();
    line(
        "since_signed, first time (fork_at, read, diff)",
        &mut || {
            let fresh = versions::SignedViews::default();
            black_box(
                library
                    .with_doc(&id, |d| versions::since_signed(d.document(), &view, &fresh))
                    .unwrap(),
            );
        },
    );
    let kept = versions::SignedViews::default();
    line("since_signed, signed version kept (diff)", &mut || {
        black_box(
            library
                .with_doc(&id, |d| versions::since_signed(d.document(), &view, &kept))
                .unwrap(),
        );
    });
    let (_, signed_heads, _) = versions::last_signed(&view).expect("the 000 plan is signed");
    line("  of which fork_at the signed version", &mut || {
        black_box(
            library
                .with_doc(&id, |d| d.document().fork_at(&signed_heads).unwrap())
                .unwrap(),
        );
    });
    let signed = library
        .with_doc(&id, |d| read::read_at(d.document(), &signed_heads).unwrap())
        .unwrap()
        .unwrap();
    line("  of which the diff of the two views", &mut || {
        black_box(diff::diff(&signed, &view));
    });
    let since = library
        .with_doc(&id, |d| versions::since_signed(d.document(), &view, &kept))
        .unwrap()
        .flatten();
    let id_text = id.to_string();
    let page = pages::DocPage {
        id: &id_text,
        view: &view,
        heads: &heads,
        editable: true,
        school: "Bank Road Infant and Nursery School",
        person: Some("Ann Head"),
        since: since.as_ref(),
        version: None,
        set_at: &Default::default(),
        keys: &Default::default(),
    };
    line(
        "render the body to HTML (pages::document_body)",
        &mut || {
            black_box(pages::document_body(&page).into_string());
        },
    );
    println!(
        "  (body as rendered: {} bytes)",
        pages::document_body(&page).into_string().len()
    );
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
