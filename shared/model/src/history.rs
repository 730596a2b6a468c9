//! Who changed what and when: each Automerge change with its actor mapped
//! to its school, as the relay named it (the relay binds every actor to
//! the one school that may send changes under it), and to the person the
//! actor's own entry in the document's `actors` map names; and its message
//! (every change the model makes says what it did). Where the relay has
//! not named an actor (a change not yet shared), the actor's own entry
//! names the school.

use std::collections::BTreeMap;

use automerge::{Automerge, ChangeHash};
use serde::Serialize;

use crate::records;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub hash: String,
    /// Seconds since 1970, as the editing school's clock said.
    pub time: i64,
    pub actor: String,
    pub school: Option<String>,
    pub person: Option<String>,
    pub message: Option<String>,
}

impl HistoryEntry {
    pub fn who(&self) -> String {
        match (&self.person, &self.school) {
            (Some(p), Some(s)) => format!("{p} ({s})"),
            (None, Some(s)) => s.clone(),
            (Some(p), None) => p.clone(),
            (None, None) => format!("actor {:.8}", self.actor),
        }
    }
}

/// Which school each actor belongs to, as the relay named them: actor id
/// in hex → the school's name in the relay's register.
pub type RelayNames = BTreeMap<String, String>;

/// Who made a document's changes: the one way actors are named, for
/// history and for "last changed by".
pub struct Authors<'a> {
    entries: BTreeMap<String, records::ActorEntry>,
    relay_names: &'a RelayNames,
}

impl<'a> Authors<'a> {
    pub fn of(doc: &impl records::Readable, relay_names: &'a RelayNames) -> Authors<'a> {
        Authors {
            entries: records::actors(doc),
            relay_names,
        }
    }

    /// The school (the relay's name for it first) and person of an actor
    /// given in hex.
    pub fn of_actor(&self, actor: &str) -> (Option<String>, Option<String>) {
        let entry = self.entries.get(actor);
        let school = self
            .relay_names
            .get(actor)
            .cloned()
            .or_else(|| entry.map(|e| e.school.clone()));
        (school, entry.and_then(|e| e.person.clone()))
    }
}

/// Every change, oldest first; with `since`, only changes that the
/// version at those heads did not have. Schools are named by
/// `relay_names` first (see the module documentation).
pub fn history(
    doc: &Automerge,
    since: &[ChangeHash],
    relay_names: &RelayNames,
) -> Vec<HistoryEntry> {
    let authors = Authors::of(doc, relay_names);
    let mut entries: Vec<HistoryEntry> = doc
        .get_changes(since)
        .into_iter()
        .map(|change| {
            let actor = change.actor_id().to_hex_string();
            let (school, person) = authors.of_actor(&actor);
            HistoryEntry {
                hash: change.hash().to_string(),
                time: change.timestamp(),
                school,
                person,
                message: change.message().map(str::to_string),
                actor,
            }
        })
        .collect();
    // Changes come in causal order; keep it, and among concurrent ones
    // the clock's.
    entries.sort_by_key(|e| e.time);
    entries
}

/// When the value `candidate` holds was set, as the setting school's
/// clock said: the time of the change holding its operation. `None` where
/// the value was put together from several (a whole responsibility).
pub fn set_at(doc: &Automerge, candidate: &crate::view::Candidate) -> Option<i64> {
    if candidate.op == 0 {
        return None;
    }
    doc.get_changes(&[])
        .into_iter()
        .find(|change| {
            change.actor_id().to_hex_string() == candidate.actor
                && change.start_op().get() <= candidate.op
                && candidate.op < change.start_op().get() + change.len() as u64
        })
        .map(|change| change.timestamp())
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, Value};

    use super::*;
    use crate::author::Author;
    use crate::create::create;
    use crate::edit::set_field;
    use crate::schema::Kind;

    fn author(school: &str, person: &str) -> Author {
        Author {
            school: school.into(),
            person: Some(person.into()),
            time: 1_499_760_000,
        }
    }

    fn credited(doc: &mut AutoCommit, names: &RelayNames) -> Vec<(String, String)> {
        history(doc.document(), &[], names)
            .into_iter()
            .map(|e| (e.who(), e.message.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn history_names_the_school_the_relay_bound_and_no_other_schools_claim() {
        let hilltop = ActorId::from(b"hilltop-actor-01".as_slice());
        let seaside = ActorId::from(b"seaside-actor-01".as_slice());
        let mut doc = AutoCommit::new().with_actor(hilltop.clone());
        create(
            &mut doc,
            Kind::ActionPlan,
            "Plan",
            None,
            &author("Hilltop", "Carole Clemens"),
        )
        .unwrap();
        doc.commit();

        // Seaside, under its own actor, rewrites Hilltop's entry in the
        // `actors` map, and calls itself Hilltop in its own.
        doc.set_actor(seaside.clone());
        set_field(
            &mut doc,
            None,
            "period",
            "2017-18",
            &author("Hilltop", "Mallory"),
        )
        .unwrap();
        let Some((Value::Object(ObjType::Map), actors)) = doc.get(ROOT, "actors").unwrap() else {
            panic!("an actors map");
        };
        let Some((_, entry)) = doc.get(&actors, hilltop.to_hex_string()).unwrap() else {
            panic!("Hilltop's entry");
        };
        doc.put(&entry, "school", "Seaside").unwrap();
        doc.put(&entry, "person", "Nobody").unwrap();
        doc.commit();

        // The document alone: an actor as it named itself, never as
        // another school rewrote it (a rewritten entry names no one).
        let entries = records::actors(&doc);
        assert_eq!(entries[&seaside.to_hex_string()].school, "Hilltop");
        assert!(!entries.contains_key(&hilltop.to_hex_string()));
        assert!(
            credited(&mut doc, &RelayNames::new())
                .iter()
                .all(|(who, _)| !who.contains("Seaside") && !who.contains("Nobody"))
        );
        // With the relay's names, the school is the one the relay bound.
        let names: RelayNames = [
            (hilltop.to_hex_string(), "Hilltop Primary".to_string()),
            (seaside.to_hex_string(), "Seaside Academy".to_string()),
        ]
        .into();
        let credited = credited(&mut doc, &names);
        assert_eq!(credited.len(), 2);
        assert_eq!(credited[0].0, "Hilltop Primary");
        assert!(
            credited[1..]
                .iter()
                .all(|(who, _)| who == "Mallory (Seaside Academy)"),
            "{credited:?}"
        );
    }
}
