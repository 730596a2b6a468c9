//! Reviews, signatures and the `actors` map: records written once and
//! read whole, which is what autosurgeon's derive fits. (Fields that
//! schools edit concurrently are read with `get_all` in `doc`, because
//! hydrating picks one value of a conflict and we must show both.)
//!
//! A review ("monitored and reviewed by the HTs and the JCC on 11 July
//! 2017") keeps the document's heads when it was recorded, and each
//! signature keeps the heads of the version its signer signed, so later
//! edits never change what was signed: `doc::read_at` shows it as it was.

use std::collections::BTreeMap;
use std::str::FromStr;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc, Value};
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::doc::{Author, DocView, note_author, read_at, writable};
use crate::text::short;
use crate::values::SIGNATORY_ROLE;
use crate::when::{When, when_text};

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

    /// The document as this review signed it, and that version's heads.
    pub fn signed_view(
        &self,
        doc: &mut AutoCommit,
    ) -> Result<(Vec<ChangeHash>, DocView), ModelError> {
        let heads = self.heads()?;
        if let Some(missing) = heads.iter().find(|h| doc.get_change_by_hash(h).is_none()) {
            return Err(ModelError::UnreadableVersion {
                date: when_text(&self.date),
                detail: format!(
                    "this document has no version {}",
                    short(&missing.to_string())
                ),
            });
        }
        let view = read_at(doc, &heads)?;
        Ok((heads, view))
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

pub fn actors(doc: &AutoCommit) -> BTreeMap<String, ActorEntry> {
    autosurgeon::hydrate_prop::<_, Option<BTreeMap<String, ActorEntry>>, _, _>(doc, &ROOT, "actors")
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub fn reviews(doc: &AutoCommit) -> Vec<Review> {
    // Each review is read on its own, so one damaged entry does not hide
    // the others.
    let Some((Value::Object(ObjType::List), list)) = doc.get(ROOT, "reviews").ok().flatten() else {
        return Vec::new();
    };
    (0..doc.length(&list))
        .filter_map(|i| autosurgeon::hydrate_prop::<_, Review, _, _>(doc, &list, i).ok())
        .collect()
}

pub fn heads_hex(doc: &mut AutoCommit) -> Vec<String> {
    doc.get_heads().iter().map(|h| h.to_string()).collect()
}

/// A signature as it will be stored, or why it cannot be.
pub(crate) fn checked(
    input: &SignatureInput,
    default_date: &str,
    heads: &[String],
) -> Result<Signature, ModelError> {
    let role = SIGNATORY_ROLE
        .parse(&input.role)
        .map_err(|reason| ModelError::BadValue {
            what: "The signature".into(),
            reason,
        })?;
    let date = match input
        .date
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        Some(d) => When::parse(d)
            .map_err(|e| ModelError::BadValue {
                what: "The signature's date".into(),
                reason: e.0.trim_end_matches('.').into(),
            })?
            .to_string(),
        None => default_date.to_string(),
    };
    if input.school.trim().is_empty() {
        return Err(ModelError::BadValue {
            what: "The signature".into(),
            reason: "say which school the signer signs for".into(),
        });
    }
    Ok(Signature {
        name: input
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        role: role.to_string(),
        school: input.school.trim().to_string(),
        date,
        heads: heads.to_vec(),
    })
}

/// Records a review of the document as it is now, with any signatures
/// given at the same time. Returns the review's id.
pub fn record(
    doc: &mut AutoCommit,
    date: &str,
    by: &str,
    note: Option<&str>,
    signatures: &[SignatureInput],
    author: &Author,
) -> Result<String, ModelError> {
    // The version reviewed: read before anything here writes (reading
    // heads closes the open transaction).
    let heads = heads_hex(doc);
    record_at(doc, heads, date, by, note, signatures, author)
}

/// Records a review of the version at `heads` (hex), which the caller
/// read from this document.
pub fn record_at(
    doc: &mut AutoCommit,
    heads: Vec<String>,
    date: &str,
    by: &str,
    note: Option<&str>,
    signatures: &[SignatureInput],
    author: &Author,
) -> Result<String, ModelError> {
    writable(doc)?;
    let date = When::parse(date)
        .map_err(|e| ModelError::BadValue {
            what: "The review's date".into(),
            reason: e.0.trim_end_matches('.').into(),
        })?
        .to_string();
    let signatures = signatures
        .iter()
        .map(|s| checked(s, &date, &heads))
        .collect::<Result<Vec<_>, _>>()?;
    let review = Review {
        id: uuid::Uuid::new_v4().to_string(),
        date,
        by: by.trim().to_string(),
        heads,
        recorded_by: author.describe(),
        note: note.map(str::to_string).filter(|n| !n.trim().is_empty()),
        signatures,
    };
    let list = match doc.get(ROOT, "reviews")? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => doc.put_object(ROOT, "reviews", ObjType::List)?,
    };
    let at = doc.length(&list);
    autosurgeon::reconcile::reconcile_insert(doc, list, at, &review)?;
    note_author(doc, author)?;
    Ok(review.id)
}

/// Adds a signature to a review: the signer signs the document as it is
/// now, which may be a later version than the one reviewed.
pub fn sign(
    doc: &mut AutoCommit,
    review_id: &str,
    signature: &SignatureInput,
    today: &str,
    author: &Author,
) -> Result<Signature, ModelError> {
    let heads = heads_hex(doc);
    writable(doc)?;
    let (index, _) = find(doc, review_id)?;
    let signature = checked(signature, today, &heads)?;
    let Some((Value::Object(ObjType::List), list)) = doc.get(ROOT, "reviews")? else {
        return Err(ModelError::NoSuchReview {
            id: review_id.into(),
        });
    };
    let Some((Value::Object(ObjType::Map), review)) = doc.get(&list, index)? else {
        return Err(ModelError::NoSuchReview {
            id: review_id.into(),
        });
    };
    let signatures = match doc.get(&review, "signatures")? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => doc.put_object(&review, "signatures", ObjType::List)?,
    };
    let at = doc.length(&signatures);
    autosurgeon::reconcile::reconcile_insert(doc, signatures, at, &signature)?;
    note_author(doc, author)?;
    Ok(signature)
}

/// A review by its id or the start of it, or by its date.
pub fn find(doc: &AutoCommit, id: &str) -> Result<(usize, Review), ModelError> {
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
