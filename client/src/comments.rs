//! The local authority's comments to a partnership it views, written by
//! the command line (`partnerplan comment`) and the app alike. A comment
//! goes into the school's own comments document for that partnership,
//! made with the first comment; the document is kept as claimed for that
//! partnership (the store's `claims`) in the same transaction, so the
//! sync names it to the relay before its first changes, and the relay
//! lets only this school write it and only that partnership read it.
//! Nothing is written into the partnership's own documents.

use automerge::ActorId;
use partnerplan_model::rows::{self, Placement};
use partnerplan_model::{Author, Kind, create, edit};
use partnerplan_sync::{DocumentId, Store};

use crate::error::ClientError;
use crate::school::person_actor;
use crate::sync::{KnownPartnership, META_PARTNERSHIPS};

/// What a comment is about when it names none of the partnership's
/// documents.
pub const THE_PARTNERSHIP: &str = "The partnership as a whole";

/// The partnership this school views, by name (any case) or relay id.
pub fn viewed(store: &Store, name_or_id: &str) -> Result<KnownPartnership, ClientError> {
    let partnerships = KnownPartnership::read(store.meta(META_PARTNERSHIPS)?.as_deref());
    let wanted = name_or_id.trim();
    let found = partnerships
        .iter()
        .find(|p| p.id == wanted || p.name.eq_ignore_ascii_case(wanted));
    match found {
        Some(p) if p.viewer() => Ok(p.clone()),
        Some(p) => Err(ClientError::Other(format!(
            "your school is a member of {}, so it writes in the partnership's own documents rather than comments to it; nothing was saved.",
            p.name
        ))),
        None => {
            let names: Vec<&str> = partnerships
                .iter()
                .filter(|p| p.viewer())
                .map(|p| p.name.as_str())
                .collect();
            Err(ClientError::Other(if names.is_empty() {
                format!(
                    "your school views no partnership called “{wanted}”, so nothing was saved. Sync first if the lead school has just added you."
                )
            } else {
                format!(
                    "your school views no partnership called “{wanted}”, so nothing was saved. It views: {}.",
                    names.join(", ")
                )
            }))
        }
    }
}

/// This school's comments document to `partnership` (by id), if it made one.
pub fn document_for(store: &Store, partnership: &str) -> Result<Option<DocumentId>, ClientError> {
    Ok(store
        .claims()?
        .into_iter()
        .find(|(_, p)| p == partnership)
        .map(|(id, _)| id))
}

/// Writes one comment (`values`: the comment row's fields by key: date,
/// officer, concerning, text) to `partnership`, which this school views.
/// Returns the comments document.
pub fn write(
    store: &mut Store,
    base: &ActorId,
    partnership: &KnownPartnership,
    who: &Author,
    values: &[(String, String)],
) -> Result<DocumentId, ClientError> {
    if !partnership.viewer() {
        return Err(ClientError::Other(format!(
            "your school is a member of {}, so it writes in the partnership's own documents rather than comments to it; nothing was saved.",
            partnership.name
        )));
    }
    let actor = person_actor(base, who.person.as_deref());
    let existing = document_for(store, &partnership.id)?;
    let id = existing.unwrap_or_else(DocumentId::random);
    let title = format!("{}'s comments to {}", who.school, partnership.name);
    let message = format!("commented to {}", partnership.name);
    store.transaction(|changes| -> Result<(), ClientError> {
        if existing.is_none() {
            changes.claim(&id, &partnership.id)?;
            changes.change(&id, &actor, Some(title.clone()), |doc| {
                create::create(doc, Kind::Comments, &title, None, who).map_err(ClientError::from)
            })?;
            for (key, value) in [
                ("localAuthority", who.school.as_str()),
                ("partnership", partnership.name.as_str()),
            ] {
                changes.change(&id, &actor, None, |doc| {
                    edit::set_field(doc, None, key, value, who).map_err(ClientError::from)
                })?;
            }
        }
        changes.change(&id, &actor, Some(message.clone()), |doc| {
            rows::add_row(doc, "comments", None, values, &Placement::End, who)
                .map(|_| ())
                .map_err(ClientError::from)
        })
    })?;
    Ok(id)
}
