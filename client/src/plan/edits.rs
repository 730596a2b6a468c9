//! The commands that change a typed document. Each is one change made
//! inside `Store::change` (or, where several documents change together,
//! one `Store::transaction`), calling one function of the model, which
//! checks the document's kind inside that same change.

use automerge::{ActorId, AutoCommit};
use partnerplan_model::records::{SignatureInput, describe_signature};
use partnerplan_model::rows::{self, Placement};
use partnerplan_model::schema::Kind;
use partnerplan_model::text::short;
use partnerplan_model::when::when_text;
use partnerplan_model::{Author, ModelError, ProseEdit};
use partnerplan_model::{create, doc, edit, locate, render, review};
use partnerplan_sync::DocumentId;
use partnerplan_sync::store::Changes;

use super::args::{NewSchool, RowCommand};
use crate::error::ClientError;
use crate::school::School;

/// Who is editing: this school, and the person named with `--as` (kept
/// for later commands) or named before.
pub(super) fn author(school: &mut School, person: Option<&str>) -> Result<Author, ClientError> {
    let person = match person.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => {
            school.store.set_meta("person", p)?;
            Some(p.to_string())
        }
        None => school.store.meta("person")?,
    };
    Ok(Author {
        school: school.name()?.unwrap_or_default(),
        person,
        time: crate::status::now_unix(),
    })
}

/// The Automerge actor for this school's edits as `who`.
pub(super) fn actor(school: &School, who: &Author) -> Result<ActorId, ClientError> {
    Ok(crate::school::person_actor(
        &school.actor()?,
        who.person.as_deref(),
    ))
}

/// Refuses a document this school holds nothing of, inside the change
/// that would otherwise start it: an edit needs a document to edit.
pub(super) fn held(doc: &mut AutoCommit, id: &DocumentId) -> Result<(), ClientError> {
    if doc.get_heads().is_empty() {
        return Err(ClientError::UnknownDocument { url: id.url() });
    }
    Ok(())
}

/// Makes one change to a typed document as this school. The model's
/// edit checks the document's kind itself, inside this change.
fn change<T>(
    school: &mut School,
    who: &Author,
    url: &str,
    message: String,
    edit: impl FnOnce(&mut AutoCommit) -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let id = DocumentId::parse_url_or_id(url)?;
    school.editable_doc(&id)?;
    let actor = actor(school, who)?;
    school.store.change(&id, &actor, Some(message), |doc| {
        held(doc, &id)?;
        edit(doc)
    })
}

/// `new`: a typed document, listed in its partnership when one is named;
/// both in one transaction, so a partnership that cannot list it leaves
/// no unlisted document behind.
pub(super) fn new_document(
    school: &mut School,
    who: &Author,
    kind: &str,
    title: &str,
    partnership: Option<&str>,
) -> Result<(), ClientError> {
    school.editable()?;
    let kind = Kind::parse(kind).map_err(|e| ClientError::Other(format!("{e}.")))?;
    let partnership = partnership.map(DocumentId::parse_url_or_id).transpose()?;
    if let Some(pid) = &partnership {
        school.editable_doc(pid)?;
    }
    let id = DocumentId::random();
    let actor = actor(school, who)?;
    let partnership_url = partnership.map(|p| p.url());
    school
        .store
        .transaction(|changes| -> Result<(), ClientError> {
            changes.change(
                &id,
                &actor,
                Some(format!("created {}", kind.label().to_lowercase())),
                |doc| {
                    create::create(doc, kind, title, partnership_url.as_deref(), who)
                        .map_err(ClientError::from)
                },
            )?;
            if let Some(pid) = &partnership {
                list_in_partnership(changes, &actor, who, pid, (kind, title, &id))?;
            }
            Ok(())
        })?;
    println!("{}", id.url());
    if let Some(p) = partnership_url {
        eprintln!("Listed in the partnership {p}.");
    }
    Ok(())
}

/// Adds a row for the document `listed` (its kind, title and id) to the
/// partnership's `documents`, refusing anything but a partnership.
pub(super) fn list_in_partnership(
    changes: &mut Changes<'_>,
    actor: &ActorId,
    who: &Author,
    partnership: &DocumentId,
    (kind, title, id): (Kind, &str, &DocumentId),
) -> Result<(), ClientError> {
    let values = vec![
        ("title".to_string(), title.to_string()),
        ("kind".to_string(), kind.key().to_string()),
        ("url".to_string(), id.url()),
    ];
    let url = partnership.url();
    changes.change(
        partnership,
        actor,
        Some(format!("listed {}", kind.label().to_lowercase())),
        |doc| {
            held(doc, partnership)?;
            let listing = |error| ClientError::Listing {
                url: url.clone(),
                error,
            };
            let found = doc::writable(doc).map_err(listing)?;
            if found != Kind::Partnership {
                return Err(listing(ModelError::WrongKind {
                    found: found.label(),
                    expected: "partnership",
                    hint: "give the partnership document's URL to --partnership.".into(),
                }));
            }
            rows::add_row(doc, "documents", None, &values, &Placement::End, who)?;
            Ok(())
        },
    )
}

/// `put`: a field of the document, or of one row.
pub(super) fn put(
    school: &mut School,
    who: &Author,
    url: &str,
    field: &str,
    value: &str,
    row: Option<&str>,
) -> Result<(), ClientError> {
    let message = match row {
        Some(r) => format!("set {field} of row {} to {value}", short(r)),
        None => format!("set {field} to {value}"),
    };
    change(school, who, url, message, |doc| {
        Ok(edit::set_field(doc, row, field, value, who)?)
    })?;
    println!("Saved {field}.");
    Ok(())
}

/// `type`: typing into prose in place.
pub(super) fn type_text(
    school: &mut School,
    who: &Author,
    url: &str,
    field: &str,
    row: Option<&str>,
    how: ProseEdit,
) -> Result<(), ClientError> {
    let now = change(school, who, url, format!("typed in {field}"), |doc| {
        Ok(edit::edit_prose(doc, row, field, &how, who)?)
    })?;
    println!("Saved {field}: {now}");
    Ok(())
}

/// `plan status`: an action's status, refusing any other row.
pub(super) fn plan_status(
    school: &mut School,
    who: &Author,
    url: &str,
    action: &str,
    status: &str,
) -> Result<(), ClientError> {
    let message = format!("set status of action {} to {status}", short(action));
    change(school, who, url, message, |doc| {
        doc::expect_kind(doc, Kind::ActionPlan)?;
        let found = locate::find_row(doc, Kind::ActionPlan, action)?;
        if found.table.key != "actions" {
            return Err(ClientError::Other(format!(
                "“{action}” is an {}, not an action. `partnerplan view {url}` shows each action's id.",
                found.table.row
            )));
        }
        Ok(edit::set_field(doc, Some(action), "status", status, who)?)
    })?;
    println!("Saved the status.");
    Ok(())
}

/// `partnership add-school`.
pub(super) fn add_school(
    school: &mut School,
    who: &Author,
    new: &NewSchool,
) -> Result<(), ClientError> {
    let values = new.values();
    let message = format!("added school {}", new.name);
    let id = change(school, who, &new.url, message, |doc| {
        doc::expect_kind(doc, Kind::Partnership)?;
        Ok(rows::add_row(
            doc,
            "schools",
            None,
            &values,
            &Placement::End,
            who,
        )?)
    })?;
    println!("{}", short(&id));
    Ok(())
}

/// `resolve`: keep one of a conflict's values.
pub(super) fn resolve(
    school: &mut School,
    who: &Author,
    url: &str,
    field: &str,
    keep: &str,
    row: Option<&str>,
) -> Result<(), ClientError> {
    let message = format!("resolved {field} keeping {keep}");
    let kept = change(school, who, url, message, |doc| {
        Ok(edit::resolve(doc, row, field, keep, who)?)
    })?;
    println!("Resolved {field}: it now holds “{kept}”.");
    Ok(())
}

/// `row add|move|remove|restore`.
pub(super) fn row(
    school: &mut School,
    who: &Author,
    command: RowCommand,
) -> Result<(), ClientError> {
    match command {
        RowCommand::Add {
            url,
            table,
            values,
            within,
            place,
        } => {
            let pairs = super::args::parse_pairs(&values)?;
            let placement = place.placement().unwrap_or(Placement::End);
            let message = format!("added a row to {table}");
            let id = change(school, who, &url, message, |doc| {
                Ok(rows::add_row(
                    doc,
                    &table,
                    within.as_deref(),
                    &pairs,
                    &placement,
                    who,
                )?)
            })?;
            println!("{}", short(&id));
        }
        RowCommand::Move { url, row, place } => {
            let placement = place.placement().ok_or_else(|| {
                ClientError::Other(
                    "say where to move it: --before <row>, --after <row>, --first or --last."
                        .into(),
                )
            })?;
            let message = format!("moved row {}", short(&row));
            change(school, who, &url, message, |doc| {
                Ok(rows::move_row(doc, &row, &placement, who)?)
            })?;
            println!("Moved.");
        }
        RowCommand::Remove { url, row } => {
            let message = format!("removed row {}", short(&row));
            let label = change(school, who, &url, message, |doc| {
                Ok(rows::remove_row(doc, &row, who)?)
            })?;
            println!(
                "Removed “{label}”. `partnerplan row restore {url} {}` brings it back.",
                short(&row)
            );
        }
        RowCommand::Restore { url, row } => {
            let message = format!("restored row {}", short(&row));
            let label = change(school, who, &url, message, |doc| {
                Ok(rows::restore_row(doc, &row, who)?)
            })?;
            println!("Restored “{label}”.");
        }
    }
    Ok(())
}

/// `review record`: the document as it is now, with this school's
/// signatures, each sealed now with its key.
pub(super) fn record_review(
    school: &mut School,
    who: &Author,
    url: &str,
    (date, by, note): (&str, &str, Option<&str>),
    signatures: &[String],
) -> Result<(), ClientError> {
    let signatures = signatures
        .iter()
        .map(|s| super::args::parse_signature(s))
        .collect::<Result<Vec<_>, _>>()?;
    let signer = crate::signatures::signer(&school.store, &school.dir)?;
    let document = DocumentId::parse_url_or_id(url)?.to_string();
    let given = if signatures.is_empty() {
        review::Given::Nothing
    } else {
        review::Given::Signed {
            signer: &signer,
            document: &document,
            signatures: &signatures,
        }
    };
    let message = format!("recorded the review of {date}");
    let id = change(school, who, url, message, |doc| {
        Ok(review::record(doc, date, by, note, given, who)?)
    })?;
    println!("{}", short(&id));
    Ok(())
}

/// `review sign`: this school signs now, sealed with its key, for the
/// document as it is now; with `--date`, a signature given on paper is
/// transcribed instead (still only this school's).
pub(super) fn sign_review(
    school: &mut School,
    who: &Author,
    url: &str,
    which: &str,
    input: SignatureInput,
) -> Result<(), ClientError> {
    let signer = crate::signatures::signer(&school.store, &school.dir)?;
    let document = DocumentId::parse_url_or_id(url)?.to_string();
    let on_paper = input.date.as_deref().is_some_and(|d| !d.trim().is_empty());
    if on_paper {
        let named = input.school.trim();
        if !named.is_empty() && !signer.is(named) {
            return Err(ModelError::NotYourSchool {
                yours: signer.school.clone(),
                named: named.to_string(),
            }
            .into());
        }
        let input = SignatureInput {
            school: signer.school.clone(),
            ..input
        };
        let message = format!("transcribed a signature given on paper to review {which}");
        let signature = change(school, who, url, message, |doc| {
            Ok(review::transcribe(doc, which, &input, who)?)
        })?;
        println!(
            "Transcribed from paper: {}, dated {}, for version {}. Partners see it as transcribed, not as signed here.",
            describe_signature(&signature),
            when_text(&signature.date),
            render::version(&signature.heads)
        );
        return Ok(());
    }
    let (signature, review_date) =
        change(school, who, url, format!("signed review {which}"), |doc| {
            let signature = review::sign(doc, &document, which, &input, &signer, who)?;
            let (_, found) = partnerplan_model::records::find(doc, which)?;
            Ok((signature, found.date))
        })?;
    println!(
        "Signed by {} at {}, for the review of {}, version {}.",
        describe_signature(&signature),
        render::signed_when(&signature),
        when_text(&review_date),
        render::version(&signature.heads)
    );
    Ok(())
}

/// `review withdraw`: the review stays, marked withdrawn by whom and when.
pub(super) fn withdraw_review(
    school: &mut School,
    who: &Author,
    url: &str,
    which: &str,
    reason: Option<&str>,
) -> Result<(), ClientError> {
    // The message names the review by its date, which `find` gives inside
    // the change; it is written after the edit, so read it first.
    let (_, doc) = crate::documents::load(school, url)?;
    let (_, found) = partnerplan_model::records::find(&doc, which)?;
    let message = format!("withdrew the review of {}", when_text(&found.date));
    let withdrawn = change(school, who, url, message, |doc| {
        Ok(review::withdraw(doc, which, reason, who)?)
    })?;
    println!(
        "Withdrew the review of {}. It stays in the document and its history, marked withdrawn by {}.",
        when_text(&withdrawn.date),
        who.describe()
    );
    Ok(())
}

/// `comment`: one comment to a partnership this school views, in its own
/// comments document for it (`crate::comments::write`).
pub(super) fn comment(
    school: &mut School,
    who: &Author,
    partnership: &str,
    given: [(&str, Option<String>); 4],
) -> Result<(), ClientError> {
    let partnership = crate::comments::viewed(&school.store, partnership)?;
    let mut values = Vec::new();
    for (key, value) in given {
        let value = match (key, value.map(|v| v.trim().to_string())) {
            (_, Some(v)) if !v.is_empty() => v,
            ("date", _) => partnerplan_model::when::date_from_unix(who.time).to_string(),
            ("officer", _) => who.person.clone().ok_or_else(|| {
                ClientError::Other(
                    "say who is writing the comment: --officer \"Name\" (or --as \"Name\"); nothing was saved.".into(),
                )
            })?,
            ("concerning", _) => crate::comments::THE_PARTNERSHIP.into(),
            _ => {
                return Err(ClientError::Other(
                    "the comment is empty; nothing was saved.".into(),
                ));
            }
        };
        values.push((key.to_string(), value));
    }
    let base = school.actor()?;
    let id = crate::comments::write(&mut school.store, &base, &partnership, who, &values)?;
    println!("{}", id.url());
    Ok(())
}
