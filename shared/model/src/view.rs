//! A document as read: `DocView` with its fields, tables and rows, every
//! value a field holds when schools set it at once (`Candidate`,
//! `Conflict`), and its reviews. Plain data that `read` builds; printing,
//! diffing and exporting work from it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::records::{ActorEntry, Review};
use crate::schema::{Kind, Table};
use crate::text::{short, shorten};

/// One value of a field that holds several, and who set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub value: Json,
    pub text: String,
    pub actor: String,
    /// The counter of the operation that set this value (0 where the
    /// value was put together from several, as a whole responsibility):
    /// with `actor`, what `history::set_at` finds the time of.
    #[serde(skip)]
    pub op: u64,
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
