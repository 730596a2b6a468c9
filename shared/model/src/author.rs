//! Who makes a change, and the record of it: every typed edit ends by
//! noting its author in the document's `actors` map, so every reader can
//! say which school and person made each change.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, Value};

use crate::error::ModelError;
use crate::records::ActorEntry;

/// Who makes an edit, and when (seconds since 1970): kept in the
/// document's `actors` map and in removal records.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    pub school: String,
    pub person: Option<String>,
    pub time: i64,
}

impl Author {
    pub fn describe(&self) -> String {
        match &self.person {
            Some(person) => format!("{person} ({})", self.school),
            None => self.school.clone(),
        }
    }
}

/// Records this school's actor in the document's `actors` map, so every
/// reader can say which school and person made each change.
pub fn note_author(doc: &mut AutoCommit, author: &Author) -> Result<(), ModelError> {
    let actor = doc.get_actor().to_hex_string();
    let entry = ActorEntry {
        school: author.school.clone(),
        person: author.person.clone(),
    };
    let actors = match doc.get(ROOT, "actors")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => doc.put_object(ROOT, "actors", ObjType::Map)?,
    };
    let known: Option<ActorEntry> = autosurgeon::hydrate_prop(doc, &actors, actor.as_str()).ok();
    if known.as_ref() != Some(&entry) {
        // A person who edits without naming themselves keeps the name
        // given before.
        let entry = match (known, entry) {
            (Some(old), new) if new.person.is_none() && old.school == new.school => old,
            (_, new) => new,
        };
        autosurgeon::reconcile_prop(doc, &actors, actor.as_str(), &entry)?;
    }
    Ok(())
}
