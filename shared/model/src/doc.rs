//! A typed document's identity in Automerge: its kind and schema
//! version, read cheaply from the root (`kind_of`), and the check every
//! typed edit makes inside its own change before writing (`writable`,
//! `expect_kind`), so a caller need not load the document first to learn
//! its kind. Also the two raw reads every layer above uses.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value};

use crate::error::ModelError;
use crate::schema::{Kind, SCHEMA_VERSION};

/// The document's kind and schema version, refusing documents that are
/// not ours. Cheap (two reads at the root), from any Automerge document.
pub fn kind_of(doc: &impl ReadDoc) -> Result<(Kind, i64), ModelError> {
    let kind = match doc.get(ROOT, "kind")? {
        Some((Value::Scalar(s), _)) => s.as_str().map(str::to_string),
        _ => None,
    }
    .ok_or(ModelError::NotModel)?;
    let kind = Kind::parse(&kind).map_err(|_| ModelError::NotModel)?;
    // Schools that wrote it at once (one migrating, one on a newer
    // version) leave several values: the document is as new as the
    // newest, or an older version would write over a shape it does not
    // know.
    let version = doc
        .get_all(ROOT, "schemaVersion")?
        .iter()
        .map(|(value, _)| match value {
            Value::Scalar(s) => s.as_i64().unwrap_or(1),
            _ => 1,
        })
        .max()
        .unwrap_or(1);
    Ok((kind, version))
}

/// Checks the document can be changed by this version, and marks it as
/// written in this version's shape from now on.
pub fn writable(doc: &mut AutoCommit) -> Result<Kind, ModelError> {
    let (kind, version) = kind_of(doc)?;
    if version > SCHEMA_VERSION {
        return Err(ModelError::TooNew { found: version });
    }
    if version < SCHEMA_VERSION {
        doc.put(ROOT, "schemaVersion", SCHEMA_VERSION)?;
    }
    Ok(kind)
}

/// Like `writable`, for a command that only makes sense on one kind.
pub fn expect_kind(doc: &mut AutoCommit, expected: Kind) -> Result<(), ModelError> {
    let kind = writable(doc)?;
    if kind != expected {
        return Err(ModelError::WrongKind {
            found: kind.label(),
            expected: expected.label(),
            hint: format!(
                "give the URL of the {} instead.",
                expected.label().to_lowercase()
            ),
        });
    }
    Ok(())
}

/// The list at `key` of `obj`, if that is a list.
pub(crate) fn list_of(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok().flatten() {
        Some((Value::Object(ObjType::List), id)) => Some(id),
        _ => None,
    }
}

/// The string or text at `key` of `obj`, as a string.
pub(crate) fn str_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_str().map(str::to_string),
        Some((Value::Object(ObjType::Text), id)) => doc.text(&id).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;
    use crate::author::Author;
    use crate::edit::{self, ProseEdit};
    use crate::records::SignatureInput;
    use crate::review::{self, Given};
    use crate::rows::{self, Placement};
    use crate::signing::Signer;
    use ed25519_dalek::SigningKey;

    /// Every typed edit checks the document itself, inside the caller's
    /// change, so a caller need not load the document first to learn its
    /// kind: on a document that is not ours each refuses and writes
    /// nothing.
    #[test]
    fn every_typed_edit_refuses_a_plain_document_by_itself() {
        let mut plain = AutoCommit::new();
        plain.put(ROOT, "title", "Notes").unwrap();
        plain.commit();
        let heads = plain.get_heads();
        let who = Author {
            school: "Bank Road".into(),
            person: None,
            time: 0,
        };
        let signature = SignatureInput {
            name: None,
            role: "headteacher".into(),
            school: "Bank Road".into(),
            date: None,
        };
        let signer = Signer::new(SigningKey::from_bytes(&[7; 32]), "Bank Road", Vec::new());
        let values = [("name".to_string(), "Safeguarding".to_string())];
        let doc = &mut plain;
        let errors = [
            edit::set_field(doc, None, "title", "x", &who).err(),
            edit::edit_prose(doc, None, "title", &ProseEdit::Append("x".into()), &who).err(),
            edit::resolve(doc, None, "title", "x", &who).err(),
            rows::add_row(doc, "areas", None, &values, &Placement::End, &who).err(),
            rows::move_row(doc, "abc", &Placement::Start, &who).err(),
            rows::remove_row(doc, "abc", &who).err(),
            rows::restore_row(doc, "abc", &who).err(),
            review::record(doc, "11 July 2017", "the JCC", None, Given::Nothing, &who).err(),
            review::sign(doc, "doc", "abc", &signature, &signer, &who).err(),
            review::transcribe(doc, "abc", &signature, &who).err(),
            review::withdraw(doc, "abc", None, &who).err(),
            expect_kind(doc, Kind::ActionPlan).err(),
        ];
        for error in errors {
            assert_eq!(error, Some(ModelError::NotModel));
        }
        assert_eq!(plain.pending_ops(), 0);
        assert_eq!(plain.get_heads(), heads);
    }
}
