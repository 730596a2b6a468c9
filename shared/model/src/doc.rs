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
