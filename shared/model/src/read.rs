//! Reading a whole document into a `DocView`, with every conflict (from
//! `get_all`, each value's actor mapped to school and person) and
//! tolerant of every older shape; a past version (a signed one) too.

use std::collections::BTreeMap;

use automerge::iter::MapRangeItem;
use automerge::{
    Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value, ValueRef,
};
use serde_json::{Map, Value as Json, json};

use crate::doc::{kind_of, str_at};
use crate::error::ModelError;
use crate::records::{self, ActorEntry, Readable, Review};
use crate::schema::{Field, FieldType, RESPONSIBILITY_PARTS, Table};
use crate::text::{pounds, short};
use crate::view::{Candidate, DocView, FieldView, Removal, RowView, TableView};
use crate::when::when_text;

/// The whole document, typed, with conflicts, tolerant of every older
/// shape (missing fields read as empty, version 1's one-line
/// responsibility reads as the person).
pub fn read(doc: &impl Readable) -> Result<DocView, ModelError> {
    let (kind, schema_version) = kind_of(doc)?;
    let schema = kind.schema();
    let actors = records::actors(doc);
    let root = Entries::of(doc, &ROOT);
    let title = root.str(doc, "title").unwrap_or_default();
    let partnership = root.str(doc, "partnership");
    let fields = schema
        .fields
        .iter()
        .map(|f| read_field(doc, &ROOT, &root, f, &actors))
        .collect();
    let tables = schema
        .tables
        .iter()
        .map(|t| read_table(doc, &root, t, &actors))
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

/// One map's keys with their winning values, read in one pass over the
/// map (`map_range`) rather than one seek per key: a seek costs about as
/// much as reading the whole of a row. Keys that hold several values are
/// flagged; only those are read again with `get_all`.
struct Entries<'d> {
    items: Vec<MapRangeItem<'d>>,
}

impl<'d> Entries<'d> {
    fn of(doc: &'d impl ReadDoc, obj: &ObjId) -> Self {
        Entries {
            items: doc.map_range(obj, ..).collect(),
        }
    }

    fn item(&self, key: &str) -> Option<&MapRangeItem<'d>> {
        self.items.iter().find(|i| i.key == key)
    }

    /// The winning value without its id, for scalars.
    fn value(&self, key: &str) -> Option<Value<'static>> {
        self.item(key).map(|i| i.value.clone().into_value())
    }

    /// The id of the object at `key`, if it holds one of this type.
    fn object(&self, key: &str, ty: ObjType) -> Option<ObjId> {
        self.item(key)
            .filter(|i| matches!(i.value, ValueRef::Object(t) if t == ty))
            .map(MapRangeItem::id)
    }

    /// What `str_at` gives: the string or text at `key`.
    fn str(&self, doc: &impl ReadDoc, key: &str) -> Option<String> {
        let item = self.item(key)?;
        match &item.value {
            ValueRef::Scalar(_) => match item.value.clone().into_value() {
                Value::Scalar(s) => s.as_str().map(str::to_string),
                Value::Object(_) => None,
            },
            ValueRef::Object(ObjType::Text) => doc.text(item.id()).ok(),
            ValueRef::Object(_) => None,
        }
    }
}

fn read_table(
    doc: &impl ReadDoc,
    parent: &Entries,
    table: &'static Table,
    actors: &BTreeMap<String, ActorEntry>,
) -> TableView {
    let rows = match parent.object(table.key, ObjType::List) {
        Some(list) => ordered(doc, &list)
            .into_iter()
            .map(|(obj, entries)| read_row(doc, &obj, &entries, table, actors))
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

/// The rows of a list in display order (by `position`, then place in the
/// list, as `locate::ordered`), each with its keys read once.
fn ordered<'d>(doc: &'d impl ReadDoc, list: &ObjId) -> Vec<(ObjId, Entries<'d>)> {
    let mut rows: Vec<(f64, usize, ObjId, Entries<'d>)> = doc
        .list_range(list, ..)
        .filter(|item| matches!(item.value, ValueRef::Object(ObjType::Map)))
        .map(|item| {
            let obj = item.id();
            let entries = Entries::of(doc, &obj);
            let position = match entries.value("position") {
                Some(Value::Scalar(s)) => s.as_f64().unwrap_or(item.index as f64),
                _ => item.index as f64,
            };
            (position, item.index, obj, entries)
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|(_, _, o, e)| (o, e)).collect()
}

fn read_row(
    doc: &impl ReadDoc,
    obj: &ObjId,
    entries: &Entries,
    table: &'static Table,
    actors: &BTreeMap<String, ActorEntry>,
) -> RowView {
    let removal = entries.object("removed", ObjType::Map);
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
            let edits = match entries.value("edits") {
                Some(Value::Scalar(s)) => s.as_i64().unwrap_or(0),
                _ => 0,
            };
            (Some(Removal { by, at }), edits > seen)
        }
        None => (None, false),
    };
    RowView {
        id: entries.str(doc, "id").unwrap_or_default(),
        row: table.row,
        fields: table
            .fields
            .iter()
            .map(|f| read_field(doc, obj, entries, f, actors))
            .collect(),
        tables: table
            .tables
            .iter()
            .map(|t| read_table(doc, entries, t, actors))
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

fn op_of(id: &automerge::ObjId) -> u64 {
    match id {
        automerge::ObjId::Id(counter, _, _) => *counter,
        automerge::ObjId::Root => 0,
    }
}

fn candidate(
    value: Json,
    text: String,
    actor: String,
    op: u64,
    actors: &BTreeMap<String, ActorEntry>,
) -> Candidate {
    let entry = actors.get(&actor);
    Candidate {
        value,
        text,
        op,
        school: entry.map(|e| e.school.clone()),
        person: entry.and_then(|e| e.person.clone()),
        actor,
    }
}

/// Every value a key holds, as (JSON, display text, actor, operation
/// counter), with equal
/// values set by several schools counted once. A key that holds one value
/// is read from `entries`; its actor is left empty, as it is shown only
/// when there are several.
fn values_at(
    doc: &impl ReadDoc,
    obj: &ObjId,
    entries: &Entries,
    key: &str,
    ty: FieldType,
) -> Vec<(Json, String, String, u64)> {
    let view = |value: Value, id: &dyn Fn() -> ObjId| match value {
        Value::Scalar(s) => scalar_view(&s, ty),
        Value::Object(ObjType::Text) => {
            let t = doc.text(id()).unwrap_or_default();
            (json!(t), t)
        }
        Value::Object(_) => (Json::Null, String::new()),
    };
    match entries.item(key) {
        None => return Vec::new(),
        Some(item) if !item.conflict => {
            let (json, text) = view(item.value.clone().into_value(), &|| item.id());
            return vec![(json, text, String::new(), 0)];
        }
        Some(_) => {}
    }
    let mut out: Vec<(Json, String, String, u64)> = Vec::new();
    for (value, id) in doc.get_all(obj, key).unwrap_or_default() {
        let (json, text) = view(value, &|| id.clone());
        if !out.iter().any(|(j, _, _, _)| *j == json) {
            out.push((json, text, actor_of(&id), op_of(&id)));
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
        ScalarValue::Int(i) if matches!(ty, FieldType::Money) => (json!(i), pounds(*i)),
        ScalarValue::Int(i) => (json!(i), i.to_string()),
        ScalarValue::Uint(u) => (json!(u), u.to_string()),
        ScalarValue::F64(f) => (json!(f), format!("{f}")),
        ScalarValue::Boolean(b) => (json!(b), b.to_string()),
        ScalarValue::Null => (Json::Null, String::new()),
        other => (json!(other.to_string()), other.to_string()),
    }
}

fn read_field(
    doc: &impl ReadDoc,
    obj: &ObjId,
    entries: &Entries,
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
            if let Some(links) = entries.object(field.key, ObjType::Map) {
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
        FieldType::Responsibility => {
            read_responsibilities(doc, obj, entries, field.key, &mut view, actors)
        }
        ty => {
            let values = values_at(doc, obj, entries, field.key, ty);
            if values.len() > 1 {
                view.conflict = values
                    .into_iter()
                    .map(|(v, t, a, op)| candidate(v, t, a, op, actors))
                    .collect();
                view.text = conflict_text(&view.conflict);
            } else if let Some((v, t, _, _)) = values.into_iter().next() {
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

/// The values of a conflict as one line: "amber / red".
fn conflict_text(conflict: &[Candidate]) -> String {
    conflict
        .iter()
        .map(|c| c.text.clone())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Adds one school's whole responsibility to the values in conflict,
/// unless another school gave the same.
fn add_whole(
    view: &mut FieldView,
    parts: Map<String, Json>,
    actor: String,
    actors: &BTreeMap<String, ActorEntry>,
) {
    let text = responsibility_text(&parts);
    let value = Json::Object(parts);
    if !view.conflict.iter().any(|c| c.value == value) {
        view.conflict.push(candidate(value, text, actor, 0, actors));
    }
}

/// A responsibility field: one map (read part by part), version 1's one
/// line (the person), or, where two schools made it at once (each
/// converting a version 1 line), several of these, reported as a
/// conflict of wholes.
fn read_responsibilities(
    doc: &impl ReadDoc,
    obj: &ObjId,
    entries: &Entries,
    key: &str,
    view: &mut FieldView,
    actors: &BTreeMap<String, ActorEntry>,
) {
    let values = match entries.item(key) {
        None => Vec::new(),
        Some(item) if !item.conflict => vec![(item.value.clone().into_value(), item.id())],
        Some(_) => doc.get_all(obj, key).unwrap_or_default(),
    };
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
        add_whole(view, parts, actor_of(&id), actors);
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
        view.text = conflict_text(&view.conflict);
    }
}

/// (value, actor that set it) for each value one part holds.
type PartValues = Vec<(String, String)>;

/// Every value one part of a responsibility holds, with the actor that
/// set it; equal values set by several schools are all kept, so each
/// school's whole can be put back together.
fn part_values(doc: &impl ReadDoc, map: &ObjId, entries: &Entries, part: &str) -> PartValues {
    let values = match entries.item(part) {
        None => Vec::new(),
        Some(item) if !item.conflict => vec![(item.value.clone().into_value(), item.id())],
        Some(_) => doc.get_all(map, part).unwrap_or_default(),
    };
    values
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
    doc: &impl ReadDoc,
    map: &ObjId,
    view: &mut FieldView,
    actors: &BTreeMap<String, ActorEntry>,
) {
    let entries = Entries::of(doc, map);
    let per_part: Vec<(&str, PartValues)> = RESPONSIBILITY_PARTS
        .iter()
        .map(|part| (*part, part_values(doc, map, &entries, part)))
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
        add_whole(view, parts, actor, actors);
    }
    if !view.conflict.is_empty() {
        view.text = conflict_text(&view.conflict);
    }
}

/// The whole document as it was at `heads` (a signed version). From an
/// `Automerge` (`AutoCommit::document` gives one) because only it can
/// fork at past heads without a `&mut`.
pub fn read_at(doc: &Automerge, heads: &[ChangeHash]) -> Result<DocView, ModelError> {
    let past = doc.fork_at(heads)?;
    read(&past)
}

// Here rather than in `records`, which sits below the reader.
impl Review {
    /// The document as this review signed it, and that version's heads.
    pub fn signed_view(&self, doc: &Automerge) -> Result<(Vec<ChangeHash>, DocView), ModelError> {
        let heads = self.heads()?;
        if let Some(missing) = heads.iter().find(|h| doc.get_change_by_hash(h).is_none()) {
            return Err(ModelError::UnreadableVersion {
                date: when_text(&self.date),
                detail: format!(
                    "this document has no version {}",
                    short(&missing.to_string())
                ),
            });
        }
        let view = read_at(doc, &heads)?;
        Ok((heads, view))
    }
}

#[cfg(test)]
mod tests {
    use automerge::{AutoCommit, Automerge};

    use super::*;
    use crate::author::Author;
    use crate::create::create;
    use crate::edit::set_field;
    use crate::history::history;
    use crate::review::{Given, record};
    use crate::schema::Kind;

    /// The store assembles an `Automerge`: it reads as the `AutoCommit`
    /// it was saved from does, past versions and history too.
    #[test]
    fn a_document_reads_the_same_from_the_stores_automerge() {
        let who = Author {
            school: "Bank Road".into(),
            person: Some("Carole Clemens".into()),
            time: 1_499_760_000,
        };
        let mut doc = AutoCommit::new();
        create(&mut doc, Kind::ActionPlan, "Plan 2017-18", None, &who).unwrap();
        doc.commit();
        record(
            &mut doc,
            "11 July 2017",
            "the JCC",
            None,
            Given::Nothing,
            &who,
        )
        .unwrap();
        doc.commit();
        set_field(&mut doc, None, "period", "2017-18", &who).unwrap();
        doc.commit();
        let stored = Automerge::load(&doc.save()).unwrap();

        let view = read(&stored).unwrap();
        assert_eq!(view, read(&doc).unwrap());
        assert_eq!(kind_of(&stored).unwrap(), kind_of(&doc).unwrap());
        let review = &view.reviews[0];
        assert_eq!(records::find(&stored, "11 July 2017").unwrap().1, *review);
        let (heads, then) = review.signed_view(&stored).unwrap();
        assert_eq!(then.field("period").unwrap().text, "");
        assert_eq!(view.field("period").unwrap().text, "2017-18");
        // Since the version reviewed: recording the review, then the edit.
        let names = Default::default();
        assert_eq!(history(&stored, &heads, &names).len(), 2);
        assert_eq!(
            history(&stored, &[], &names),
            history(doc.document(), &[], &names)
        );
    }
}
