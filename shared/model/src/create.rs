//! Making a new document of a kind: every text object and row list it
//! will hold is made here, by one school, so partners' later typing
//! merges into the same objects instead of two objects in conflict.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT};

use crate::author::{Author, note_author};
use crate::error::ModelError;
use crate::schema::{Field, FieldType, Kind, SCHEMA_VERSION};

/// Makes `doc` a new document of `kind`: the root fields, every prose
/// field as empty text and every table as an empty list, created once
/// here so partners' later typing merges into the same objects.
pub fn create(
    doc: &mut AutoCommit,
    kind: Kind,
    title: &str,
    partnership: Option<&str>,
    author: &Author,
) -> Result<(), ModelError> {
    let schema = kind.schema();
    doc.put(ROOT, "kind", kind.key())?;
    doc.put(ROOT, "schemaVersion", SCHEMA_VERSION)?;
    let text = doc.put_object(ROOT, "title", ObjType::Text)?;
    doc.splice_text(&text, 0, 0, title)?;
    if let Some(url) = partnership {
        doc.put(ROOT, "partnership", url)?;
    }
    doc.put_object(ROOT, "actors", ObjType::Map)?;
    doc.put_object(ROOT, "reviews", ObjType::List)?;
    for field in schema.fields {
        make_field(doc, &ROOT, field)?;
    }
    for table in schema.tables {
        doc.put_object(ROOT, table.key, ObjType::List)?;
    }
    note_author(doc, author)?;
    Ok(())
}

pub(crate) fn make_field(
    doc: &mut AutoCommit,
    obj: &ObjId,
    field: &Field,
) -> Result<(), ModelError> {
    match field.ty {
        FieldType::Prose => {
            doc.put_object(obj, field.key, ObjType::Text)?;
        }
        FieldType::Links | FieldType::Responsibility => {
            doc.put_object(obj, field.key, ObjType::Map)?;
        }
        _ => {}
    }
    Ok(())
}
