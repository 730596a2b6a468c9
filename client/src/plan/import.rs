//! `import`: an action plan file, or a documents file (any kinds: the
//! progress reports and outcomes a local authority reads), with the
//! partnership it describes or the one named by `--partnership`, written
//! in one store transaction, so a file with any problem writes nothing.

use std::path::Path;

use partnerplan_model::documents_file::{self, DocumentsFile};
use partnerplan_model::plan_file::{self, PlanFile};
use partnerplan_model::schema::Kind;
use partnerplan_model::{Author, ModelError};
use partnerplan_sync::DocumentId;

use super::edits::{actor, held, list_in_partnership};
use crate::error::ClientError;
use crate::school::School;

/// Reads, checks and imports `file`, an action plan file or a documents
/// file (told apart by its `format`); prints the new documents' URLs.
pub(super) fn import_file(
    school: &mut School,
    who: &Author,
    file: &Path,
    partnership: Option<&str>,
) -> Result<(), ClientError> {
    school.editable()?;
    if let Some(pid) = partnership {
        // Listing in an existing partnership changes it.
        school.editable_doc(&DocumentId::parse_url_or_id(pid)?)?;
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        ClientError::Other(format!(
            "could not read {}: {e}. Check the path.",
            file.display()
        ))
    })?;
    let in_file = |e: ModelError| ClientError::NotImported {
        reason: format!("{}: {}", file.display(), sentence(&e.to_string())),
    };
    let format = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_string));
    if format.as_deref() == Some(documents_file::FORMAT) {
        let documents = DocumentsFile::from_json(&text).map_err(in_file)?;
        return import_documents(school, who, &documents, partnership, &in_file);
    }
    let plan = PlanFile::from_json(&text).map_err(in_file)?;
    let listed_in = partnership.map(DocumentId::parse_url_or_id).transpose()?;
    let actor = actor(school, who)?;
    let id = DocumentId::random();
    let written = school.store.transaction(|changes| {
        // The partnership first, so the plan can name it.
        let partnership_id = match (listed_in, &plan.partnership) {
            (Some(pid), _) => Some(pid),
            (None, Some(p)) => {
                let pid = DocumentId::random();
                changes.change(
                    &pid,
                    &actor,
                    Some("imported the partnership".into()),
                    |doc| plan_file::import_partnership(doc, p, who).map_err(in_file),
                )?;
                Some(pid)
            }
            (None, None) => None,
        };
        let partnership_url = partnership_id.map(|p| p.url());
        changes.change(
            &id,
            &actor,
            Some("imported the action plan".into()),
            |doc| {
                plan_file::import_content(doc, &plan, partnership_url.as_deref(), who)
                    .map_err(in_file)
            },
        )?;
        // A second change, so the reviews sign the version just imported.
        if !plan.reviews.is_empty() {
            changes.change(&id, &actor, Some("imported the reviews".into()), |doc| {
                held(doc, &id)?;
                plan_file::import_reviews(doc, &plan, who)
                    .map(|_| ())
                    .map_err(in_file)
            })?;
        }
        if let Some(pid) = &partnership_id {
            list_in_partnership(
                changes,
                &actor,
                who,
                pid,
                (Kind::ActionPlan, &plan.title, &id),
            )?;
        }
        Ok::<_, ClientError>(partnership_id)
    });
    let partnership_id = written.map_err(|error| match error {
        ClientError::NotImported { .. } => error,
        other => ClientError::NotImported {
            reason: sentence(&other.to_string()),
        },
    })?;
    if let (Some(pid), None) = (partnership_id, partnership) {
        println!("Partnership: {}", pid.url());
    }
    println!("Action plan: {}", id.url());
    Ok(())
}

/// Writes a documents file: its partnership document first (unless the
/// documents go into the existing one `partnership` names), then each
/// other document, listed in the partnership.
fn import_documents(
    school: &mut School,
    who: &Author,
    file: &DocumentsFile,
    partnership: Option<&str>,
    in_file: &dyn Fn(ModelError) -> ClientError,
) -> Result<(), ClientError> {
    let listed_in = partnership.map(DocumentId::parse_url_or_id).transpose()?;
    if listed_in.is_some() && file.partnership().is_some() {
        return Err(ClientError::NotImported {
            reason: "the file describes its own partnership, so it cannot go into another: import it without --partnership, or take the partnership document out of the file.".into(),
        });
    }
    let actor = actor(school, who)?;
    let index_of = |entry: &documents_file::DocumentEntry| {
        file.documents
            .iter()
            .position(|d| std::ptr::eq(d, entry))
            .unwrap_or(0)
    };
    let written = school.store.transaction(|changes| {
        let mut made: Vec<(Kind, String, DocumentId)> = Vec::new();
        let partnership_id = match (listed_in, file.partnership()) {
            (Some(pid), _) => Some(pid),
            (None, Some(entry)) => {
                let pid = DocumentId::random();
                changes.change(
                    &pid,
                    &actor,
                    Some("imported the partnership".into()),
                    |doc| {
                        documents_file::write_document(doc, index_of(entry), entry, None, who)
                            .map_err(in_file)
                    },
                )?;
                made.push((Kind::Partnership, entry.title.clone(), pid));
                Some(pid)
            }
            (None, None) => None,
        };
        let partnership_url = partnership_id.map(|p| p.url());
        for entry in file.others() {
            let kind = entry.kind().map_err(in_file)?;
            let id = DocumentId::random();
            changes.change(
                &id,
                &actor,
                Some(format!("imported the {}", kind.label().to_lowercase())),
                |doc| {
                    documents_file::write_document(
                        doc,
                        index_of(entry),
                        entry,
                        partnership_url.as_deref(),
                        who,
                    )
                    .map_err(in_file)
                },
            )?;
            if let Some(pid) = &partnership_id {
                list_in_partnership(changes, &actor, who, pid, (kind, &entry.title, &id))?;
            }
            made.push((kind, entry.title.clone(), id));
        }
        Ok::<_, ClientError>(made)
    });
    let made = written.map_err(|error| match error {
        ClientError::NotImported { .. } => error,
        other => ClientError::NotImported {
            reason: sentence(&other.to_string()),
        },
    })?;
    for (kind, title, id) in made {
        println!("{}: {} ({title})", kind.label(), id.url());
    }
    Ok(())
}

/// Ends a message with a full stop if it has none.
fn sentence(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with(['.', '!', '?']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}
