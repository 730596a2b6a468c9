//! The records a document keeps whole: which school and person each
//! Automerge actor is (`actors`), and its reviews with their signatures,
//! each holding the heads of the version it speaks for. What is stored,
//! and reading it back; `review` and `author` write them.
//!
//! These are written once and read whole, which is what autosurgeon's
//! derive fits. (Fields that schools edit concurrently are read with
//! `get_all` in `read`, because hydrating picks one value of a conflict
//! and we must show both.) Reviews are read on every read of a document,
//! so `reviews` reads them in one pass per object instead of hydrating,
//! accepting exactly what the derived `Hydrate` accepts.

use std::collections::BTreeMap;
use std::str::FromStr;

use automerge::iter::MapRangeItem;
use automerge::{ChangeHash, ObjId, ObjType, ROOT, ScalarValueRef, Value, ValueRef};
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
    /// When they signed (canonical `When` text): for a signature made
    /// here, the day of `signed_at`; for one transcribed, the paper's.
    pub date: String,
    /// The version they signed: the document's heads, as hex.
    pub heads: Vec<String>,
    /// When it was made, in seconds since 1970, by the signing computer's
    /// clock; `None` for one transcribed or made before signatures were
    /// sealed. (Absent in documents written before: read as `None`.)
    #[autosurgeon(rename = "signedAt", missing = "Default::default")]
    #[serde(rename = "signedAt", default)]
    pub signed_at: Option<i64>,
    /// Copied from a paper signature (an import file): nothing proves
    /// who gave it, and it is shown as transcribed.
    #[autosurgeon(missing = "Default::default")]
    #[serde(default)]
    pub transcribed: bool,
    /// The signing school's public Ed25519 key, hex.
    #[autosurgeon(missing = "Default::default")]
    #[serde(default)]
    pub key: Option<String>,
    /// The Ed25519 signature over what `signing::signed_bytes` lists, hex.
    #[autosurgeon(missing = "Default::default")]
    #[serde(default)]
    pub seal: Option<String>,
}

/// Who withdrew a review (one recorded by mistake), when, and why: the
/// review stays in the document and its history, marked withdrawn.
#[derive(Debug, Clone, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Withdrawal {
    /// "Carole Clemens (Bank Road)", as `Author::describe` gives it.
    pub by: String,
    pub school: String,
    /// Seconds since 1970.
    pub at: i64,
    pub reason: Option<String>,
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
    /// Set when the review was withdrawn. (Absent before: `None`.)
    #[autosurgeon(missing = "Default::default")]
    #[serde(default)]
    pub withdrawn: Option<Withdrawal>,
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

/// Which school and person each actor says it is, by actor id in hex.
///
/// Only what an actor wrote about itself counts: an entry (or a field of
/// one) written under another actor is someone else's claim, and is
/// passed over. The relay takes a change only from the school its actor
/// belongs to, so an actor's own entry is its own school's word. (The
/// school's *name* in it is still that school's word about itself; the
/// relay's names, where the client has them, come first in history.)
pub fn actors(doc: &impl Readable) -> BTreeMap<String, ActorEntry> {
    let mut entries = BTreeMap::new();
    let maps = automerge::ReadDoc::get_all(doc, ROOT, "actors").unwrap_or_default();
    for (value, map) in maps {
        if !matches!(value, Value::Object(ObjType::Map)) {
            continue;
        }
        for item in automerge::ReadDoc::map_range(doc, &map, ..) {
            if entries.contains_key(item.key.as_ref()) {
                continue;
            }
            let Ok(actor) = automerge::ActorId::from_str(&item.key) else {
                continue;
            };
            if let Some(entry) = own_entry(doc, &map, &item.key, &actor) {
                entries.insert(item.key.into_owned(), entry);
            }
        }
    }
    entries
}

/// The entry `actor` wrote about itself under `key`, if it wrote one.
fn own_entry(
    doc: &impl Readable,
    map: &ObjId,
    key: &str,
    actor: &automerge::ActorId,
) -> Option<ActorEntry> {
    let by_actor = |id: &ObjId| matches!(id, ObjId::Id(_, by, _) if by == actor);
    let (_, entry) = automerge::ReadDoc::get_all(doc, map, key)
        .ok()?
        .into_iter()
        .find(|(value, id)| matches!(value, Value::Object(ObjType::Map)) && by_actor(id))?;
    let text = |field: &str| -> Option<String> {
        automerge::ReadDoc::get_all(doc, &entry, field)
            .ok()?
            .into_iter()
            .filter(|(_, id)| by_actor(id))
            .find_map(|(value, _)| value.into_string().ok())
    };
    Some(ActorEntry {
        school: text("school")?,
        person: text("person"),
    })
}

pub fn reviews(doc: &impl Readable) -> Vec<Review> {
    // Each review is read on its own, so one damaged entry does not hide
    // the others.
    let Some((Value::Object(ObjType::List), list)) =
        automerge::ReadDoc::get(doc, ROOT, "reviews").ok().flatten()
    else {
        return Vec::new();
    };
    automerge::ReadDoc::list_range(doc, &list, ..)
        .filter_map(|item| match item.value {
            ValueRef::Object(ObjType::Map | ObjType::Table) => review_at(doc, &item.id()),
            _ => None,
        })
        .collect()
}

// Reviews are read on every read of a document, so rather than
// autosurgeon's hydrate (one seek per key and per list element) each
// object is read in one pass with `map_range` / `list_range`. What is
// accepted is what the derived `Hydrate` accepts (tests below compare
// them): every key present, a `String` a string, an `Option` null or a
// string, a list a list; anything else and the review is skipped.

/// A map's keys and winning values, as `get` would give them.
fn entries<'d>(doc: &'d impl automerge::ReadDoc, obj: &ObjId) -> Vec<MapRangeItem<'d>> {
    doc.map_range(obj, ..).collect()
}

fn entry<'a, 'd>(entries: &'a [MapRangeItem<'d>], key: &str) -> Option<&'a MapRangeItem<'d>> {
    entries.iter().find(|e| e.key == key)
}

fn string_of(value: &ValueRef) -> Option<String> {
    match value {
        ValueRef::Scalar(ScalarValueRef::Str(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn string(entries: &[MapRangeItem], key: &str) -> Option<String> {
    string_of(&entry(entries, key)?.value)
}

/// An `Option<String>`: `Some(None)` for null, `None` if it does not read.
fn optional_string(entries: &[MapRangeItem], key: &str) -> Option<Option<String>> {
    match &entry(entries, key)?.value {
        ValueRef::Scalar(ScalarValueRef::Null) => Some(None),
        value => string_of(value).map(Some),
    }
}

/// The list at `key`, each element read by `each`; `None` if the key is
/// not a list or any element does not read.
fn list<'d, D: automerge::ReadDoc, T>(
    doc: &'d D,
    entries: &[MapRangeItem<'d>],
    key: &str,
    each: impl Fn(&'d D, automerge::iter::ListRangeItem<'d>) -> Option<T>,
) -> Option<Vec<T>> {
    let item = entry(entries, key)?;
    if !matches!(item.value, ValueRef::Object(ObjType::List)) {
        return None;
    }
    doc.list_range(item.id(), ..)
        .map(|element| each(doc, element))
        .collect()
}

fn strings<'d, D: automerge::ReadDoc>(
    doc: &'d D,
    entries: &[MapRangeItem<'d>],
    key: &str,
) -> Option<Vec<String>> {
    list(doc, entries, key, |_, element| string_of(&element.value))
}

/// Like `optional_string`, for a key later versions added: absent is
/// `None` too.
fn added_string(entries: &[MapRangeItem], key: &str) -> Option<Option<String>> {
    match entry(entries, key) {
        None => Some(None),
        Some(_) => optional_string(entries, key),
    }
}

/// An added `Option<i64>`: absent or null is `None`.
fn added_integer(entries: &[MapRangeItem], key: &str) -> Option<Option<i64>> {
    match entry(entries, key).map(|e| &e.value) {
        None | Some(ValueRef::Scalar(ScalarValueRef::Null)) => Some(None),
        Some(ValueRef::Scalar(ScalarValueRef::Int(i))) => Some(Some(*i)),
        Some(ValueRef::Scalar(ScalarValueRef::Uint(u))) => i64::try_from(*u).ok().map(Some),
        Some(_) => None,
    }
}

/// An added `bool`: absent is `false`.
fn added_bool(entries: &[MapRangeItem], key: &str) -> Option<bool> {
    match entry(entries, key).map(|e| &e.value) {
        None => Some(false),
        Some(ValueRef::Scalar(ScalarValueRef::Boolean(b))) => Some(*b),
        Some(_) => None,
    }
}

fn signature_at(doc: &impl automerge::ReadDoc, obj: &ObjId) -> Option<Signature> {
    let e = entries(doc, obj);
    Some(Signature {
        name: optional_string(&e, "name")?,
        role: string(&e, "role")?,
        school: string(&e, "school")?,
        date: string(&e, "date")?,
        heads: strings(doc, &e, "heads")?,
        signed_at: added_integer(&e, "signedAt")?,
        transcribed: added_bool(&e, "transcribed")?,
        key: added_string(&e, "key")?,
        seal: added_string(&e, "seal")?,
    })
}

fn withdrawal_at(
    doc: &impl automerge::ReadDoc,
    entries: &[MapRangeItem],
) -> Option<Option<Withdrawal>> {
    let Some(item) = entry(entries, "withdrawn") else {
        return Some(None);
    };
    match item.value {
        ValueRef::Scalar(ScalarValueRef::Null) => Some(None),
        ValueRef::Object(ObjType::Map | ObjType::Table) => {
            let e = self::entries(doc, &item.id());
            Some(Some(Withdrawal {
                by: string(&e, "by")?,
                school: string(&e, "school")?,
                at: added_integer(&e, "at")??,
                reason: optional_string(&e, "reason")?,
            }))
        }
        _ => None,
    }
}

fn review_at(doc: &impl automerge::ReadDoc, obj: &ObjId) -> Option<Review> {
    let e = entries(doc, obj);
    Some(Review {
        id: string(&e, "id")?,
        date: string(&e, "date")?,
        by: string(&e, "by")?,
        heads: strings(doc, &e, "heads")?,
        recorded_by: string(&e, "recordedBy")?,
        note: optional_string(&e, "note")?,
        signatures: list(doc, &e, "signatures", |doc, element| match element.value {
            ValueRef::Object(ObjType::Map | ObjType::Table) => signature_at(doc, &element.id()),
            _ => None,
        })?,
        withdrawn: withdrawal_at(doc, &e)?,
    })
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

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ScalarValue};

    use super::*;

    /// What reviews read as through autosurgeon's derived `Hydrate`, which
    /// `reviews` must agree with.
    fn hydrated(doc: &AutoCommit) -> Vec<Review> {
        let Some((Value::Object(ObjType::List), list)) =
            automerge::ReadDoc::get(doc, ROOT, "reviews").unwrap()
        else {
            return Vec::new();
        };
        (0..automerge::ReadDoc::length(doc, &list))
            .filter_map(|i| autosurgeon::hydrate_prop::<_, Review, _, _>(doc, &list, i).ok())
            .collect()
    }

    fn review(id: &str) -> Review {
        Review {
            id: id.into(),
            date: "2017-07-11".into(),
            by: "the JCC".into(),
            heads: vec!["ab".repeat(32)],
            recorded_by: "Bank Road".into(),
            note: Some("Agreed.".into()),
            signatures: vec![Signature {
                name: Some("Carole Clemens".into()),
                role: "headteacher".into(),
                school: "Bank Road".into(),
                date: "2017-07-12".into(),
                heads: vec!["cd".repeat(32)],
                signed_at: Some(1_499_860_000),
                transcribed: false,
                key: Some("ef".repeat(32)),
                seal: Some("01".repeat(64)),
            }],
            withdrawn: None,
        }
    }

    /// A change made to one review after it was written whole.
    type Damage<'a> = &'a dyn Fn(&mut AutoCommit, &ObjId);

    /// Adds two reviews whole (the second with no note and unnamed
    /// signers), then `damage` changes the n-th one.
    fn doc_with(damage: &[(usize, Damage)]) -> AutoCommit {
        let mut doc = AutoCommit::new();
        let list = doc.put_object(ROOT, "reviews", ObjType::List).unwrap();
        for n in 0..2 {
            let mut one = review(&format!("r{n}"));
            if n == 1 {
                one.note = None;
                one.signatures[0].name = None;
                one.signatures.push(one.signatures[0].clone());
            }
            doc.insert_object(&list, n, ObjType::Map).unwrap();
            autosurgeon::reconcile_prop(&mut doc, &list, n, &one).unwrap();
        }
        for (n, hurt) in damage {
            let Some((_, obj)) = automerge::ReadDoc::get(&doc, &list, *n).unwrap() else {
                panic!("no review {n}");
            };
            hurt(&mut doc, &obj);
        }
        doc
    }

    #[test]
    fn reviews_read_as_autosurgeon_hydrates_them_damaged_or_not() {
        let untouched: Damage = &|_, _| {};
        let cases: Vec<Vec<(usize, Damage)>> = vec![
            vec![(0, untouched), (1, untouched)],
            vec![(0, &|d, o| d.delete(o, "note").unwrap())],
            vec![(0, &|d, o| d.put(o, "note", 3).unwrap())],
            vec![(0, &|d, o| d.put(o, "by", ScalarValue::Null).unwrap())],
            vec![
                (0, &|d, o| d.delete(o, "recordedBy").unwrap()),
                (1, untouched),
            ],
            vec![(0, &|d, o| {
                d.put_object(o, "date", ObjType::Text).unwrap();
            })],
            vec![(0, &|d, o| d.put(o, "heads", "ab").unwrap())],
            vec![(0, &|d, o| {
                let heads = d.put_object(o, "heads", ObjType::List).unwrap();
                d.insert(&heads, 0, "ab").unwrap();
                d.insert(&heads, 1, 7).unwrap();
            })],
            vec![(0, &|d, o| {
                d.put_object(o, "heads", ObjType::List).unwrap();
            })],
            vec![(1, &|d, o| {
                let Some((_, sigs)) = automerge::ReadDoc::get(d, o, "signatures").unwrap() else {
                    panic!("signatures");
                };
                d.insert(&sigs, 0, "a signature").unwrap();
            })],
            vec![(1, &|d, o| {
                let Some((_, sigs)) = automerge::ReadDoc::get(d, o, "signatures").unwrap() else {
                    panic!("signatures");
                };
                let Some((_, sig)) = automerge::ReadDoc::get(d, &sigs, 1).unwrap() else {
                    panic!("signature");
                };
                d.delete(&sig, "name").unwrap();
            })],
        ];
        for (n, case) in cases.iter().enumerate() {
            let doc = doc_with(case);
            assert_eq!(reviews(&doc), hydrated(&doc), "case {n}");
        }
        // A review that is not a map, and one set at once by two schools.
        let mut doc = doc_with(&[(0, untouched)]);
        let Some((_, list)) = automerge::ReadDoc::get(&doc, ROOT, "reviews").unwrap() else {
            panic!("reviews");
        };
        doc.insert(&list, 0, "a review").unwrap();
        let mut other = doc.fork();
        let Some((_, first)) = automerge::ReadDoc::get(&doc, &list, 1).unwrap() else {
            panic!("review");
        };
        doc.put(&first, "date", "2017-07-13").unwrap();
        other.put(&first, "date", "2017-07-14").unwrap();
        doc.merge(&mut other).unwrap();
        assert_eq!(reviews(&doc).len(), 2);
        assert_eq!(reviews(&doc), hydrated(&doc));
    }
}
