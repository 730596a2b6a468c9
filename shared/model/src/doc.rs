//! Creating, editing and reading the documents in Automerge, driven by
//! `schema`. Every write a command makes goes through a function here,
//! called inside `Store::change` with the school's actor already set.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::error::ModelError;
use crate::records::{self, ActorEntry, Review};
use crate::schema::{DocSchema, Field, FieldType, Kind, SCHEMA_VERSION, Table};
use crate::text::{short, shorten};
use crate::when::{When, when_text};

/// Who makes an edit, and when (seconds since 1970): kept in the
/// document's `actors` map and in removal records.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    pub school: String,
    pub person: Option<String>,
    pub time: i64,
}

impl Author {
    pub fn describe(&self) -> String {
        match &self.person {
            Some(person) => format!("{person} ({})", self.school),
            None => self.school.clone(),
        }
    }
}

/// Where a new or moved row goes among its siblings.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    End,
    Start,
    Before(String),
    After(String),
}

/// How to change a prose field in place.
#[derive(Debug, Clone, PartialEq)]
pub enum ProseEdit {
    Append(String),
    Insert {
        at: usize,
        text: String,
    },
    Delete {
        at: usize,
        count: usize,
    },
    /// The whole text becomes this; unchanged parts are kept as they are,
    /// so a partner's concurrent typing in them survives.
    Replace(String),
}

/// One value of a field that holds several, and who set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub value: Json,
    pub text: String,
    pub actor: String,
    pub school: Option<String>,
    pub person: Option<String>,
}

impl Candidate {
    pub fn who(&self) -> String {
        match (&self.person, &self.school) {
            (Some(p), Some(s)) => format!("{p} ({s})"),
            (None, Some(s)) => s.clone(),
            (Some(p), None) => p.clone(),
            (None, None) => format!("an unknown school (actor {:.8})", self.actor),
        }
    }
}

/// A field as read: the value (if it holds one value) and, when schools
/// set it to different values at once, every value with who set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldView {
    pub key: &'static str,
    pub label: &'static str,
    pub value: Json,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflict: Vec<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removal {
    pub by: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowView {
    pub id: String,
    #[serde(skip)]
    pub row: &'static str,
    pub fields: Vec<FieldView>,
    pub tables: Vec<TableView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removal>,
    /// Removed at one school while another school edited it: the edit is
    /// kept, and the row can be restored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub edited_after_removal: bool,
}

impl RowView {
    pub fn field(&self, key: &str) -> Option<&FieldView> {
        self.fields.iter().find(|f| f.key == key)
    }

    pub fn table(&self, key: &str) -> Option<&TableView> {
        self.tables.iter().find(|t| t.key == key)
    }

    /// The first words of the row's first field: how a person names it.
    pub fn label(&self) -> String {
        let text = self
            .fields
            .iter()
            .find(|f| !f.text.is_empty())
            .map(|f| f.text.clone())
            .unwrap_or_else(|| format!("{} {}", self.row, short(&self.id)));
        shorten(&text, 48)
    }

    /// The rows of a table in display order, without removed ones.
    pub fn live(&self, key: &str) -> Vec<&RowView> {
        self.table(key).map(TableView::live).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableView {
    pub key: &'static str,
    pub label: &'static str,
    pub row: &'static str,
    #[serde(skip)]
    pub table: &'static Table,
    pub rows: Vec<RowView>,
}

impl PartialEq for TableView {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.rows == other.rows
    }
}

impl TableView {
    pub fn live(&self) -> Vec<&RowView> {
        self.rows.iter().filter(|r| r.removed.is_none()).collect()
    }
}

/// A whole document as read, with every conflict in place.
#[derive(Debug, Clone, PartialEq)]
pub struct DocView {
    pub kind: Kind,
    pub schema_version: i64,
    pub title: String,
    pub partnership: Option<String>,
    pub fields: Vec<FieldView>,
    pub tables: Vec<TableView>,
    pub reviews: Vec<Review>,
    pub actors: BTreeMap<String, ActorEntry>,
}

/// A field holding several values, where it is in the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// "Safeguarding › action “Peer review…” › Status".
    pub place: String,
    pub row: Option<String>,
    pub field: &'static str,
    pub values: Vec<Candidate>,
}

impl DocView {
    pub fn field(&self, key: &str) -> Option<&FieldView> {
        self.fields.iter().find(|f| f.key == key)
    }

    pub fn table(&self, key: &str) -> Option<&TableView> {
        self.tables.iter().find(|t| t.key == key)
    }

    pub fn live(&self, key: &str) -> Vec<&RowView> {
        self.table(key).map(TableView::live).unwrap_or_default()
    }

    /// Every row at any depth, with its place ("Safeguarding › action …").
    pub fn rows(&self) -> Vec<(String, &RowView)> {
        fn walk<'a>(tables: &'a [TableView], prefix: &str, out: &mut Vec<(String, &'a RowView)>) {
            for table in tables {
                for row in &table.rows {
                    let place = if prefix.is_empty() {
                        format!("{} “{}”", table.row, row.label())
                    } else {
                        format!("{prefix} › {} “{}”", table.row, row.label())
                    };
                    out.push((place.clone(), row));
                    walk(&row.tables, &place, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.tables, "", &mut out);
        out
    }

    pub fn row(&self, id: &str) -> Option<&RowView> {
        self.rows().into_iter().map(|(_, r)| r).find(|r| r.id == id)
    }

    /// Every field that holds more than one value.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut out = Vec::new();
        for field in &self.fields {
            if !field.conflict.is_empty() {
                out.push(Conflict {
                    place: field.label.to_string(),
                    row: None,
                    field: field.key,
                    values: field.conflict.clone(),
                });
            }
        }
        for (place, row) in self.rows() {
            for field in &row.fields {
                if !field.conflict.is_empty() {
                    out.push(Conflict {
                        place: format!("{place} › {}", field.label),
                        row: Some(row.id.clone()),
                        field: field.key,
                        values: field.conflict.clone(),
                    });
                }
            }
        }
        out
    }

    /// Rows removed at one school while another edited them.
    pub fn removed_while_edited(&self) -> Vec<(String, &RowView)> {
        self.rows()
            .into_iter()
            .filter(|(_, r)| r.edited_after_removal)
            .collect()
    }

    /// The document as JSON for `--json` and other programs: fields by
    /// key, rows as objects with their `id`, a field in conflict as
    /// `{"conflict": [{value, school, person}, …]}`, then every conflict,
    /// review and signature.
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("kind".into(), json!(self.kind.key()));
        out.insert("schemaVersion".into(), json!(self.schema_version));
        out.insert("title".into(), json!(self.title));
        if let Some(p) = &self.partnership {
            out.insert("partnership".into(), json!(p));
        }
        fields_json(&self.fields, &mut out);
        tables_json(&self.tables, &mut out);
        out.insert("conflicts".into(), json!(self.conflicts()));
        out.insert("reviews".into(), json!(self.reviews));
        Json::Object(out)
    }
}

fn fields_json(fields: &[FieldView], out: &mut Map<String, Json>) {
    for field in fields {
        let value = if field.conflict.is_empty() {
            field.value.clone()
        } else {
            json!({ "conflict": field.conflict })
        };
        out.insert(field.key.into(), value);
    }
}

fn tables_json(tables: &[TableView], out: &mut Map<String, Json>) {
    for table in tables {
        let rows: Vec<Json> = table
            .rows
            .iter()
            .map(|row| {
                let mut obj = Map::new();
                obj.insert("id".into(), json!(row.id));
                if let Some(removed) = &row.removed {
                    obj.insert("removed".into(), json!(removed));
                }
                if row.edited_after_removal {
                    obj.insert("editedAfterRemoval".into(), json!(true));
                }
                fields_json(&row.fields, &mut obj);
                tables_json(&row.tables, &mut obj);
                Json::Object(obj)
            })
            .collect();
        out.insert(table.key.into(), Json::Array(rows));
    }
}

// ---------------------------------------------------------------------
// Creating

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

fn make_field(doc: &mut AutoCommit, obj: &ObjId, field: &Field) -> Result<(), ModelError> {
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

/// Records this school's actor in the document's `actors` map, so every
/// reader can say which school and person made each change.
pub fn note_author(doc: &mut AutoCommit, author: &Author) -> Result<(), ModelError> {
    let actor = doc.get_actor().to_hex_string();
    let entry = ActorEntry {
        school: author.school.clone(),
        person: author.person.clone(),
    };
    let actors = match doc.get(ROOT, "actors")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => doc.put_object(ROOT, "actors", ObjType::Map)?,
    };
    let known: Option<ActorEntry> = autosurgeon::hydrate_prop(doc, &actors, actor.as_str()).ok();
    if known.as_ref() != Some(&entry) {
        // A person who edits without naming themselves keeps the name
        // given before.
        let entry = match (known, entry) {
            (Some(old), new) if new.person.is_none() && old.school == new.school => old,
            (_, new) => new,
        };
        autosurgeon::reconcile_prop(doc, &actors, actor.as_str(), &entry)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Reading the kind and version

/// The document's kind and schema version, refusing documents that are
/// not ours.
pub fn kind_of(doc: &AutoCommit) -> Result<(Kind, i64), ModelError> {
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

// ---------------------------------------------------------------------
// Finding rows

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

fn list_of(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok().flatten() {
        Some((Value::Object(ObjType::List), id)) => Some(id),
        _ => None,
    }
}

fn str_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_str().map(str::to_string),
        Some((Value::Object(ObjType::Text), id)) => doc.text(&id).ok(),
        _ => None,
    }
}

fn rows_in(
    doc: &AutoCommit,
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

pub fn all_rows(doc: &AutoCommit, schema: &'static DocSchema) -> Vec<RowLoc> {
    let mut out = Vec::new();
    rows_in(doc, &ROOT, schema.tables, &[], &mut out);
    out
}

/// The row whose id is `id` or starts with it (as short ids are shown).
pub fn find_row(doc: &AutoCommit, kind: Kind, id: &str) -> Result<RowLoc, ModelError> {
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

fn position_of(doc: &AutoCommit, row: &ObjId, index: usize) -> f64 {
    match doc.get(row, "position").ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_f64().unwrap_or(index as f64),
        _ => index as f64,
    }
}

/// Rows of one list in display order: (position, place in the list).
fn ordered(doc: &AutoCommit, list: &ObjId) -> Vec<(f64, ObjId)> {
    let mut rows: Vec<(f64, usize, ObjId)> = (0..doc.length(list))
        .filter_map(|i| match doc.get(list, i).ok().flatten() {
            Some((Value::Object(ObjType::Map), obj)) => Some((position_of(doc, &obj, i), i, obj)),
            _ => None,
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|(p, _, o)| (p, o)).collect()
}

fn is_removed(doc: &AutoCommit, row: &ObjId) -> bool {
    matches!(
        doc.get(row, "removed").ok().flatten(),
        Some((Value::Object(_), _))
    )
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

// ---------------------------------------------------------------------
// Editing rows

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

/// A field of a row's table, by key, or "responsibility.person".
fn field_of(table: &Table, key: &str) -> Result<(&'static Field, Option<String>), ModelError> {
    let (name, sub) = match key.split_once('.') {
        Some((name, sub)) => (name, Some(sub.to_string())),
        None => (key, None),
    };
    let unknown = || ModelError::UnknownField {
        field: key.into(),
        of: format!("an {}", table.row),
        known: table
            .fields
            .iter()
            .map(|f| f.key)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let field = table.field(name).ok_or_else(unknown)?;
    if let Some(sub) = &sub
        && !(matches!(field.ty, FieldType::Responsibility)
            && RESPONSIBILITY_PARTS.contains(&sub.as_str()))
    {
        return Err(unknown());
    }
    Ok((field, sub))
}

const RESPONSIBILITY_PARTS: [&str; 3] = ["person", "role", "school"];

fn refuse_removed(doc: &AutoCommit, loc: &RowLoc) -> Result<(), ModelError> {
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

fn row_label_raw(doc: &AutoCommit, obj: &ObjId, table: &Table) -> String {
    table
        .fields
        .iter()
        .find_map(|f| str_at(doc, obj, f.key).filter(|s| !s.trim().is_empty()))
        .map(|s| shorten(&s, 48))
        .unwrap_or_else(|| table.row.to_string())
}

/// Counts an edit on a row, so a removal made elsewhere at the same time
/// can tell that the row was still being worked on.
fn bump(doc: &mut AutoCommit, row: &ObjId) -> Result<(), ModelError> {
    match doc.get(row, "edits")? {
        Some((Value::Scalar(s), _)) if s.is_counter() => doc.increment(row, "edits", 1)?,
        _ => doc.put(row, "edits", ScalarValue::counter(1))?,
    }
    Ok(())
}

fn edits_of(doc: &AutoCommit, row: &ObjId) -> i64 {
    match doc.get(row, "edits").ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// What a field of the document itself or of a row is.
enum Target {
    Root(&'static Field),
    Row(RowLoc, &'static Field, Option<String>),
}

fn target(
    doc: &AutoCommit,
    kind: Kind,
    row: Option<&str>,
    key: &str,
) -> Result<Target, ModelError> {
    match row {
        None => {
            let schema = kind.schema();
            let field = schema.field(key).ok_or_else(|| ModelError::UnknownField {
                field: key.into(),
                of: format!("a {} itself", kind.label().to_lowercase()),
                known: {
                    let mut known: Vec<&str> = vec!["title"];
                    known.extend(schema.fields.iter().map(|f| f.key));
                    known.join(", ")
                },
            })?;
            Ok(Target::Root(field))
        }
        Some(id) => {
            let loc = find_row(doc, kind, id)?;
            let (field, sub) = field_of(loc.table, key)?;
            Ok(Target::Row(loc, field, sub))
        }
    }
}

static TITLE: Field = Field {
    key: "title",
    label: "Title",
    ty: FieldType::Prose,
};

/// Sets a field of the document (`row` None) or of a row. Setting a field
/// that holds a conflict resolves it: the new value supersedes every value
/// it was chosen from.
pub fn set_field(
    doc: &mut AutoCommit,
    row: Option<&str>,
    key: &str,
    value: &str,
    author: &Author,
) -> Result<(), ModelError> {
    let kind = writable(doc)?;
    if row.is_none() && key == "title" {
        put_value(doc, &ROOT, &TITLE, None, value)?;
        return note_author(doc, author);
    }
    match target(doc, kind, row, key)? {
        Target::Root(field) => put_value(doc, &ROOT, field, None, value)?,
        Target::Row(loc, field, sub) => {
            refuse_removed(doc, &loc)?;
            put_value(doc, &loc.obj, field, sub.as_deref(), value)?;
            bump_all(doc, &loc)?;
        }
    }
    note_author(doc, author)
}

fn bump_all(doc: &mut AutoCommit, loc: &RowLoc) -> Result<(), ModelError> {
    for obj in loc.ancestors.iter().chain(std::iter::once(&loc.obj)) {
        bump(doc, obj)?;
    }
    Ok(())
}

/// Resolves a conflict by keeping the value one school set: `choice` is a
/// school's name (or part of it) or the value itself.
pub fn resolve(
    doc: &mut AutoCommit,
    row: Option<&str>,
    key: &str,
    choice: &str,
    author: &Author,
) -> Result<String, ModelError> {
    let view = read(doc)?;
    let field = match row {
        None => view.field(key).cloned(),
        Some(id) => {
            let loc = find_row(doc, view.kind, id)?;
            view.row(&loc.id).and_then(|r| r.field(key)).cloned()
        }
    }
    .ok_or_else(|| ModelError::UnknownField {
        field: key.into(),
        of: "this row".into(),
        known: "see `partnerplan view`".into(),
    })?;
    if field.conflict.is_empty() {
        return Err(ModelError::BadValue {
            what: field.label.to_string(),
            reason: format!(
                "there is no conflict to resolve here; it holds “{}”. Use `partnerplan put` to change it",
                field.text
            ),
        });
    }
    let chosen = choose(&field, choice)?;
    let input = match &chosen.value {
        Json::Object(parts) => RESPONSIBILITY_PARTS
            .iter()
            .map(|p| parts.get(*p).and_then(Json::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("; "),
        Json::Array(_) | Json::Null => chosen.text.clone(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    set_field(doc, row, key, &input, author)?;
    Ok(chosen.text.clone())
}

/// The value of a conflict that `choice` names: the value itself, a
/// school or person named exactly, or part of a name, which must then
/// name only schools that gave the same value.
fn choose<'a>(field: &'a FieldView, choice: &str) -> Result<&'a Candidate, ModelError> {
    let wanted = choice.trim().to_lowercase();
    let listed = |among: &[&Candidate]| {
        among
            .iter()
            .map(|c| format!("“{}” ({})", c.text, c.who()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names = |c: &Candidate| -> Vec<String> {
        [c.school.as_deref(), c.person.as_deref()]
            .into_iter()
            .flatten()
            .map(str::to_lowercase)
            .collect()
    };
    let values = &field.conflict;
    if let Some(c) = values.iter().find(|c| c.text.to_lowercase() == wanted) {
        return Ok(c);
    }
    let exact: Vec<&Candidate> = values
        .iter()
        .filter(|c| names(c).contains(&wanted))
        .collect();
    let partial: Vec<&Candidate> = values
        .iter()
        .filter(|c| !wanted.is_empty() && names(c).iter().any(|n| n.contains(&wanted)))
        .collect();
    let matches = if exact.is_empty() { partial } else { exact };
    match matches.as_slice() {
        [] => Err(ModelError::BadValue {
            what: field.label.to_string(),
            reason: format!(
                "“{choice}” is none of the values in conflict; choose one of {}, or the school that set it",
                listed(&values.iter().collect::<Vec<_>>())
            ),
        }),
        [first, rest @ ..] if rest.iter().all(|c| c.value == first.value) => Ok(first),
        several => Err(ModelError::BadValue {
            what: field.label.to_string(),
            reason: format!(
                "“{choice}” names more than one school, and they gave different values: {}. Give the value to keep, or more of the school's name",
                listed(several)
            ),
        }),
    }
}

/// Edits a prose field in place.
pub fn edit_prose(
    doc: &mut AutoCommit,
    row: Option<&str>,
    key: &str,
    edit: &ProseEdit,
    author: &Author,
) -> Result<String, ModelError> {
    let kind = writable(doc)?;
    let (obj, field, loc) = if row.is_none() && key == "title" {
        (ROOT, &TITLE, None)
    } else {
        match target(doc, kind, row, key)? {
            Target::Root(field) => (ROOT, field, None),
            Target::Row(loc, field, _) => {
                refuse_removed(doc, &loc)?;
                (loc.obj.clone(), field, Some(loc))
            }
        }
    };
    if !field.ty.is_prose() {
        return Err(ModelError::BadValue {
            what: field.label.into(),
            reason: "it is a single value, not text to type into; give it a value with `partnerplan put`".into(),
        });
    }
    let text = ensure_text(doc, &obj, field.key)?;
    splice_prose(doc, &text, edit)?.map_err(|reason| ModelError::BadValue {
        what: field.label.into(),
        reason,
    })?;
    if let Some(loc) = &loc {
        bump_all(doc, loc)?;
    }
    note_author(doc, author)?;
    Ok(doc.text(&text)?)
}

/// Applies one edit to a text object. The inner `Err` says, for a person,
/// why the edit does not fit the text (a position past its end).
pub fn splice_prose(
    doc: &mut AutoCommit,
    text: &ObjId,
    edit: &ProseEdit,
) -> Result<Result<(), String>, automerge::AutomergeError> {
    let length = doc.length(text);
    match edit {
        ProseEdit::Append(more) => doc.splice_text(text, length, 0, more)?,
        ProseEdit::Insert { at, text: more } => {
            if *at > length {
                return Ok(Err(format!(
                    "position {at} is past its end ({length} characters)"
                )));
            }
            doc.splice_text(text, *at, 0, more)?
        }
        ProseEdit::Delete { at, count } => {
            if at + count > length {
                return Ok(Err(format!(
                    "deleting {count} characters at {at} goes past its end ({length} characters)"
                )));
            }
            doc.splice_text(text, *at, *count as isize, "")?
        }
        ProseEdit::Replace(new) => doc.update_text(text, new)?,
    }
    Ok(Ok(()))
}

fn ensure_text(doc: &mut AutoCommit, obj: &ObjId, key: &str) -> Result<ObjId, ModelError> {
    match doc.get(obj, key)? {
        Some((Value::Object(ObjType::Text), id)) => Ok(id),
        other => {
            // An older shape kept this as a plain string: keep its words.
            let existing = match other {
                Some((Value::Scalar(s), _)) => s.as_str().unwrap_or("").to_string(),
                _ => String::new(),
            };
            let text = doc.put_object(obj, key, ObjType::Text)?;
            doc.splice_text(&text, 0, 0, &existing)?;
            Ok(text)
        }
    }
}

/// Writes `input` into `field` of `obj`, as the field's type requires.
fn put_value(
    doc: &mut AutoCommit,
    obj: &ObjId,
    field: &Field,
    sub: Option<&str>,
    input: &str,
) -> Result<(), ModelError> {
    let bad = |reason: String| ModelError::BadValue {
        what: field.label.to_string(),
        reason,
    };
    let trimmed = input.trim();
    match field.ty {
        FieldType::Prose => {
            if doc.get_all(obj, field.key)?.len() > 1 {
                // Two texts made at once (by an older version): a new
                // text replaces both, which resolves the conflict.
                let text = doc.put_object(obj, field.key, ObjType::Text)?;
                doc.splice_text(&text, 0, 0, input)?;
            } else {
                let text = ensure_text(doc, obj, field.key)?;
                doc.update_text(&text, input)?;
            }
        }
        FieldType::Line => put_scalar(
            doc,
            obj,
            field.key,
            (!trimmed.is_empty()).then(|| trimmed.into()),
        )?,
        FieldType::Choice(choices) => {
            let value = if trimmed.is_empty() {
                None
            } else {
                Some(ScalarValue::from(choices.parse(trimmed).map_err(bad)?))
            };
            put_scalar(doc, obj, field.key, value)?
        }
        FieldType::When => {
            let value = if trimmed.is_empty() {
                None
            } else {
                let when =
                    When::parse(trimmed).map_err(|e| bad(e.0.trim_end_matches('.').to_string()))?;
                Some(ScalarValue::from(when.to_string()))
            };
            put_scalar(doc, obj, field.key, value)?
        }
        FieldType::Integer => {
            let value = if trimmed.is_empty() {
                None
            } else {
                let n: i64 = trimmed.replace(',', "").parse().map_err(|_| {
                    bad(format!(
                        "“{trimmed}” is not a whole number; write it in digits, such as 12"
                    ))
                })?;
                Some(ScalarValue::Int(n))
            };
            put_scalar(doc, obj, field.key, value)?
        }
        FieldType::Percent => {
            let value = if trimmed.is_empty() {
                None
            } else {
                let n: f64 = trimmed.trim_end_matches('%').trim().parse().map_err(|_| {
                    bad(format!(
                        "“{trimmed}” is not a percentage; write a number such as 85.4"
                    ))
                })?;
                if !(0.0..=100.0).contains(&n) {
                    return Err(bad(format!("{n} is not between 0 and 100")));
                }
                Some(ScalarValue::F64(n))
            };
            put_scalar(doc, obj, field.key, value)?
        }
        FieldType::Links => {
            let numbers = parse_links(trimmed).map_err(bad)?;
            let links = match doc.get(obj, field.key)? {
                Some((Value::Object(ObjType::Map), id)) => id,
                _ => doc.put_object(obj, field.key, ObjType::Map)?,
            };
            let wanted: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
            for key in doc.keys(&links).collect::<Vec<_>>() {
                if !wanted.contains(&key) {
                    doc.delete(&links, key.as_str())?;
                }
            }
            for key in wanted {
                if doc.get(&links, key.as_str())?.is_none() {
                    doc.put(&links, key.as_str(), true)?;
                }
            }
        }
        FieldType::Responsibility => {
            let current = doc.get_all(obj, field.key)?;
            let map = match current.as_slice() {
                [(Value::Object(ObjType::Map), id)] => id.clone(),
                [_, _, ..] if sub.is_some() => {
                    return Err(bad(
                        "schools gave two different responsibilities here at once; choose one with `partnerplan resolve`, or give the whole as person; role; school"
                            .into(),
                    ));
                }
                // The whole, given where there was a conflict: a new map
                // replaces every value, which resolves it.
                [_, _, ..] => doc.put_object(obj, field.key, ObjType::Map)?,
                // Version 1 kept one line of text here: it becomes the
                // person, so giving one part keeps what was written.
                [(Value::Scalar(line), _)] => {
                    let line = line.as_str().unwrap_or("").trim().to_string();
                    let map = doc.put_object(obj, field.key, ObjType::Map)?;
                    if sub.is_some() && !line.is_empty() {
                        doc.put(&map, "person", line)?;
                    }
                    map
                }
                _ => doc.put_object(obj, field.key, ObjType::Map)?,
            };
            let parts: Vec<(&str, String)> = match sub {
                Some(part) => vec![(
                    RESPONSIBILITY_PARTS
                        .iter()
                        .find(|p| **p == part)
                        .copied()
                        .unwrap_or("person"),
                    trimmed.to_string(),
                )],
                None => {
                    let given: Vec<&str> = input.split(';').map(str::trim).collect();
                    if given.len() > 3 {
                        return Err(bad(
                            "write it as person; role; school (any part may be left empty, as in “; SENCO; St Mary's RC”)"
                                .into(),
                        ));
                    }
                    RESPONSIBILITY_PARTS
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (*p, given.get(i).copied().unwrap_or("").to_string()))
                        .collect()
                }
            };
            if sub.is_some() {
                for (part, value) in parts {
                    put_scalar(doc, &map, part, (!value.is_empty()).then(|| value.into()))?;
                }
            } else {
                // The whole responsibility: every part is written, an
                // empty one as "", so two schools setting it at once
                // disagree part by part and are reported as a conflict,
                // instead of merging into one that neither school gave.
                for (part, value) in parts {
                    doc.put(&map, part, value)?;
                }
            }
        }
    }
    Ok(())
}

/// Puts a scalar, or removes it for `None`, skipping a write that would
/// change nothing (so an unchanged value never becomes half a conflict).
fn put_scalar(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: Option<ScalarValue>,
) -> Result<(), ModelError> {
    let current = doc.get_all(obj, key)?;
    let same = match (&value, current.as_slice()) {
        (None, []) => true,
        (Some(v), [(Value::Scalar(s), _)]) => s.as_ref() == v,
        _ => false,
    };
    if same {
        return Ok(());
    }
    match value {
        Some(v) => doc.put(obj, key, v)?,
        None => doc.delete(obj, key)?,
    }
    Ok(())
}

/// "1, 2, 5", "Objective 1 Objective 2", "" (none).
pub fn parse_links(input: &str) -> Result<Vec<i64>, String> {
    let mut numbers = Vec::new();
    for word in input
        .split(|c: char| c == ',' || c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
    {
        let lower = word.to_lowercase();
        if lower == "objective" || lower == "objectives" || lower == "and" || lower == "&" {
            continue;
        }
        let n: i64 = word.parse().map_err(|_| {
            format!("“{word}” is not an objective number; list numbers such as 1, 2, 5")
        })?;
        if n < 1 {
            return Err(format!("objectives are numbered from 1, so {n} is not one"));
        }
        if !numbers.contains(&n) {
            numbers.push(n);
        }
    }
    numbers.sort();
    Ok(numbers)
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

// ---------------------------------------------------------------------
// Reading

/// The whole document, typed, with conflicts, tolerant of every older
/// shape (missing fields read as empty, version 1's one-line
/// responsibility reads as the person).
pub fn read(doc: &AutoCommit) -> Result<DocView, ModelError> {
    let (kind, schema_version) = kind_of(doc)?;
    let schema = kind.schema();
    let actors = records::actors(doc);
    let title = str_at(doc, &ROOT, "title").unwrap_or_default();
    let partnership = str_at(doc, &ROOT, "partnership");
    let fields = schema
        .fields
        .iter()
        .map(|f| read_field(doc, &ROOT, f, &actors))
        .collect();
    let tables = schema
        .tables
        .iter()
        .map(|t| read_table(doc, &ROOT, t, &actors))
        .collect();
    Ok(DocView {
        kind,
        schema_version,
        title,
        partnership,
        fields,
        tables,
        reviews: records::reviews(doc),
        actors,
    })
}

fn read_table(
    doc: &AutoCommit,
    parent: &ObjId,
    table: &'static Table,
    actors: &BTreeMap<String, ActorEntry>,
) -> TableView {
    let rows = match list_of(doc, parent, table.key) {
        Some(list) => ordered(doc, &list)
            .into_iter()
            .map(|(_, obj)| read_row(doc, &obj, table, actors))
            .collect(),
        None => Vec::new(),
    };
    TableView {
        key: table.key,
        label: table.label,
        row: table.row,
        table,
        rows,
    }
}

fn read_row(
    doc: &AutoCommit,
    obj: &ObjId,
    table: &'static Table,
    actors: &BTreeMap<String, ActorEntry>,
) -> RowView {
    let removal = match doc.get(obj, "removed").ok().flatten() {
        Some((Value::Object(ObjType::Map), id)) => Some(id),
        _ => None,
    };
    let (removed, edited_after_removal) = match removal {
        Some(id) => {
            let by = str_at(doc, &id, "by").unwrap_or_else(|| "another school".into());
            let (at, seen) = match (
                doc.get(&id, "at").ok().flatten(),
                doc.get(&id, "edits").ok().flatten(),
            ) {
                (Some((Value::Scalar(at), _)), Some((Value::Scalar(seen), _))) => {
                    (at.as_i64().unwrap_or(0) / 1000, seen.as_i64().unwrap_or(0))
                }
                _ => (0, i64::MAX),
            };
            (Some(Removal { by, at }), edits_of(doc, obj) > seen)
        }
        None => (None, false),
    };
    RowView {
        id: str_at(doc, obj, "id").unwrap_or_default(),
        row: table.row,
        fields: table
            .fields
            .iter()
            .map(|f| read_field(doc, obj, f, actors))
            .collect(),
        tables: table
            .tables
            .iter()
            .map(|t| read_table(doc, obj, t, actors))
            .collect(),
        removed,
        edited_after_removal,
    }
}

fn actor_of(id: &automerge::ObjId) -> String {
    match id {
        automerge::ObjId::Id(_, actor, _) => actor.to_hex_string(),
        automerge::ObjId::Root => String::new(),
    }
}

fn candidate(
    value: Json,
    text: String,
    actor: String,
    actors: &BTreeMap<String, ActorEntry>,
) -> Candidate {
    let entry = actors.get(&actor);
    Candidate {
        value,
        text,
        school: entry.map(|e| e.school.clone()),
        person: entry.and_then(|e| e.person.clone()),
        actor,
    }
}

/// Every value a key holds, as (JSON, display text, actor), with equal
/// values set by several schools counted once.
fn values_at(
    doc: &AutoCommit,
    obj: &ObjId,
    key: &str,
    ty: FieldType,
) -> Vec<(Json, String, String)> {
    let mut out: Vec<(Json, String, String)> = Vec::new();
    for (value, id) in doc.get_all(obj, key).unwrap_or_default() {
        let (json, text) = match value {
            Value::Scalar(s) => scalar_view(&s, ty),
            Value::Object(ObjType::Text) => {
                let t = doc.text(&id).unwrap_or_default();
                (json!(t), t)
            }
            Value::Object(_) => (Json::Null, String::new()),
        };
        if !out.iter().any(|(j, _, _)| *j == json) {
            out.push((json, text, actor_of(&id)));
        }
    }
    out
}

fn scalar_view(s: &ScalarValue, ty: FieldType) -> (Json, String) {
    match s {
        ScalarValue::Str(v) => {
            let text = match ty {
                FieldType::When => when_text(v),
                _ => v.to_string(),
            };
            (json!(v.to_string()), text)
        }
        ScalarValue::Int(i) => (json!(i), i.to_string()),
        ScalarValue::Uint(u) => (json!(u), u.to_string()),
        ScalarValue::F64(f) => (json!(f), format!("{f}")),
        ScalarValue::Boolean(b) => (json!(b), b.to_string()),
        ScalarValue::Null => (Json::Null, String::new()),
        other => (json!(other.to_string()), other.to_string()),
    }
}

fn read_field(
    doc: &AutoCommit,
    obj: &ObjId,
    field: &'static Field,
    actors: &BTreeMap<String, ActorEntry>,
) -> FieldView {
    let mut view = FieldView {
        key: field.key,
        label: field.label,
        value: Json::Null,
        text: String::new(),
        conflict: Vec::new(),
    };
    match field.ty {
        FieldType::Links => {
            if let Some((Value::Object(ObjType::Map), links)) =
                doc.get(obj, field.key).ok().flatten()
            {
                let mut numbers: Vec<i64> =
                    doc.keys(&links).filter_map(|k| k.parse().ok()).collect();
                numbers.sort();
                view.text = numbers
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                view.value = json!(numbers);
            } else {
                view.value = json!([]);
            }
        }
        FieldType::Responsibility => read_responsibilities(doc, obj, field.key, &mut view, actors),
        ty => {
            let values = values_at(doc, obj, field.key, ty);
            if values.len() > 1 {
                view.conflict = values
                    .into_iter()
                    .map(|(v, t, a)| candidate(v, t, a, actors))
                    .collect();
                view.text = view
                    .conflict
                    .iter()
                    .map(|c| c.text.clone())
                    .collect::<Vec<_>>()
                    .join(" / ");
            } else if let Some((v, t, _)) = values.into_iter().next() {
                view.value = v;
                view.text = t;
            }
        }
    }
    view
}

fn responsibility_text(parts: &Map<String, Json>) -> String {
    let get = |k: &str| {
        parts
            .get(k)
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (person, role, school) = (get("person"), get("role"), get("school"));
    let who = match (person.is_empty(), role.is_empty()) {
        (false, false) => format!("{person} ({role})"),
        (false, true) => person,
        (true, false) => role,
        (true, true) => String::new(),
    };
    match (who.is_empty(), school.is_empty()) {
        (false, false) => format!("{who}, {school}"),
        (true, false) => school,
        _ => who,
    }
}

/// A responsibility field: one map (read part by part), version 1's one
/// line (the person), or, where two schools made it at once (each
/// converting a version 1 line), several of these, reported as a
/// conflict of wholes.
fn read_responsibilities(
    doc: &AutoCommit,
    obj: &ObjId,
    key: &str,
    view: &mut FieldView,
    actors: &BTreeMap<String, ActorEntry>,
) {
    let values = doc.get_all(obj, key).unwrap_or_default();
    if let [(value, id)] = values.as_slice() {
        match value {
            Value::Object(ObjType::Map) => read_responsibility(doc, id, view, actors),
            Value::Scalar(s) => {
                let line = s.as_str().unwrap_or("").to_string();
                view.value = json!({ "person": line });
                view.text = line;
            }
            _ => {}
        }
        return;
    }
    for (value, id) in values {
        let parts = match value {
            Value::Object(ObjType::Map) => {
                let mut one = FieldView {
                    conflict: Vec::new(),
                    ..view.clone()
                };
                read_responsibility(doc, &id, &mut one, actors);
                one.value.as_object().cloned().unwrap_or_default()
            }
            Value::Scalar(s) => {
                let mut parts = Map::new();
                if let Some(line) = s.as_str().filter(|l| !l.trim().is_empty()) {
                    parts.insert("person".into(), json!(line));
                }
                parts
            }
            _ => continue,
        };
        let value = Json::Object(parts);
        if view.conflict.iter().any(|c| c.value == value) {
            continue;
        }
        let text = value
            .as_object()
            .map(responsibility_text)
            .unwrap_or_default();
        view.conflict
            .push(candidate(value, text, actor_of(&id), actors));
    }
    if view.conflict.len() == 1 {
        let one = view.conflict.remove(0);
        view.value = one.value;
        view.text = one.text;
    } else {
        view.value = view
            .conflict
            .first()
            .map(|c| c.value.clone())
            .unwrap_or(Json::Null);
        view.text = view
            .conflict
            .iter()
            .map(|c| c.text.clone())
            .collect::<Vec<_>>()
            .join(" / ");
    }
}

/// (value, actor that set it) for each value one part holds.
type PartValues = Vec<(String, String)>;

/// Every value one part of a responsibility holds, with the actor that
/// set it; equal values set by several schools are all kept, so each
/// school's whole can be put back together.
fn part_values(doc: &AutoCommit, map: &ObjId, part: &str) -> PartValues {
    doc.get_all(map, part)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(value, id)| {
            let text = match value {
                Value::Scalar(s) => scalar_view(&s, FieldType::Line).1,
                Value::Object(ObjType::Text) => doc.text(&id).unwrap_or_default(),
                Value::Object(_) => return None,
            };
            Some((text, actor_of(&id)))
        })
        .collect()
}

/// A responsibility two schools set differently at once is reported as
/// two whole responsibilities, each as one school gave it. An empty part
/// (a whole set with that part left out) reads as no part.
fn read_responsibility(
    doc: &AutoCommit,
    map: &ObjId,
    view: &mut FieldView,
    actors: &BTreeMap<String, ActorEntry>,
) {
    let per_part: Vec<(&str, PartValues)> = RESPONSIBILITY_PARTS
        .iter()
        .map(|part| (*part, part_values(doc, map, part)))
        .collect();
    let distinct = |values: &PartValues| {
        let mut seen: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
        seen.sort();
        seen.dedup();
        seen.len()
    };
    let whole = |pick: &dyn Fn(&PartValues) -> Option<String>| {
        let mut parts = Map::new();
        for (part, values) in &per_part {
            if let Some(v) = pick(values).filter(|v| !v.is_empty()) {
                parts.insert((*part).into(), json!(v));
            }
        }
        parts
    };
    let winner = whole(&|values| values.first().map(|(v, _)| v.clone()));
    view.text = responsibility_text(&winner);
    view.value = Json::Object(winner);
    let mut disputed_by: Vec<String> = Vec::new();
    for (_, values) in &per_part {
        if distinct(values) > 1 {
            for (_, actor) in values {
                if !disputed_by.contains(actor) {
                    disputed_by.push(actor.clone());
                }
            }
        }
    }
    for actor in disputed_by {
        let parts = whole(&|values| {
            values
                .iter()
                .find(|(_, a)| *a == actor)
                .or_else(|| (distinct(values) == 1).then(|| &values[0]))
                .map(|(v, _)| v.clone())
        });
        let value = Json::Object(parts);
        if view.conflict.iter().any(|c| c.value == value) {
            continue;
        }
        let text = value
            .as_object()
            .map(responsibility_text)
            .unwrap_or_default();
        view.conflict.push(candidate(value, text, actor, actors));
    }
    if !view.conflict.is_empty() {
        view.text = view
            .conflict
            .iter()
            .map(|c| c.text.clone())
            .collect::<Vec<_>>()
            .join(" / ");
    }
}

/// The whole document as it was at `heads` (a signed version).
pub fn read_at(
    doc: &mut AutoCommit,
    heads: &[automerge::ChangeHash],
) -> Result<DocView, ModelError> {
    let past = doc.fork_at(heads)?;
    read(&past)
}
