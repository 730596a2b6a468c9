//! Adding, moving, removing and restoring rows. A row is never deleted
//! from its list: removal is a tombstone that says who removed it and
//! when, so an edit made meanwhile elsewhere is kept. Order is a
//! `position` number, so a move and an edit made at once both land.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};

use crate::author::{Author, note_author};
use crate::create::make_field;
use crate::doc::{list_of, writable};
use crate::edit::{field_of, put_value};
use crate::error::ModelError;
use crate::locate::{bump, edits_of, find_row, is_removed, ordered, refuse_removed, row_label_raw};
use crate::schema::{DocSchema, Kind, Table};

/// Where a new or moved row goes among its siblings.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    End,
    Start,
    Before(String),
    After(String),
}

/// The position that puts a row at `placement` among the live rows of
/// `list` (skipping `moving` itself).
fn position_for(
    doc: &AutoCommit,
    list: &ObjId,
    placement: &Placement,
    moving: Option<&ObjId>,
    kind: Kind,
) -> Result<f64, ModelError> {
    let rows: Vec<(f64, ObjId)> = ordered(doc, list)
        .into_iter()
        .filter(|(_, o)| Some(o) != moving && !is_removed(doc, o))
        .collect();
    let anchor = |id: &str| -> Result<usize, ModelError> {
        let target = find_row(doc, kind, id)?;
        rows.iter().position(|(_, o)| *o == target.obj).ok_or_else(|| {
            ModelError::Placement(format!(
                "the row “{id}” is not beside this one: a row moves only among the rows of its own table"
            ))
        })
    };
    Ok(match placement {
        Placement::End => rows.last().map(|(p, _)| p.floor() + 1.0).unwrap_or(0.0),
        Placement::Start => rows.first().map(|(p, _)| p - 1.0).unwrap_or(0.0),
        Placement::Before(id) => {
            let i = anchor(id)?;
            let after = rows[i].0;
            let before = if i == 0 { after - 1.0 } else { rows[i - 1].0 };
            (before + after) / 2.0
        }
        Placement::After(id) => {
            let i = anchor(id)?;
            let before = rows[i].0;
            let after = rows.get(i + 1).map(|(p, _)| *p).unwrap_or(before + 1.0);
            (before + after) / 2.0
        }
    })
}

fn table_path_error(schema: &DocSchema, table: &str) -> ModelError {
    fn names(tables: &[Table], out: &mut Vec<&'static str>) {
        for t in tables {
            out.push(t.key);
            names(t.tables, out);
        }
    }
    let mut known = Vec::new();
    names(schema.tables, &mut known);
    ModelError::UnknownTable {
        table: table.into(),
        of: format!("a {}", schema.kind.label().to_lowercase()),
        known: if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        },
    }
}

/// The table holding `key` directly inside `tables`, if any.
fn parent_of(tables: &'static [Table], key: &str) -> Option<Option<&'static Table>> {
    if tables.iter().any(|t| t.key == key) {
        return Some(None);
    }
    for t in tables {
        if t.tables.iter().any(|inner| inner.key == key) {
            return Some(Some(t));
        }
        if let Some(found) = parent_of(t.tables, key) {
            return Some(found);
        }
    }
    None
}

/// Adds a row to `table` (inside the row `parent` for a nested table such
/// as an area's actions) with the given field values. Returns its id.
pub fn add_row(
    doc: &mut AutoCommit,
    table: &str,
    parent: Option<&str>,
    values: &[(String, String)],
    placement: &Placement,
    author: &Author,
) -> Result<String, ModelError> {
    let id = uuid::Uuid::new_v4().to_string();
    add_row_with_id(doc, table, parent, values, placement, author, &id)?;
    Ok(id)
}

pub(crate) fn add_row_with_id(
    doc: &mut AutoCommit,
    table: &str,
    parent: Option<&str>,
    values: &[(String, String)],
    placement: &Placement,
    author: &Author,
    id: &str,
) -> Result<ObjId, ModelError> {
    let kind = writable(doc)?;
    let schema = kind.schema();
    let def = schema
        .table(table)
        .ok_or_else(|| table_path_error(schema, table))?;
    let (container, ancestors) = match (parent_of(schema.tables, table), parent) {
        (Some(None), None) => (ROOT, Vec::new()),
        (Some(None), Some(_)) => {
            return Err(ModelError::Placement(format!(
                "{} belong to the whole document, not inside another row: leave out --in",
                def.label.to_lowercase()
            )));
        }
        (Some(Some(outer)), Some(parent)) => {
            let loc = find_row(doc, kind, parent)?;
            if loc.table.key != outer.key {
                return Err(ModelError::Placement(format!(
                    "{} go inside an {}, and “{parent}” is a {}",
                    def.label.to_lowercase(),
                    outer.row,
                    loc.table.row
                )));
            }
            refuse_removed(doc, &loc)?;
            let mut ancestors = loc.ancestors.clone();
            ancestors.push(loc.obj.clone());
            (loc.obj, ancestors)
        }
        (Some(Some(outer)), None) => {
            return Err(ModelError::Placement(format!(
                "each {} belongs to an {}: say which with --in <{} id>",
                def.row, outer.row, outer.row
            )));
        }
        (None, _) => return Err(table_path_error(schema, table)),
    };
    let list = match list_of(doc, &container, def.key) {
        Some(list) => list,
        None => doc.put_object(&container, def.key, ObjType::List)?,
    };
    // Check every value before writing anything.
    for (key, _) in values {
        field_of(def, key)?;
    }
    let position = position_for(doc, &list, placement, None, kind)?;
    let index = doc.length(&list);
    let row = doc.insert_object(&list, index, ObjType::Map)?;
    doc.put(&row, "id", id)?;
    doc.put(&row, "position", position)?;
    doc.put(&row, "edits", ScalarValue::counter(0))?;
    for field in def.fields {
        make_field(doc, &row, field)?;
    }
    for inner in def.tables {
        doc.put_object(&row, inner.key, ObjType::List)?;
    }
    for (key, value) in values {
        let (field, sub) = field_of(def, key)?;
        put_value(doc, &row, field, sub.as_deref(), value)?;
    }
    for ancestor in &ancestors {
        bump(doc, ancestor)?;
    }
    note_author(doc, author)?;
    Ok(row)
}

/// Moves a row among its siblings: only its `position` changes, so edits
/// made to it elsewhere at the same time still land.
pub fn move_row(
    doc: &mut AutoCommit,
    row: &str,
    placement: &Placement,
    author: &Author,
) -> Result<(), ModelError> {
    let kind = writable(doc)?;
    let loc = find_row(doc, kind, row)?;
    refuse_removed(doc, &loc)?;
    let position = position_for(doc, &loc.list, placement, Some(&loc.obj), kind)?;
    doc.put(&loc.obj, "position", position)?;
    note_author(doc, author)
}

/// Removes a row. It stays in the document as a tombstone that says who
/// removed it and when, so that if another school edits it at the same
/// time their work is kept and the row can be restored.
pub fn remove_row(doc: &mut AutoCommit, row: &str, author: &Author) -> Result<String, ModelError> {
    let kind = writable(doc)?;
    let loc = find_row(doc, kind, row)?;
    refuse_removed(doc, &loc)?;
    let edits = edits_of(doc, &loc.obj);
    let removal = doc.put_object(&loc.obj, "removed", ObjType::Map)?;
    doc.put(&removal, "by", author.describe())?;
    doc.put(&removal, "at", ScalarValue::Timestamp(author.time * 1000))?;
    doc.put(&removal, "edits", edits)?;
    note_author(doc, author)?;
    Ok(row_label_raw(doc, &loc.obj, loc.table))
}

/// Brings back a removed row, with every edit made to it.
pub fn restore_row(doc: &mut AutoCommit, row: &str, author: &Author) -> Result<String, ModelError> {
    let kind = writable(doc)?;
    let loc = find_row(doc, kind, row)?;
    if !is_removed(doc, &loc.obj) {
        return Err(ModelError::BadValue {
            what: format!(
                "The {} “{}”",
                loc.table.row,
                row_label_raw(doc, &loc.obj, loc.table)
            ),
            reason: "it was not removed, so there is nothing to restore".into(),
        });
    }
    doc.delete(&loc.obj, "removed")?;
    bump(doc, &loc.obj)?;
    note_author(doc, author)?;
    Ok(row_label_raw(doc, &loc.obj, loc.table))
}
