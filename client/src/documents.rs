//! Working with a school's own copies of the shared documents: create,
//! read, set a field, edit text. Every edit is committed to the school's
//! SQLite file before the call returns; the background sync sends it on.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use partnerplan_sync::DocumentId;
use serde_json::{Map, Value as Json, json};

use crate::error::ClientError;
use crate::school::School;

/// A field that holds more than one value because two schools set it at
/// once. Automerge keeps both until someone chooses.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Conflict {
    pub path: String,
    pub values: Vec<Json>,
}

/// Creates a new document whose `title` is editable text. Returns its id.
pub fn create(school: &mut School, title: &str) -> Result<DocumentId, ClientError> {
    school.editable()?;
    let id = DocumentId::random();
    let actor = school.actor()?;
    let title = title.to_string();
    school.store.change(
        &id,
        &actor,
        Some("create".into()),
        |doc| -> Result<(), ClientError> {
            let text = doc.put_object(ROOT, "title", ObjType::Text)?;
            doc.splice_text(&text, 0, 0, &title)?;
            Ok(())
        },
    )?;
    Ok(id)
}

/// Marks a document, known by its URL, for fetching at the next sync.
pub fn open(school: &mut School, url: &str) -> Result<DocumentId, ClientError> {
    let id = DocumentId::parse_url_or_id(url)?;
    school
        .store
        .write(&[partnerplan_sync::store::Write::Track { document_id: id }])?;
    Ok(id)
}

/// The document as this school holds it, assembled from its chunks.
pub fn load(school: &School, url: &str) -> Result<(DocumentId, Automerge), ClientError> {
    let id = DocumentId::parse_url_or_id(url)?;
    let doc = school
        .store
        .load_document(&id)?
        .ok_or_else(|| ClientError::UnknownDocument { url: id.url() })?;
    Ok((id, doc))
}

/// Sets one field, creating the maps on the way. `value` is read as JSON
/// when it is valid JSON (numbers, true, false, null, objects, lists) and
/// as plain text otherwise.
pub fn set_field(
    school: &mut School,
    url: &str,
    path: &str,
    value: &str,
) -> Result<(), ClientError> {
    let id = existing(school, url)?;
    school.editable_doc(&id)?;
    let segments = parse_path(path)?;
    let value: Json =
        serde_json::from_str(value).unwrap_or_else(|_| Json::String(value.to_string()));
    let actor = school.actor()?;
    school.store.change(
        &id,
        &actor,
        Some(format!("set {path}")),
        |doc| -> Result<(), ClientError> {
            refuse_typed(doc, &id, "set")?;
            let (parent, last) = walk_to_parent(doc, &segments, path)?;
            put_json(doc, &parent, last, &value)
        },
    )
}

/// How to change a text field: the one type the typed documents use too.
pub use partnerplan_model::ProseEdit as TextEdit;

/// How to change a text field, as the command line says it; shared by
/// `edit` and `type`. At most one of the four ways may be given.
#[derive(Debug, Clone, clap::Args)]
pub struct TextEditArgs {
    /// Add this text at the end.
    #[arg(long, group = "how")]
    append: Option<String>,
    /// Insert text at this character position (with --text).
    #[arg(long, group = "how", requires = "text")]
    insert_at: Option<usize>,
    /// Delete characters from this position (with --count).
    #[arg(long, group = "how", requires = "count")]
    delete_at: Option<usize>,
    /// Replace the whole text, keeping what is unchanged.
    #[arg(long, group = "how")]
    replace: Option<String>,
    /// The text to insert, with --insert-at.
    #[arg(long)]
    text: Option<String>,
    /// How many characters to delete, with --delete-at.
    #[arg(long)]
    count: Option<usize>,
}

impl TextEditArgs {
    /// The edit, or a sentence saying how to give one.
    pub fn edit(self) -> Result<TextEdit, ClientError> {
        Ok(
            match (self.append, self.insert_at, self.delete_at, self.replace) {
                (Some(more), ..) => TextEdit::Append(more),
                (_, Some(at), ..) => TextEdit::Insert {
                    at,
                    text: self.text.unwrap_or_default(),
                },
                (_, _, Some(at), _) => TextEdit::Delete {
                    at,
                    count: self.count.unwrap_or(0),
                },
                (_, _, _, Some(new)) => TextEdit::Replace(new),
                _ => {
                    return Err(ClientError::Other(
                    "say how to change the text: --append, --insert-at with --text, --delete-at with --count, or --replace.".into(),
                ));
                }
            },
        )
    }
}

/// Edits a text field in place, so that two schools typing in one field
/// keep both texts. The field becomes text if it is not yet.
pub fn edit_text(
    school: &mut School,
    url: &str,
    path: &str,
    edit: TextEdit,
) -> Result<String, ClientError> {
    let id = existing(school, url)?;
    school.editable_doc(&id)?;
    let segments = parse_path(path)?;
    let actor = school.actor()?;
    school.store.change(
        &id,
        &actor,
        Some(format!("edit {path}")),
        |doc| -> Result<String, ClientError> {
            refuse_typed(doc, &id, "edit")?;
            let (parent, last) = walk_to_parent(doc, &segments, path)?;
            let text = match get_at(doc, &parent, last) {
                Some((Value::Object(ObjType::Text), text)) => text,
                _ => {
                    let existing = match get_at(doc, &parent, last) {
                        Some((Value::Scalar(s), _)) => scalar_text(&s),
                        _ => String::new(),
                    };
                    let text = put_object_at(doc, &parent, last, ObjType::Text)?;
                    doc.splice_text(&text, 0, 0, &existing)?;
                    text
                }
            };
            partnerplan_model::edit::splice_prose(doc, &text, &edit)?.map_err(|reason| {
                ClientError::BadEdit {
                    path: path.to_string(),
                    reason,
                }
            })?;
            Ok(doc.text(&text)?)
        },
    )
}

/// The document as JSON: text as strings, and a field two schools set at
/// once as `{"conflict": [value, value]}`.
pub fn to_json(doc: &impl ReadDoc) -> Json {
    object_to_json(doc, &ROOT, ObjType::Map)
}

/// Every field that holds a conflict, with its values.
pub fn conflicts(doc: &impl ReadDoc) -> Vec<Conflict> {
    let mut found = Vec::new();
    collect_conflicts(doc, &ROOT, ObjType::Map, String::new(), &mut found);
    found
}

/// Refuses a generic write to a typed partnership document: `set` and
/// `edit` know nothing of its schema, so they would bypass every check
/// the model makes (statuses, dates, signatures, removed rows, documents
/// from a newer version). A document is typed if it names a `kind` and a
/// `schemaVersion`, or a kind this version knows.
fn refuse_typed(doc: &AutoCommit, id: &DocumentId, command: &str) -> Result<(), ClientError> {
    use partnerplan_model::doc;
    let has_version = doc.get(ROOT, "schemaVersion").ok().flatten().is_some();
    let kind = match doc.get(ROOT, "kind").ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_str().map(str::to_string),
        _ => None,
    };
    let Some(kind) = kind else {
        return Ok(());
    };
    if doc::kind_of(doc).is_err() && !has_version {
        return Ok(());
    }
    let url = id.url();
    Err(ClientError::Other(format!(
        "{url} is a typed partnership document ({kind}), and `partnerplan {command}` would change it without its checks. Use `partnerplan put {url} <field> <value>` (with --row <row> for a row) to give a field a value, or `partnerplan type {url} <field> --append <text>` to type into text; `partnerplan view {url}` shows its fields and rows."
    )))
}

fn existing(school: &School, url: &str) -> Result<DocumentId, ClientError> {
    let id = DocumentId::parse_url_or_id(url)?;
    if school.store.load(&id)?.0.is_empty() {
        return Err(ClientError::UnknownDocument { url: id.url() });
    }
    Ok(id)
}

enum Segment {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<Segment>, ClientError> {
    let segments: Vec<Segment> = path
        .split('.')
        .map(|part| match part.parse::<usize>() {
            Ok(index) => Segment::Index(index),
            Err(_) => Segment::Key(part.to_string()),
        })
        .collect();
    if path.is_empty()
        || path.split('.').any(|p| p.is_empty())
        || matches!(segments[0], Segment::Index(_))
    {
        return Err(ClientError::BadField {
            path: path.to_string(),
        });
    }
    Ok(segments)
}

fn get_at<'a>(
    doc: &'a AutoCommit,
    parent: &ObjId,
    segment: &Segment,
) -> Option<(Value<'a>, ObjId)> {
    match segment {
        Segment::Key(key) => doc.get(parent, key.as_str()).ok().flatten(),
        Segment::Index(index) => doc.get(parent, *index).ok().flatten(),
    }
}

fn put_object_at(
    doc: &mut AutoCommit,
    parent: &ObjId,
    segment: &Segment,
    kind: ObjType,
) -> Result<ObjId, ClientError> {
    Ok(match segment {
        Segment::Key(key) => doc.put_object(parent, key.as_str(), kind)?,
        Segment::Index(index) => {
            if *index < doc.length(parent) {
                doc.put_object(parent, *index, kind)?
            } else {
                doc.insert_object(parent, doc.length(parent), kind)?
            }
        }
    })
}

/// Follows the path to the object that holds its last field, creating maps
/// on the way.
fn walk_to_parent<'p>(
    doc: &mut AutoCommit,
    segments: &'p [Segment],
    path: &str,
) -> Result<(ObjId, &'p Segment), ClientError> {
    let mut current = ROOT;
    let (last, init) = segments
        .split_last()
        .ok_or_else(|| ClientError::BadField { path: path.into() })?;
    for segment in init {
        current = match get_at(doc, &current, segment) {
            Some((Value::Object(ObjType::Map | ObjType::Table | ObjType::List), id)) => id,
            Some(_) => {
                return Err(ClientError::BadEdit {
                    path: path.to_string(),
                    reason: "a field on the way holds a value, not a group of fields".into(),
                });
            }
            None => put_object_at(doc, &current, segment, ObjType::Map)?,
        };
    }
    Ok((current, last))
}

fn put_json(
    doc: &mut AutoCommit,
    parent: &ObjId,
    segment: &Segment,
    value: &Json,
) -> Result<(), ClientError> {
    match value {
        Json::Object(fields) => {
            let obj = put_object_at(doc, parent, segment, ObjType::Map)?;
            for (key, value) in fields {
                put_json(doc, &obj, &Segment::Key(key.clone()), value)?;
            }
        }
        Json::Array(items) => {
            let list = put_object_at(doc, parent, segment, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                put_json(doc, &list, &Segment::Index(i), item)?;
            }
        }
        scalar => {
            let scalar = json_scalar(scalar);
            match segment {
                Segment::Key(key) => doc.put(parent, key.as_str(), scalar)?,
                Segment::Index(index) if *index < doc.length(parent) => {
                    doc.put(parent, *index, scalar)?
                }
                Segment::Index(_) => doc.insert(parent, doc.length(parent), scalar)?,
            }
        }
    }
    Ok(())
}

fn json_scalar(value: &Json) -> ScalarValue {
    match value {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ScalarValue::Int(i),
            (None, Some(f)) => ScalarValue::F64(f),
            _ => ScalarValue::Null,
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        _ => ScalarValue::Null,
    }
}

fn scalar_text(value: &ScalarValue) -> String {
    match value {
        ScalarValue::Str(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn scalar_json(value: &ScalarValue) -> Json {
    match value {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => json!(i),
        ScalarValue::Uint(u) => json!(u),
        ScalarValue::F64(f) => json!(f),
        ScalarValue::Counter(c) => json!(i64::from(c)),
        ScalarValue::Timestamp(t) => json!(t),
        ScalarValue::Boolean(b) => json!(b),
        ScalarValue::Null => Json::Null,
        ScalarValue::Bytes(b) => json!(format!("<{} bytes>", b.len())),
        other => Json::String(other.to_string()),
    }
}

fn value_json(doc: &impl ReadDoc, value: &Value<'_>, id: &ObjId) -> Json {
    match value {
        Value::Object(kind) => object_to_json(doc, id, *kind),
        Value::Scalar(scalar) => scalar_json(scalar),
    }
}

fn object_to_json(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType) -> Json {
    match kind {
        ObjType::Text => Json::String(doc.text(obj).unwrap_or_default()),
        ObjType::List => {
            let length = doc.length(obj);
            Json::Array(
                (0..length)
                    .filter_map(|i| doc.get(obj, i).ok().flatten())
                    .map(|(value, id)| value_json(doc, &value, &id))
                    .collect(),
            )
        }
        ObjType::Map | ObjType::Table => {
            let mut map = Map::new();
            for key in doc.keys(obj) {
                let values = doc.get_all(obj, key.as_str()).unwrap_or_default();
                let rendered: Vec<Json> = values
                    .iter()
                    .map(|(v, id)| value_json(doc, v, id))
                    .collect();
                let value = if rendered.len() > 1 {
                    json!({ "conflict": rendered })
                } else {
                    rendered.into_iter().next().unwrap_or(Json::Null)
                };
                map.insert(key, value);
            }
            Json::Object(map)
        }
    }
}

fn collect_conflicts(
    doc: &impl ReadDoc,
    obj: &ObjId,
    kind: ObjType,
    prefix: String,
    found: &mut Vec<Conflict>,
) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match kind {
        ObjType::Map | ObjType::Table => {
            for key in doc.keys(obj) {
                let values = doc.get_all(obj, key.as_str()).unwrap_or_default();
                if values.len() > 1 {
                    found.push(Conflict {
                        path: join(&key),
                        values: values
                            .iter()
                            .map(|(v, id)| value_json(doc, v, id))
                            .collect(),
                    });
                } else if let Some((Value::Object(child), id)) = values.first() {
                    collect_conflicts(doc, id, *child, join(&key), found);
                }
            }
        }
        ObjType::List => {
            for i in 0..doc.length(obj) {
                let values = doc.get_all(obj, i).unwrap_or_default();
                if values.len() > 1 {
                    found.push(Conflict {
                        path: join(&i.to_string()),
                        values: values
                            .iter()
                            .map(|(v, id)| value_json(doc, v, id))
                            .collect(),
                    });
                } else if let Some((Value::Object(child), id)) = values.first() {
                    collect_conflicts(doc, id, *child, join(&i.to_string()), found);
                }
            }
        }
        ObjType::Text => {}
    }
}

/// One line per document this school holds or is waiting for.
pub fn list(school: &School) -> Result<Vec<(DocumentId, Option<String>)>, ClientError> {
    let mut out = Vec::new();
    for (_, id) in school.store.tracked_after(0)? {
        let title = school.store.load_document(&id)?.and_then(|doc| {
            match doc.get(ROOT, "title").ok().flatten()? {
                (Value::Object(ObjType::Text), text) => doc.text(&text).ok(),
                (Value::Scalar(s), _) => Some(scalar_text(&s)),
                _ => None,
            }
        });
        out.push((id, title));
    }
    Ok(out)
}
