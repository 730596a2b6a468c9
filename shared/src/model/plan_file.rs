//! The plain file format for an action plan: JSON that a person can write
//! by hand (or transcribe from a paper plan, as
//! `tests/fixtures/action-plan-000.json` does), import into a new
//! document, and get back by exporting. The README documents it.

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::doc::{self, Author, DocView, Placement, RowView};
use super::review::{self, SignatureInput};
use super::schema::Kind;
use super::values::{PARTNERSHIP_KIND, PHASE, SIGNATORY_ROLE, STATUS};
use super::when::When;

/// What `format` must say, so a stray JSON file is not taken for a plan.
pub const FORMAT: &str = "partnerplan-action-plan";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanFile {
    pub format: String,
    pub version: u32,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Where the plan came from and what the source did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The partnership that wrote it; importing creates its partnership
    /// document too, unless the plan is added to an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partnership: Option<PartnershipFile>,
    pub overriding_objective: String,
    #[serde(default)]
    pub objectives: Vec<ObjectiveFile>,
    #[serde(default)]
    pub areas: Vec<AreaFile>,
    #[serde(default)]
    pub reviews: Vec<ReviewFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnershipFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_authority: Option<String>,
    #[serde(default)]
    pub schools: Vec<SchoolFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchoolFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headteacher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chair: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectiveFile {
    pub number: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AreaFile {
    pub name: String,
    #[serde(default)]
    pub links: Vec<i64>,
    #[serde(default)]
    pub key_objectives: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<String>,
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub actions: Vec<ActionFile>,
    #[serde(default)]
    pub impact: Vec<ImpactFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionFile {
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsibility: Option<ResponsibilityFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponsibilityFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImpactFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewFile {
    pub date: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default)]
    pub signatures: Vec<SignatureInput>,
    /// On export: the version reviewed (Automerge heads). Ignored on
    /// import, where the review signs the imported version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<String>,
}

impl PlanFile {
    /// Reads a plan file, saying where and what is wrong.
    pub fn from_json(text: &str) -> Result<PlanFile, ModelError> {
        let probe: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ModelError::BadFile(format!("it is not JSON ({e})")))?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(ModelError::BadFile(format!(
                "it does not start with \"format\": \"{FORMAT}\", so it is not a partnerplan action plan file"
            )));
        }
        let plan: PlanFile =
            serde_json::from_str(text).map_err(|e| ModelError::BadFile(e.to_string()))?;
        if plan.version > FORMAT_VERSION {
            return Err(ModelError::BadFile(format!(
                "it is version {} of the format and this partnerplan reads up to version {FORMAT_VERSION}; update partnerplan",
                plan.version
            )));
        }
        plan.check()?;
        Ok(plan)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan file serialises")
    }

    /// Checks every date, term, status, role and link before anything is
    /// written, naming the place of each problem.
    fn check(&self) -> Result<(), ModelError> {
        let bad = |place: String, reason: String| ModelError::BadFile(format!("{place}: {reason}"));
        let when = |place: String, s: &Option<String>| -> Result<(), ModelError> {
            if let Some(s) = s {
                When::parse(s).map_err(|e| bad(place, e.0))?;
            }
            Ok(())
        };
        let numbers: Vec<i64> = self.objectives.iter().map(|o| o.number).collect();
        if let Some(p) = &self.partnership {
            if let Some(kind) = &p.kind {
                PARTNERSHIP_KIND
                    .parse(kind)
                    .map_err(|e| bad("partnership".into(), e))?;
            }
            for (i, school) in p.schools.iter().enumerate() {
                if let Some(phase) = &school.phase {
                    PHASE.parse(phase).map_err(|e| {
                        bad(format!("partnership.schools[{i}] ({})", school.name), e)
                    })?;
                }
            }
        }
        for (i, area) in self.areas.iter().enumerate() {
            let place = format!("areas[{i}] ({})", area.name);
            when(format!("{place}.timeline"), &area.timeline)?;
            for link in &area.links {
                if !numbers.is_empty() && !numbers.contains(link) {
                    return Err(bad(
                        format!("{place}.links"),
                        format!(
                            "objective {link} is not among the plan's objectives ({numbers:?})"
                        ),
                    ));
                }
            }
            for (j, action) in area.actions.iter().enumerate() {
                let place = format!("{place}.actions[{j}]");
                when(format!("{place}.reviewDate"), &action.review_date)?;
                if let Some(status) = &action.status {
                    STATUS
                        .parse(status)
                        .map_err(|e| bad(format!("{place}.status"), e))?;
                }
            }
            for (j, entry) in area.impact.iter().enumerate() {
                when(format!("{place}.impact[{j}].date"), &entry.date)?;
            }
        }
        for (i, r) in self.reviews.iter().enumerate() {
            let place = format!("reviews[{i}]");
            When::parse(&r.date).map_err(|e| bad(format!("{place}.date"), e.0))?;
            for (j, s) in r.signatures.iter().enumerate() {
                SIGNATORY_ROLE
                    .parse(&s.role)
                    .map_err(|e| bad(format!("{place}.signatures[{j}]"), e))?;
                when(format!("{place}.signatures[{j}].date"), &s.date)?;
            }
        }
        Ok(())
    }

    /// The same plan with every date, term, status and role in the form
    /// a document stores them, as an export gives them back.
    pub fn normalised(&self) -> PlanFile {
        let when = |s: &Option<String>| {
            s.as_ref().map(|s| {
                When::parse(s)
                    .map(|w| w.to_string())
                    .unwrap_or_else(|_| s.clone())
            })
        };
        let mut plan = self.clone();
        for area in &mut plan.areas {
            area.timeline = when(&area.timeline);
            area.links.sort();
            for action in &mut area.actions {
                action.review_date = when(&action.review_date);
                action.status = action.status.as_ref().map(|s| {
                    STATUS
                        .parse(s)
                        .map(str::to_string)
                        .unwrap_or_else(|_| s.clone())
                });
            }
            for entry in &mut area.impact {
                entry.date = when(&entry.date);
            }
        }
        for r in &mut plan.reviews {
            r.date = When::parse(&r.date)
                .map(|w| w.to_string())
                .unwrap_or_else(|_| r.date.clone());
            r.heads.clear();
            for s in &mut r.signatures {
                s.role = SIGNATORY_ROLE
                    .parse(&s.role)
                    .map(str::to_string)
                    .unwrap_or_else(|_| s.role.clone());
                s.date = Some(when(&s.date).unwrap_or_else(|| r.date.clone()));
            }
        }
        plan.partnership = None;
        plan
    }
}

fn pairs(values: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    values
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.trim().is_empty())
                .map(|v| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Writes the plan's content (everything but the reviews) into a new
/// action plan document.
pub fn import_content(
    doc: &mut automerge::AutoCommit,
    plan: &PlanFile,
    partnership: Option<&str>,
    author: &Author,
) -> Result<(), ModelError> {
    doc::create(doc, Kind::ActionPlan, &plan.title, partnership, author)?;
    let root = |doc: &mut automerge::AutoCommit,
                key: &str,
                value: &Option<String>|
     -> Result<(), ModelError> {
        if let Some(value) = value {
            doc::set_field(doc, None, key, value, author)?;
        }
        Ok(())
    };
    root(doc, "period", &plan.period)?;
    root(doc, "source", &plan.source)?;
    root(
        doc,
        "overridingObjective",
        &Some(plan.overriding_objective.clone()),
    )?;
    for objective in &plan.objectives {
        let number = objective.number.to_string();
        doc::add_row(
            doc,
            "objectives",
            None,
            &pairs(&[("number", Some(&number)), ("text", Some(&objective.text))]),
            &Placement::End,
            author,
        )?;
    }
    for area in &plan.areas {
        let links = area
            .links
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let id = doc::add_row(
            doc,
            "areas",
            None,
            &pairs(&[
                ("name", Some(&area.name)),
                ("links", Some(&links)),
                ("keyObjectives", Some(&area.key_objectives)),
                ("timeline", area.timeline.as_deref()),
                ("outcome", Some(&area.outcome)),
            ]),
            &Placement::End,
            author,
        )?;
        for action in &area.actions {
            let r = action.responsibility.clone().unwrap_or_default();
            let mut values = pairs(&[
                ("what", Some(&action.what)),
                ("reviewDate", action.review_date.as_deref()),
                ("status", action.status.as_deref()),
                ("notes", Some(&action.notes)),
                ("responsibility.person", r.person.as_deref()),
                ("responsibility.role", r.role.as_deref()),
                ("responsibility.school", r.school.as_deref()),
            ]);
            values.retain(|(_, v)| !v.is_empty());
            doc::add_row(doc, "actions", Some(&id), &values, &Placement::End, author)?;
        }
        for entry in &area.impact {
            doc::add_row(
                doc,
                "impact",
                Some(&id),
                &pairs(&[("date", entry.date.as_deref()), ("text", Some(&entry.text))]),
                &Placement::End,
                author,
            )?;
        }
    }
    Ok(())
}

/// Records the plan's reviews, each signing the document as imported
/// (the paper's own earlier versions are not there to sign). Run after
/// `import_content` has been committed, so the heads are that version.
pub fn import_reviews(
    doc: &mut automerge::AutoCommit,
    plan: &PlanFile,
    author: &Author,
) -> Result<Vec<String>, ModelError> {
    // Every review signs the same version: the imported one.
    let heads = review::heads_hex(doc);
    plan.reviews
        .iter()
        .map(|r| {
            review::record_at(
                doc,
                heads.clone(),
                &r.date,
                &r.by,
                r.note.as_deref(),
                &r.signatures,
                author,
            )
        })
        .collect()
}

/// Writes the partnership document for a plan file that names one.
pub fn import_partnership(
    doc: &mut automerge::AutoCommit,
    partnership: &PartnershipFile,
    author: &Author,
) -> Result<(), ModelError> {
    doc::create(doc, Kind::Partnership, &partnership.name, None, author)?;
    for (key, value) in [
        ("partnershipKind", &partnership.kind),
        ("district", &partnership.district),
        ("localAuthority", &partnership.local_authority),
    ] {
        if let Some(value) = value {
            doc::set_field(doc, None, key, value, author)?;
        }
    }
    for school in &partnership.schools {
        doc::add_row(
            doc,
            "schools",
            None,
            &pairs(&[
                ("name", Some(&school.name)),
                ("phase", school.phase.as_deref()),
                ("headteacher", school.headteacher.as_deref()),
                ("chair", school.chair.as_deref()),
            ]),
            &Placement::End,
            author,
        )?;
    }
    Ok(())
}

fn text(row: &RowView, key: &str) -> String {
    row.field(key).map(first_value).unwrap_or_default()
}

/// A field's value for a file: its one value, or where schools disagree,
/// the first of their values (the conflict stays in the document).
fn first_value(field: &doc::FieldView) -> String {
    let value = field
        .conflict
        .first()
        .map(|c| &c.value)
        .unwrap_or(&field.value);
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn optional(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// The plan as a file, from a document read with `doc::read`.
pub fn export(view: &DocView) -> Result<PlanFile, ModelError> {
    if view.kind != Kind::ActionPlan {
        return Err(ModelError::WrongKind {
            found: view.kind.label(),
            expected: Kind::ActionPlan.label(),
            hint: "export it as markdown, html or csv instead.".into(),
        });
    }
    let root = |key: &str| view.field(key).map(first_value).unwrap_or_default();
    Ok(PlanFile {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        title: view.title.clone(),
        period: optional(root("period")),
        source: optional(root("source")),
        partnership: None,
        overriding_objective: root("overridingObjective"),
        objectives: view
            .live("objectives")
            .iter()
            .map(|r| ObjectiveFile {
                number: r
                    .field("number")
                    .and_then(|f| f.value.as_i64())
                    .unwrap_or(0),
                text: text(r, "text"),
            })
            .collect(),
        areas: view
            .live("areas")
            .iter()
            .map(|area| AreaFile {
                name: text(area, "name"),
                links: area
                    .field("links")
                    .and_then(|f| f.value.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|v| v.as_i64())
                    .collect(),
                key_objectives: text(area, "keyObjectives"),
                timeline: optional(text(area, "timeline")),
                outcome: text(area, "outcome"),
                actions: area
                    .live("actions")
                    .iter()
                    .map(|a| {
                        let r = a.field("responsibility");
                        let value = r.map(|f| {
                            f.conflict
                                .first()
                                .map(|c| c.value.clone())
                                .unwrap_or(f.value.clone())
                        });
                        let part = |k: &str| {
                            value
                                .as_ref()
                                .and_then(|v| v.get(k))
                                .and_then(|v| v.as_str())
                                .map(str::to_string)
                        };
                        let responsibility = ResponsibilityFile {
                            person: part("person"),
                            role: part("role"),
                            school: part("school"),
                        };
                        ActionFile {
                            what: text(a, "what"),
                            responsibility: (responsibility != ResponsibilityFile::default())
                                .then_some(responsibility),
                            review_date: optional(text(a, "reviewDate")),
                            status: optional(text(a, "status")),
                            notes: text(a, "notes"),
                        }
                    })
                    .collect(),
                impact: area
                    .live("impact")
                    .iter()
                    .map(|e| ImpactFile {
                        date: optional(text(e, "date")),
                        text: text(e, "text"),
                    })
                    .collect(),
            })
            .collect(),
        reviews: view
            .reviews
            .iter()
            .map(|r| ReviewFile {
                date: r.date.clone(),
                by: r.by.clone(),
                note: r.note.clone(),
                signatures: r
                    .signatures
                    .iter()
                    .map(|s| SignatureInput {
                        name: s.name.clone(),
                        role: s.role.clone(),
                        school: s.school.clone(),
                        date: Some(s.date.clone()),
                    })
                    .collect(),
                heads: r.heads.clone(),
            })
            .collect(),
    })
}
