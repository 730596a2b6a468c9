//! The plain file format for any of the nine documents: JSON a person can
//! write by hand or transcribe from a paper (the progress reports and
//! outcomes in `tests/fixtures/county/` are), naming each document's
//! kind, title, fields and table rows by the keys `schema` gives them.
//! Every value goes through the same typed edits as a change typed in the
//! app, so a file is checked exactly as a person's edits are. The action
//! plan keeps its own file (`plan_file`), which also carries reviews.
//!
//! ```json
//! {
//!   "format": "partnerplan-documents",
//!   "version": 1,
//!   "source": "Where the documents come from",
//!   "notes": ["What the source does not say"],
//!   "documents": [
//!     {"kind": "partnership", "title": "Ashford Town Schools",
//!      "fields": {"district": "Ashford"},
//!      "tables": {"schools": [{"name": "Willesborough Junior", "phase": "junior"}]}},
//!     {"kind": "progress-report", "title": "Progress report, Spring 2013",
//!      "fields": {"period": "Spring 2013", "development": "…"}}
//!   ]
//! }
//! ```
//!
//! A file holds at most one partnership document; the others are written
//! as its documents (or as documents of a partnership named on import).

use std::collections::BTreeMap;

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::author::Author;
use crate::create;
use crate::edit;
use crate::error::ModelError;
use crate::rows::{self, Placement};
use crate::schema::{Kind, Table};

/// What `format` must say, so a stray JSON file is not taken for one.
pub const FORMAT: &str = "partnerplan-documents";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentsFile {
    pub format: String,
    pub version: u32,
    /// Where the documents came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What the source does not say, so nobody takes a gap for a fact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub documents: Vec<DocumentEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentEntry {
    /// A kind as `Kind::parse` reads it: "progress-report", "outcomes"…
    pub kind: String,
    pub title: String,
    /// The document's own fields by key; a value is text or a number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Json>,
    /// Its tables by key: each row an object of field values, and of the
    /// rows of the tables inside it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, Vec<BTreeMap<String, Json>>>,
}

impl DocumentEntry {
    pub fn kind(&self) -> Result<Kind, ModelError> {
        Kind::parse(&self.kind).map_err(ModelError::BadFile)
    }
}

impl DocumentsFile {
    /// Reads a documents file and checks every value in it, saying where
    /// and what is wrong.
    pub fn from_json(text: &str) -> Result<DocumentsFile, ModelError> {
        let probe: Json = serde_json::from_str(text)
            .map_err(|e| ModelError::BadFile(format!("it is not JSON ({e})")))?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(ModelError::BadFile(format!(
                "it does not start with \"format\": \"{FORMAT}\", so it is not a partnerplan documents file"
            )));
        }
        let file: DocumentsFile =
            serde_json::from_str(text).map_err(|e| ModelError::BadFile(e.to_string()))?;
        if file.version > FORMAT_VERSION {
            return Err(ModelError::BadFile(format!(
                "it is version {} of the format and this partnerplan reads up to version {FORMAT_VERSION}; update partnerplan",
                file.version
            )));
        }
        file.check()?;
        Ok(file)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a documents file serialises")
    }

    /// The partnership document, if the file has one.
    pub fn partnership(&self) -> Option<&DocumentEntry> {
        self.documents
            .iter()
            .find(|d| d.kind().ok() == Some(Kind::Partnership))
    }

    /// The documents other than the partnership, in the file's order.
    pub fn others(&self) -> impl Iterator<Item = &DocumentEntry> {
        self.documents
            .iter()
            .filter(|d| d.kind().ok() != Some(Kind::Partnership))
    }

    /// Every document written once into a scratch document, so a file
    /// with any bad value is refused before anything is stored.
    fn check(&self) -> Result<(), ModelError> {
        let partnerships = self
            .documents
            .iter()
            .filter(|d| matches!(d.kind(), Ok(Kind::Partnership)))
            .count();
        if partnerships > 1 {
            return Err(ModelError::BadFile(format!(
                "it holds {partnerships} partnership documents; a file describes one partnership, so put each in its own file"
            )));
        }
        let who = Author {
            school: "check".into(),
            person: None,
            time: 0,
        };
        for (i, entry) in self.documents.iter().enumerate() {
            let mut scratch = AutoCommit::new();
            write_document(&mut scratch, i, entry, None, &who)?;
        }
        Ok(())
    }
}

/// Writes document `index` of a file (`entry`) into a new document,
/// naming the place of any value the model refuses.
pub fn write_document(
    doc: &mut AutoCommit,
    index: usize,
    entry: &DocumentEntry,
    partnership: Option<&str>,
    author: &Author,
) -> Result<(), ModelError> {
    let place = format!("documents[{index}] ({})", entry.title);
    let at = |where_: &str, e: ModelError| {
        let reason = match e {
            ModelError::BadValue { what, reason } => format!("{what}: {reason}"),
            other => other.to_string(),
        };
        ModelError::BadFile(format!("{where_}: {reason}"))
    };
    let kind = entry.kind().map_err(|e| at(&format!("{place}.kind"), e))?;
    let schema = kind.schema();
    create::create(doc, kind, &entry.title, partnership, author).map_err(|e| at(&place, e))?;
    for (key, value) in &entry.fields {
        let where_ = format!("{place}.fields.{key}");
        if schema.field(key).is_none() {
            return Err(at(
                &where_,
                ModelError::BadFile(format!(
                    "a {} has no field “{key}”; its fields are {}",
                    kind.label().to_lowercase(),
                    schema
                        .fields
                        .iter()
                        .map(|f| f.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ));
        }
        if let Some(text) = value_text(value).map_err(|e| at(&where_, e))? {
            edit::set_field(doc, None, key, &text, author).map_err(|e| at(&where_, e))?;
        }
    }
    for (key, rows) in &entry.tables {
        let where_ = format!("{place}.tables.{key}");
        let Some(table) = schema.tables.iter().find(|t| t.key == key) else {
            return Err(at(
                &where_,
                ModelError::BadFile(format!(
                    "a {} has no table “{key}”; its tables are {}",
                    kind.label().to_lowercase(),
                    names(schema.tables)
                )),
            ));
        };
        write_rows(doc, &where_, table, None, rows, author)?;
    }
    Ok(())
}

fn names(tables: &[Table]) -> String {
    if tables.is_empty() {
        "none".into()
    } else {
        tables.iter().map(|t| t.key).collect::<Vec<_>>().join(", ")
    }
}

fn write_rows(
    doc: &mut AutoCommit,
    place: &str,
    table: &'static Table,
    parent: Option<&str>,
    rows: &[BTreeMap<String, Json>],
    author: &Author,
) -> Result<(), ModelError> {
    for (i, row) in rows.iter().enumerate() {
        let place = format!("{place}[{i}]");
        let mut values = Vec::new();
        let mut inner = Vec::new();
        for (key, value) in row {
            let where_ = format!("{place}.{key}");
            if let Some(nested) = table.tables.iter().find(|t| t.key == key) {
                let rows: Vec<BTreeMap<String, Json>> = serde_json::from_value(value.clone())
                    .map_err(|_| {
                        ModelError::BadFile(format!(
                            "{where_}: the rows of a table are a list of objects"
                        ))
                    })?;
                inner.push((nested, rows));
            } else if table.field(key.split('.').next().unwrap_or(key)).is_some() {
                if let Some(text) =
                    value_text(value).map_err(|e| ModelError::BadFile(format!("{where_}: {e}")))?
                {
                    values.push((key.clone(), text));
                }
            } else {
                return Err(ModelError::BadFile(format!(
                    "{where_}: a {} has no field or table “{key}”; its fields are {}{}",
                    table.row,
                    table
                        .fields
                        .iter()
                        .map(|f| f.key)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if table.tables.is_empty() {
                        String::new()
                    } else {
                        format!(" and its tables {}", names(table.tables))
                    }
                )));
            }
        }
        let id = rows::add_row(doc, table.key, parent, &values, &Placement::End, author).map_err(
            |e| {
                let reason = match e {
                    ModelError::BadValue { what, reason } => format!("{what}: {reason}"),
                    other => other.to_string(),
                };
                ModelError::BadFile(format!("{place}: {reason}"))
            },
        )?;
        for (nested, rows) in inner {
            write_rows(
                doc,
                &format!("{place}.{}", nested.key),
                nested,
                Some(&id),
                &rows,
                author,
            )?;
        }
    }
    Ok(())
}

/// A value as the text a person would type for it; `None` for null.
fn value_text(value: &Json) -> Result<Option<String>, ModelError> {
    match value {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        Json::Number(n) => Ok(Some(n.to_string())),
        Json::Array(items) if items.iter().all(Json::is_number) => Ok(Some(
            items
                .iter()
                .map(Json::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        )),
        other => Err(ModelError::BadFile(format!(
            "{other} is not a value a field holds; write text or a number"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read;

    fn author() -> Author {
        Author {
            school: "Willesborough Junior".into(),
            person: None,
            time: 1_364_688_000,
        }
    }

    fn file(documents: &str) -> String {
        format!(
            r#"{{"format": "partnerplan-documents", "version": 1, "documents": [{documents}]}}"#
        )
    }

    #[test]
    fn a_report_and_outcomes_read_back_as_written() {
        let text = file(
            r#"{"kind": "progress report", "title": "Spring 2013",
                "fields": {"period": "Spring 2013", "development": "Moderation of writing\nSPAG training"}},
               {"kind": "outcomes", "title": "2014",
                "tables": {"results": [{"school": "In a collaboration", "year": 2014, "keyStage": "KS1",
                   "inPartnership": "in", "schools": 132, "pupils": 2174, "measure": "Level 2+ R, W & M", "percent": 85.4}]}}"#,
        );
        let parsed = DocumentsFile::from_json(&text).unwrap();
        let mut doc = AutoCommit::new();
        write_document(&mut doc, 0, &parsed.documents[0], None, &author()).unwrap();
        let view = read::read(&doc).unwrap();
        assert_eq!(view.kind, Kind::ProgressReport);
        assert_eq!(view.field("period").unwrap().value, "Spring 2013");
        assert_eq!(
            view.field("development").unwrap().text,
            "Moderation of writing\nSPAG training"
        );
        let mut doc = AutoCommit::new();
        write_document(&mut doc, 1, &parsed.documents[1], None, &author()).unwrap();
        let view = read::read(&doc).unwrap();
        let row = view.live("results")[0];
        assert_eq!(row.field("schools").unwrap().value, 132);
        assert_eq!(row.field("pupils").unwrap().value, 2174);
        assert_eq!(row.field("percent").unwrap().value, 85.4);
        assert_eq!(row.field("keyStage").unwrap().value, "KS1");
    }

    #[test]
    fn a_bad_value_is_refused_with_its_place() {
        let bad = |documents: &str| {
            DocumentsFile::from_json(&file(documents))
                .unwrap_err()
                .to_string()
        };
        let said = bad(
            r#"{"kind": "outcomes", "title": "2014", "tables": {"results": [{"percent": 185}]}}"#,
        );
        assert!(
            said.contains("documents[0] (2014).tables.results[0]")
                && said.contains("not between 0 and 100"),
            "{said}"
        );
        let said = bad(
            r#"{"kind": "progress-report", "title": "R", "fields": {"period": "Winter 2013"}}"#,
        );
        assert!(
            said.contains("fields.period") && said.contains("not a school term"),
            "{said}"
        );
        let said = bad(r#"{"kind": "progress-report", "title": "R", "fields": {"areas": "x"}}"#);
        assert!(
            said.contains("has no field “areas”") && said.contains("development"),
            "{said}"
        );
        let said = bad(r#"{"kind": "minutes", "title": "R"}"#);
        assert!(said.contains("documents[0] (R).kind"), "{said}");
        let said =
            bad(r#"{"kind": "partnership", "title": "A"}, {"kind": "partnership", "title": "B"}"#);
        assert!(said.contains("2 partnership documents"), "{said}");
        let said = bad(r#"{"kind": "partnership", "title": "A", "fields": {"funding": "£10.50"}}"#);
        assert!(said.contains("whole pounds"), "{said}");
        let plan = r#"{"format": "partnerplan-action-plan", "version": 1, "title": "x", "overridingObjective": "y"}"#;
        assert!(
            DocumentsFile::from_json(plan)
                .unwrap_err()
                .to_string()
                .contains("not a partnerplan documents file")
        );
    }

    #[test]
    fn rows_inside_rows_and_the_partnership_first() {
        let text = file(
            r#"{"kind": "action-plan", "title": "Plan", "fields": {"overridingObjective": "Better writing"},
                "tables": {"areas": [{"name": "Writing", "actions": [{"what": "Moderate", "status": "amber", "reviewDate": "Summer 2013"}]}]}},
               {"kind": "partnership", "title": "EAS Hub", "fields": {"district": "Ashford", "funding": "£51,000"}}"#,
        );
        let parsed = DocumentsFile::from_json(&text).unwrap();
        assert_eq!(parsed.partnership().unwrap().title, "EAS Hub");
        assert_eq!(parsed.others().count(), 1);
        let mut doc = AutoCommit::new();
        write_document(
            &mut doc,
            0,
            &parsed.documents[0],
            Some("automerge:x"),
            &author(),
        )
        .unwrap();
        let view = read::read(&doc).unwrap();
        assert_eq!(view.partnership.as_deref(), Some("automerge:x"));
        let action = view.live("areas")[0].live("actions")[0];
        assert_eq!(action.field("status").unwrap().value, "amber");
        let mut doc = AutoCommit::new();
        write_document(&mut doc, 1, &parsed.documents[1], None, &author()).unwrap();
        let view = read::read(&doc).unwrap();
        assert_eq!(view.field("funding").unwrap().text, "£51,000");
        assert_eq!(view.field("funding").unwrap().value, 51_000);
    }
}
