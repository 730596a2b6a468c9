//! The commands that read a typed document: view it (now, or as a
//! review signed it), its conflicts, reviews, history and what changed
//! since a review, exports; and `partnership open-all`, which reads a
//! partnership to mark its documents for fetching. Each reads the
//! store's assembled `Automerge` directly.

use std::path::PathBuf;

use automerge::Automerge;
use partnerplan_model::diff::diff;
use partnerplan_model::history;
use partnerplan_model::plan_file;
use partnerplan_model::records;
use partnerplan_model::render;
use partnerplan_model::schema::Kind;
use partnerplan_model::signing::{Verification, verify};
use partnerplan_model::when::when_text;
use partnerplan_model::{DocView, read};
use partnerplan_sync::DocumentId;
use serde_json::json;

use super::terminal::{
    describe_conflict, print_changes, print_history, print_json, print_review, terminal,
};
use crate::documents;
use crate::error::ClientError;
use crate::school::School;

/// The document as this school holds it, and as the model reads it.
fn load(school: &School, url: &str) -> Result<(DocumentId, Automerge, DocView), ClientError> {
    let (id, doc) = documents::load(school, url)?;
    let view = read::read(&doc)?;
    Ok((id, doc, view))
}

/// `view`: as it is, or as a review signed it.
pub(super) fn view(
    school: &School,
    url: &str,
    review: Option<&str>,
    removed: bool,
    json: bool,
) -> Result<(), ClientError> {
    let (id, doc, mut view) = load(school, url)?;
    let mut heading = None;
    if let Some(r) = review {
        let (_, found) = records::find(&doc, r)?;
        view = found.signed_view(&doc)?.1;
        heading = Some(format!(
            "As signed at the review of {} by {} (version {}). Later edits are not shown.",
            when_text(&found.date),
            found.by,
            render::version(&found.heads)
        ));
    }
    if json {
        let mut value = view.to_json();
        value["url"] = json!(id.url());
        print_json(value);
    } else {
        if let Some(h) = heading {
            println!("{h}\n");
        }
        print!("{}", terminal(&id, &view, removed));
    }
    Ok(())
}

/// `partnership open-all`: every document the partnership lists, marked
/// for fetching at the next sync.
pub(super) fn open_all(school: &mut School, url: &str) -> Result<(), ClientError> {
    let (_, _, view) = load(school, url)?;
    if view.kind != Kind::Partnership {
        return Err(ClientError::Other(format!(
            "{url} is a {}, not a partnership: give the partnership document's URL.",
            view.kind.label().to_lowercase()
        )));
    }
    let mut count = 0;
    for row in view.live("documents") {
        let Some(link) = row.field("url").map(|f| f.text.clone()) else {
            continue;
        };
        if link.is_empty() {
            continue;
        }
        let id = documents::open(school, &link)?;
        println!("{}  {}", id.url(), row.label());
        count += 1;
    }
    println!(
        "{count} document{} will be fetched at the next sync.",
        if count == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `conflicts`.
pub(super) fn conflicts(school: &School, url: &str, json: bool) -> Result<(), ClientError> {
    let (id, _, view) = load(school, url)?;
    let conflicts = view.conflicts();
    if json {
        print_json(json!({"url": id.url(), "conflicts": conflicts}));
    } else if conflicts.is_empty() {
        println!("No conflicts: every field holds one value.");
    } else {
        for c in conflicts {
            println!("{}", describe_conflict(&c));
        }
    }
    Ok(())
}

/// `review list`: every review, each signature checked against the
/// schools' keys.
pub(super) fn reviews(school: &School, url: &str, json: bool) -> Result<(), ClientError> {
    let (id, _, view) = load(school, url)?;
    let keys = crate::signatures::known_keys(&school.store, &school.dir)?;
    let document = id.to_string();
    let checked: Vec<Vec<Verification>> = view
        .reviews
        .iter()
        .map(|r| {
            r.signatures
                .iter()
                .map(|s| verify(&document, r, s, &keys))
                .collect()
        })
        .collect();
    if json {
        let reviews: Vec<serde_json::Value> = view
            .reviews
            .iter()
            .zip(&checked)
            .map(|(r, verifications)| {
                let mut value = json!(r);
                for (s, (signature, verification)) in value["signatures"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .zip(r.signatures.iter().zip(verifications))
                {
                    let mut v = json!(verification);
                    v["sentence"] = json!(verification.sentence(signature));
                    s["verification"] = v;
                }
                value
            })
            .collect();
        print_json(json!({"url": id.url(), "reviews": reviews}));
    } else if view.reviews.is_empty() {
        println!(
            "No reviews yet. Record one with `partnerplan review record {url} --date … --by …`."
        );
    } else {
        for (r, verifications) in view.reviews.iter().zip(&checked) {
            print_review(r, verifications);
        }
    }
    Ok(())
}

/// `history`: every change, with its school, person and time.
pub(super) fn history(school: &School, url: &str, json: bool) -> Result<(), ClientError> {
    let (id, doc) = documents::load(school, url)?;
    let entries = history::history(&doc, &[], &school.store.actor_names()?);
    if json {
        print_json(json!({"url": id.url(), "history": entries}));
    } else {
        print_history(&entries);
    }
    Ok(())
}

/// `changes --since`: what differs from the version a review signed, and
/// the changes made since.
pub(super) fn changes(
    school: &School,
    url: &str,
    since: &str,
    json: bool,
) -> Result<(), ClientError> {
    let (id, doc, now_view) = load(school, url)?;
    let (_, found) = records::find(&doc, since)?;
    let (heads, then) = found.signed_view(&doc)?;
    let differences = diff(&then, &now_view);
    let entries = history::history(&doc, &heads, &school.store.actor_names()?);
    if json {
        print_json(json!({
            "url": id.url(),
            "review": found,
            "differences": differences,
            "history": entries,
        }));
    } else {
        print_changes(&found, &differences, &entries);
    }
    Ok(())
}

/// `export`: markdown, html, csv, or the import file's json.
pub(super) fn export(
    school: &School,
    url: &str,
    format: &str,
    output: Option<PathBuf>,
) -> Result<(), ClientError> {
    let (_, _, view) = load(school, url)?;
    if view.schema_version > partnerplan_model::SCHEMA_VERSION {
        eprintln!(
            "Note: this document was written by a newer partnerplan (schema version {}; this one knows up to {}), so the export may leave out what that version added. Update partnerplan for a complete export.",
            view.schema_version,
            partnerplan_model::SCHEMA_VERSION
        );
    }
    let text = match format.to_lowercase().as_str() {
        "markdown" | "md" => render::markdown(&view),
        "html" => render::html(&view),
        "csv" => render::csv(&view),
        "json" => plan_file::export(&view)?.to_json() + "\n",
        other => {
            return Err(ClientError::Other(format!(
                "“{other}” is not an export format: use markdown, html, csv or json."
            )));
        }
    };
    match output {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| {
                ClientError::Other(format!(
                    "could not write {}: {e}. Check the folder exists and can be written to.",
                    path.display()
                ))
            })?;
            println!("Wrote {}.", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
