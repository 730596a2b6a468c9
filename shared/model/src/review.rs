//! Recording a review and signing it: the writes of the records that
//! `records` defines and reads back.
//!
//! A review ("monitored and reviewed by the HTs and the JCC on 11 July
//! 2017") keeps the document's heads when it was recorded, and each
//! signature keeps the heads of the version its signer signed, so later
//! edits never change what was signed: `Review::signed_view` shows it as
//! it was.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, Value};

use crate::author::{Author, note_author};
use crate::doc::writable;
use crate::error::ModelError;
use crate::records::{Review, Signature, SignatureInput, find};
use crate::values::SIGNATORY_ROLE;
use crate::when::When;

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
