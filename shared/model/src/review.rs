//! Recording a review, signing it and withdrawing it: the writes of the
//! records that `records` defines and reads back.
//!
//! A review ("monitored and reviewed by the HTs and the JCC on 11 July
//! 2017") keeps the document's heads when it was recorded, and each
//! signature keeps the heads of the version its signer signed, so later
//! edits never change what was signed: `Review::signed_view` shows it as
//! it was.
//!
//! A review's date is when the review took place (a meeting, often weeks
//! before anyone signs); a signature made here carries the time it is
//! made, from the caller's clock, and is sealed with the school's key
//! (`signing`), so it can never claim an earlier day. A signature given
//! on paper is transcribed (an import file): it keeps the paper's date and
//! is shown as transcribed, never as verified. A school signs only for
//! itself, and a person signs a review once. A review recorded by mistake
//! is withdrawn, not deleted: it stays, marked with who withdrew it and
//! when, and can no longer be signed.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value};

use crate::author::{Author, note_author};
use crate::doc::writable;
use crate::error::ModelError;
use crate::records::{Review, Signature, SignatureInput, Withdrawal, describe_signature, find};
use crate::signing::{Signer, same_school, signing_date};
use crate::values::SIGNATORY_ROLE;
use crate::when::{When, format_time, when_text};

pub fn heads_hex(doc: &mut AutoCommit) -> Vec<String> {
    doc.get_heads().iter().map(|h| h.to_string()).collect()
}

/// The signatures given with a review as it is recorded.
pub enum Given<'a> {
    /// None yet.
    Nothing,
    /// Signed here and now by this school: each names it, or no school.
    Signed {
        signer: &'a Signer,
        /// The document's id, which each seal covers.
        document: &'a str,
        signatures: &'a [SignatureInput],
    },
    /// Copied from paper (an import file): for any school, dated as the
    /// paper is (the review's date where it gives none).
    Transcribed(&'a [SignatureInput]),
}

fn bad(reason: impl Into<String>) -> ModelError {
    ModelError::BadValue {
        what: "The signature".into(),
        reason: reason.into(),
    }
}

/// The parts every signature checks: its role, and its name trimmed.
fn role_and_name(input: &SignatureInput) -> Result<(String, Option<String>), ModelError> {
    let role = SIGNATORY_ROLE.parse(&input.role).map_err(bad)?;
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    Ok((role.to_string(), name))
}

/// A signature transcribed from paper as it will be stored, or why it
/// cannot be: dated as the paper is, or `default_date`.
pub(crate) fn checked(
    input: &SignatureInput,
    default_date: &str,
    heads: &[String],
) -> Result<Signature, ModelError> {
    let (role, name) = role_and_name(input)?;
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
        return Err(bad("say which school the signer signs for"));
    }
    Ok(Signature {
        name,
        role,
        school: input.school.trim().to_string(),
        date,
        heads: heads.to_vec(),
        signed_at: None,
        transcribed: true,
        key: None,
        seal: None,
    })
}

/// A signature this school gives now, before it is sealed: for this
/// school only, carrying the time it is made.
fn signed_now(
    input: &SignatureInput,
    signer: &Signer,
    heads: &[String],
    author: &Author,
) -> Result<Signature, ModelError> {
    let (role, name) = role_and_name(input)?;
    let named = input.school.trim();
    if !named.is_empty() && !signer.is(named) {
        return Err(ModelError::NotYourSchool {
            yours: signer.school.clone(),
            named: named.to_string(),
        });
    }
    if input.date.as_deref().is_some_and(|d| !d.trim().is_empty()) {
        return Err(bad(
            "a signature made here carries the time it is made, so it takes no date; a signature given on paper is transcribed with its date (in an import file)",
        ));
    }
    Ok(Signature {
        name,
        role,
        school: signer.school.clone(),
        date: signing_date(author.time),
        heads: heads.to_vec(),
        signed_at: Some(author.time),
        transcribed: false,
        key: Some(signer.public_hex()),
        seal: None,
    })
}

/// Whether `a` and `b` are the same person's signature: the same name at
/// the same school, or, where no name is known, the same role there.
fn same_signer(a: &Signature, b: &Signature) -> bool {
    if !same_school(&a.school, &b.school) {
        return false;
    }
    match (&a.name, &b.name) {
        (Some(x), Some(y)) => same_school(x, y),
        (None, None) => a.role == b.role,
        _ => false,
    }
}

/// A person signs a review once. Only signatures given the same way
/// count: sealed with the same school's key (so one another school
/// forged in this person's name cannot stop them signing), or, for a
/// transcription, transcribed.
fn refuse_second(
    review: &Review,
    earlier: &[Signature],
    new: &Signature,
) -> Result<(), ModelError> {
    match earlier
        .iter()
        .find(|s| s.key == new.key && same_signer(s, new))
    {
        Some(first) => Err(ModelError::AlreadySigned {
            who: describe_signature(first),
            review: when_text(&review.date),
            on: when_text(&first.date),
        }),
        None => Ok(()),
    }
}

fn refuse_withdrawn(review: &Review) -> Result<(), ModelError> {
    match &review.withdrawn {
        Some(w) => Err(ModelError::Withdrawn {
            review: when_text(&review.date),
            by: w.by.clone(),
            on: format_time(w.at),
        }),
        None => Ok(()),
    }
}

/// Records a review of the document as it is now, with any signatures
/// given at the same time. Returns the review's id.
pub fn record(
    doc: &mut AutoCommit,
    date: &str,
    by: &str,
    note: Option<&str>,
    given: Given<'_>,
    author: &Author,
) -> Result<String, ModelError> {
    // The version reviewed: read before anything here writes (reading
    // heads closes the open transaction).
    let heads = heads_hex(doc);
    record_at(doc, heads, date, by, note, given, author)
}

/// Records a review of the version at `heads` (hex), which the caller
/// read from this document.
pub fn record_at(
    doc: &mut AutoCommit,
    heads: Vec<String>,
    date: &str,
    by: &str,
    note: Option<&str>,
    given: Given<'_>,
    author: &Author,
) -> Result<String, ModelError> {
    writable(doc)?;
    let date = When::parse(date)
        .map_err(|e| ModelError::BadValue {
            what: "The review's date".into(),
            reason: e.0.trim_end_matches('.').into(),
        })?
        .to_string();
    let mut review = Review {
        id: uuid::Uuid::new_v4().to_string(),
        date,
        by: by.trim().to_string(),
        heads,
        recorded_by: author.describe(),
        note: note.map(str::to_string).filter(|n| !n.trim().is_empty()),
        signatures: Vec::new(),
        withdrawn: None,
    };
    let mut signatures = Vec::new();
    match given {
        Given::Nothing => {}
        Given::Signed {
            signer,
            document,
            signatures: inputs,
        } => {
            for input in inputs {
                let mut signature = signed_now(input, signer, &review.heads, author)?;
                refuse_second(&review, &signatures, &signature)?;
                signer.seal(document, &review, &mut signature);
                signatures.push(signature);
            }
        }
        Given::Transcribed(inputs) => {
            for input in inputs {
                let signature = checked(input, &review.date, &review.heads)?;
                refuse_second(&review, &signatures, &signature)?;
                signatures.push(signature);
            }
        }
    }
    review.signatures = signatures;
    let list = match doc.get(ROOT, "reviews")? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => doc.put_object(ROOT, "reviews", ObjType::List)?,
    };
    let at = doc.length(&list);
    autosurgeon::reconcile::reconcile_insert(doc, list, at, &review)?;
    note_author(doc, author)?;
    Ok(review.id)
}

/// The review `review_id` as an object of the document, to write into.
fn review_object(doc: &AutoCommit, review_id: &str, index: usize) -> Result<ObjId, ModelError> {
    let missing = || ModelError::NoSuchReview {
        id: review_id.into(),
    };
    let Some((Value::Object(ObjType::List), list)) = doc.get(ROOT, "reviews")? else {
        return Err(missing());
    };
    match doc.get(&list, index)? {
        Some((Value::Object(ObjType::Map), review)) => Ok(review),
        _ => Err(missing()),
    }
}

/// Appends `signature` to the review at `index`.
fn append(
    doc: &mut AutoCommit,
    review_id: &str,
    index: usize,
    signature: &Signature,
) -> Result<(), ModelError> {
    let review = review_object(doc, review_id, index)?;
    let signatures = match doc.get(&review, "signatures")? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => doc.put_object(&review, "signatures", ObjType::List)?,
    };
    let at = doc.length(&signatures);
    autosurgeon::reconcile::reconcile_insert(doc, signatures, at, signature)?;
    Ok(())
}

/// This school signs a review now: the signer signs the document as it
/// is now, which may be a later version than the one reviewed, and the
/// signature is sealed with the school's key. `document` is the
/// document's id.
pub fn sign(
    doc: &mut AutoCommit,
    document: &str,
    review_id: &str,
    input: &SignatureInput,
    signer: &Signer,
    author: &Author,
) -> Result<Signature, ModelError> {
    let heads = heads_hex(doc);
    writable(doc)?;
    let (index, review) = find(doc, review_id)?;
    refuse_withdrawn(&review)?;
    let mut signature = signed_now(input, signer, &heads, author)?;
    refuse_second(&review, &review.signatures, &signature)?;
    signer.seal(document, &review, &mut signature);
    append(doc, review_id, index, &signature)?;
    note_author(doc, author)?;
    Ok(signature)
}

/// Adds a signature given on paper to a review, dated as the paper is
/// (the review's date if it gives none): shown as transcribed.
pub fn transcribe(
    doc: &mut AutoCommit,
    review_id: &str,
    input: &SignatureInput,
    author: &Author,
) -> Result<Signature, ModelError> {
    let heads = heads_hex(doc);
    writable(doc)?;
    let (index, review) = find(doc, review_id)?;
    refuse_withdrawn(&review)?;
    let signature = checked(input, &review.date, &heads)?;
    refuse_second(&review, &review.signatures, &signature)?;
    append(doc, review_id, index, &signature)?;
    note_author(doc, author)?;
    Ok(signature)
}

/// Withdraws a review recorded by mistake: it stays in the document and
/// its history, marked with who withdrew it, when and why, and can no
/// longer be signed. Returns the review as it was.
pub fn withdraw(
    doc: &mut AutoCommit,
    review_id: &str,
    reason: Option<&str>,
    author: &Author,
) -> Result<Review, ModelError> {
    writable(doc)?;
    let (index, review) = find(doc, review_id)?;
    if let Some(w) = &review.withdrawn {
        return Err(ModelError::AlreadyWithdrawn {
            review: when_text(&review.date),
            by: w.by.clone(),
            on: format_time(w.at),
        });
    }
    let withdrawal = Withdrawal {
        by: author.describe(),
        school: author.school.clone(),
        at: author.time,
        reason: reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string),
    };
    let object = review_object(doc, review_id, index)?;
    autosurgeon::reconcile_prop(doc, &object, "withdrawn", &withdrawal)?;
    note_author(doc, author)?;
    Ok(review)
}
