//! Where rows are: found by id (or the start of it), in display order
//! (by `position`, then place in the list), and whether removed. Rows are
//! never addressed by index. Also each row's `edits` counter, which tells
//! a removal made elsewhere that the row was still being worked on.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::doc::{list_of, str_at};
use crate::error::ModelError;
use crate::schema::{DocSchema, Kind, Table};
use crate::text::{short, shorten};

/// Where a row is.
#[derive(Debug, Clone)]
pub struct RowLoc {
    pub obj: ObjId,
    pub id: String,
    pub table: &'static Table,
    /// The list the row is in.
    pub list: ObjId,
    /// The rows this one is inside, outermost first.
    pub ancestors: Vec<ObjId>,
}

fn rows_in(
    doc: &impl ReadDoc,
    parent: &ObjId,
    tables: &'static [Table],
    ancestors: &[ObjId],
    out: &mut Vec<RowLoc>,
) {
    for table in tables {
        let Some(list) = list_of(doc, parent, table.key) else {
            continue;
        };
        for i in 0..doc.length(&list) {
            let Some((Value::Object(ObjType::Map), obj)) = doc.get(&list, i).ok().flatten() else {
                continue;
            };
            let id = str_at(doc, &obj, "id").unwrap_or_default();
            let mut inner = ancestors.to_vec();
            inner.push(obj.clone());
            rows_in(doc, &obj, table.tables, &inner, out);
            out.push(RowLoc {
                obj,
                id,
                table,
                list: list.clone(),
                ancestors: ancestors.to_vec(),
            });
        }
    }
}

pub fn all_rows(doc: &impl ReadDoc, schema: &'static DocSchema) -> Vec<RowLoc> {
    let mut out = Vec::new();
    rows_in(doc, &ROOT, schema.tables, &[], &mut out);
    out
}

/// The row whose id is `id` or starts with it (as short ids are shown).
pub fn find_row(doc: &impl ReadDoc, kind: Kind, id: &str) -> Result<RowLoc, ModelError> {
    let wanted = id.trim().to_lowercase();
    if wanted.is_empty() {
        return Err(ModelError::NoSuchRow { id: id.into() });
    }
    let rows = all_rows(doc, kind.schema());
    if let Some(exact) = rows.iter().find(|r| r.id == wanted) {
        return Ok(exact.clone());
    }
    let matches: Vec<&RowLoc> = rows.iter().filter(|r| r.id.starts_with(&wanted)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ModelError::NoSuchRow { id: id.into() }),
        many => Err(ModelError::AmbiguousRow {
            id: id.into(),
            matches: many
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn position_of(doc: &impl ReadDoc, row: &ObjId, index: usize) -> f64 {
    match doc.get(row, "position").ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_f64().unwrap_or(index as f64),
        _ => index as f64,
    }
}

/// Rows of one list in display order: (position, place in the list).
pub(crate) fn ordered(doc: &impl ReadDoc, list: &ObjId) -> Vec<(f64, ObjId)> {
    let mut rows: Vec<(f64, usize, ObjId)> = (0..doc.length(list))
        .filter_map(|i| match doc.get(list, i).ok().flatten() {
            Some((Value::Object(ObjType::Map), obj)) => Some((position_of(doc, &obj, i), i, obj)),
            _ => None,
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|(p, _, o)| (p, o)).collect()
}

pub(crate) fn is_removed(doc: &impl ReadDoc, row: &ObjId) -> bool {
    matches!(
        doc.get(row, "removed").ok().flatten(),
        Some((Value::Object(_), _))
    )
}

pub(crate) fn refuse_removed(doc: &impl ReadDoc, loc: &RowLoc) -> Result<(), ModelError> {
    for obj in loc.ancestors.iter().chain(std::iter::once(&loc.obj)) {
        if let Some((Value::Object(ObjType::Map), removal)) = doc.get(obj, "removed").ok().flatten()
        {
            let by = str_at(doc, &removal, "by").unwrap_or_else(|| "another school".into());
            let id = str_at(doc, obj, "id").unwrap_or_default();
            let label = row_label_raw(doc, obj, loc.table);
            return Err(ModelError::RowRemoved {
                row: loc.table.row,
                label,
                by,
                id: short(&id).to_string(),
            });
        }
    }
    Ok(())
}

pub(crate) fn row_label_raw(doc: &impl ReadDoc, obj: &ObjId, table: &Table) -> String {
    table
        .fields
        .iter()
        .find_map(|f| str_at(doc, obj, f.key).filter(|s| !s.trim().is_empty()))
        .map(|s| shorten(&s, 48))
        .unwrap_or_else(|| table.row.to_string())
}

/// Counts an edit on a row, so a removal made elsewhere at the same time
/// can tell that the row was still being worked on.
pub(crate) fn bump(doc: &mut AutoCommit, row: &ObjId) -> Result<(), ModelError> {
    match doc.get(row, "edits")? {
        Some((Value::Scalar(s), _)) if s.is_counter() => doc.increment(row, "edits", 1)?,
        _ => doc.put(row, "edits", ScalarValue::counter(1))?,
    }
    Ok(())
}

pub(crate) fn edits_of(doc: &impl ReadDoc, row: &ObjId) -> i64 {
    match doc.get(row, "edits").ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_i64().unwrap_or(0),
        _ => 0,
    }
}

pub(crate) fn bump_all(doc: &mut AutoCommit, loc: &RowLoc) -> Result<(), ModelError> {
    for obj in loc.ancestors.iter().chain(std::iter::once(&loc.obj)) {
        bump(doc, obj)?;
    }
    Ok(())
}
