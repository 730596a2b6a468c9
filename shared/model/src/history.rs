//! Who changed what and when: each Automerge change with its actor mapped
//! to the school and person through the document's `actors` map, and its
//! message (every change the model makes says what it did).

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

/// Every change, oldest first; with `since`, only changes that the
/// version at those heads did not have.
pub fn history(doc: &Automerge, since: &[ChangeHash]) -> Vec<HistoryEntry> {
    let actors = records::actors(doc);
    let mut entries: Vec<HistoryEntry> = doc
        .get_changes(since)
        .into_iter()
        .map(|change| {
            let actor = change.actor_id().to_hex_string();
            let entry = actors.get(&actor);
            HistoryEntry {
                hash: change.hash().to_string(),
                time: change.timestamp(),
                school: entry.map(|e| e.school.clone()),
                person: entry.and_then(|e| e.person.clone()),
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
