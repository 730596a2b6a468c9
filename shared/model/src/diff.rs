//! What changed between two versions of a document (such as the version
//! a review signed and now), field by field and row by row, found by id.

use serde::Serialize;

use crate::text::shorten;
use crate::view::{DocView, FieldView, RowView, TableView};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum Difference {
    /// A field of the document or of a row now reads differently.
    Changed {
        place: String,
        /// The row the field is in (its id); `None` for the document's own fields.
        #[serde(skip_serializing_if = "Option::is_none")]
        row: Option<String>,
        field: &'static str,
        before: String,
        after: String,
    },
    Added {
        place: String,
        row: String,
    },
    Removed {
        place: String,
        row: String,
    },
}

impl Difference {
    pub fn describe(&self) -> String {
        match self {
            Difference::Changed {
                place,
                before,
                after,
                ..
            } => {
                let show = |s: &str| {
                    if s.is_empty() {
                        "(empty)".to_string()
                    } else {
                        format!("“{}”", shorten(s, 70))
                    }
                };
                format!("{place}: {} → {}", show(before), show(after))
            }
            Difference::Added { place, .. } => format!("Added {place}"),
            Difference::Removed { place, .. } => format!("Removed {place}"),
        }
    }
}

pub fn diff(before: &DocView, after: &DocView) -> Vec<Difference> {
    let mut out = Vec::new();
    if before.title != after.title {
        out.push(Difference::Changed {
            place: "Title".into(),
            row: None,
            field: "title",
            before: before.title.clone(),
            after: after.title.clone(),
        });
    }
    fields(&before.fields, &after.fields, "", None, &mut out);
    tables(&before.tables, &after.tables, "", &mut out);
    out
}

fn join(prefix: &str, part: &str) -> String {
    if prefix.is_empty() {
        part.to_string()
    } else {
        format!("{prefix} › {part}")
    }
}

fn fields(
    before: &[FieldView],
    after: &[FieldView],
    prefix: &str,
    row: Option<&str>,
    out: &mut Vec<Difference>,
) {
    for new in after {
        let old_text = before
            .iter()
            .find(|f| f.key == new.key)
            .map(|f| f.text.clone())
            .unwrap_or_default();
        if old_text != new.text {
            out.push(Difference::Changed {
                place: join(prefix, new.label),
                row: row.map(str::to_string),
                field: new.key,
                before: old_text,
                after: new.text.clone(),
            });
        }
    }
}

fn tables(before: &[TableView], after: &[TableView], prefix: &str, out: &mut Vec<Difference>) {
    for table in after {
        let old_rows: Vec<&RowView> = before
            .iter()
            .find(|t| t.key == table.key)
            .map(|t| t.live())
            .unwrap_or_default();
        let new_rows = table.live();
        for row in &new_rows {
            let place = join(prefix, &format!("{} “{}”", table.row, row.label()));
            match old_rows.iter().find(|r| r.id == row.id) {
                None => out.push(Difference::Added {
                    place,
                    row: row.id.clone(),
                }),
                Some(old) => {
                    let old_place = join(prefix, &format!("{} “{}”", table.row, old.label()));
                    fields(&old.fields, &row.fields, &old_place, Some(&row.id), out);
                    tables(&old.tables, &row.tables, &old_place, out);
                }
            }
        }
        for old in old_rows {
            if !new_rows.iter().any(|r| r.id == old.id) {
                out.push(Difference::Removed {
                    place: join(prefix, &format!("{} “{}”", table.row, old.label())),
                    row: old.id.clone(),
                });
            }
        }
    }
}
