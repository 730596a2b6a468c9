//! The records a document keeps whole: which school and person each
//! Automerge actor is (`actors`), and its reviews with their signatures,
//! each holding the heads of the version it speaks for. What is stored,
//! and reading it back; `review` and `author` write them.
//!
//! These are written once and read whole, which is what autosurgeon's
//! derive fits. (Fields that schools edit concurrently are read with
//! `get_all` in `read`, because hydrating picks one value of a conflict
//! and we must show both.)

use std::collections::BTreeMap;
use std::str::FromStr;

use automerge::{ChangeHash, ObjType, ROOT, Value};
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::text::short;
use crate::when::{When, when_text};

/// What a whole document is read from: an `Automerge` as the store
/// assembles it, an `AutoCommit` being edited, or a transaction. Both
/// traits, because the records are hydrated by autosurgeon; where a
/// method of both is called, name automerge's (`automerge::ReadDoc::get`).
pub trait Readable: automerge::ReadDoc + autosurgeon::ReadDoc {}

impl<T: automerge::ReadDoc + autosurgeon::ReadDoc + ?Sized> Readable for T {}

/// Which school and person an Automerge actor is.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct ActorEntry {
    pub school: String,
    pub person: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Signature {
    /// The signer's name; `None` where only the role is known.
    pub name: Option<String>,
    /// "headteacher" or "chair of governors".
    pub role: String,
    pub school: String,
    /// When they signed (canonical `When` text).
    pub date: String,
    /// The version they signed: the document's heads, as hex.
    pub heads: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Review {
    pub id: String,
    /// When it was reviewed (canonical `When` text).
    pub date: String,
    /// Who reviewed it: "the HTs and members of the JCC".
    pub by: String,
    /// The version reviewed: the document's heads when it was recorded.
    pub heads: Vec<String>,
    #[autosurgeon(rename = "recordedBy")]
    #[serde(rename = "recordedBy")]
    pub recorded_by: String,
    pub note: Option<String>,
    pub signatures: Vec<Signature>,
}

impl Review {
    /// The version reviewed, or why it cannot be read: none recorded, or
    /// one that is not a version (a partner's program may write anything).
    pub fn heads(&self) -> Result<Vec<ChangeHash>, ModelError> {
        let unreadable = |detail: String| ModelError::UnreadableVersion {
            date: when_text(&self.date),
            detail,
        };
        if self.heads.is_empty() {
            return Err(unreadable("no version was recorded with it".into()));
        }
        self.heads
            .iter()
            .map(|h| {
                ChangeHash::from_str(h)
                    .map_err(|_| unreadable(format!("“{}” is not a version", short(h))))
            })
            .collect()
    }
}

/// A signature as given on the command line or in an import file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureInput {
    #[serde(default)]
    pub name: Option<String>,
    pub role: String,
    pub school: String,
    #[serde(default)]
    pub date: Option<String>,
}

pub fn actors(doc: &impl Readable) -> BTreeMap<String, ActorEntry> {
    autosurgeon::hydrate_prop::<_, Option<BTreeMap<String, ActorEntry>>, _, _>(doc, &ROOT, "actors")
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub fn reviews(doc: &impl Readable) -> Vec<Review> {
    // Each review is read on its own, so one damaged entry does not hide
    // the others.
    let Some((Value::Object(ObjType::List), list)) =
        automerge::ReadDoc::get(doc, ROOT, "reviews").ok().flatten()
    else {
        return Vec::new();
    };
    (0..automerge::ReadDoc::length(doc, &list))
        .filter_map(|i| autosurgeon::hydrate_prop::<_, Review, _, _>(doc, &list, i).ok())
        .collect()
}

/// A review by its id or the start of it, or by its date.
pub fn find(doc: &impl Readable, id: &str) -> Result<(usize, Review), ModelError> {
    let wanted = id.trim().to_lowercase();
    let all = reviews(doc);
    let by_date = When::parse(id).ok().map(|w| w.to_string());
    let matches: Vec<(usize, Review)> = all
        .into_iter()
        .enumerate()
        .filter(|(_, r)| {
            (!wanted.is_empty() && r.id.starts_with(&wanted)) || Some(&r.date) == by_date.as_ref()
        })
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(ModelError::NoSuchReview { id: id.into() }),
        _ => Err(ModelError::AmbiguousRow {
            id: id.into(),
            matches: matches
                .iter()
                .map(|(_, r)| format!("{} ({})", short(&r.id), r.date))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// "Carole Clemens, headteacher, Bank Road" or "Chair of governors, …"
/// where the name is not known.
pub fn describe_signature(s: &Signature) -> String {
    match &s.name {
        Some(name) => format!("{name}, {}, {}", s.role, s.school),
        None => {
            let mut role = s.role.clone();
            if let Some(first) = role.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{role} (name not recorded), {}", s.school)
        }
    }
}
