//! What each of the nine partnership documents holds, field by field and
//! table by table (DOMAIN.md lists the minimum; the seeds show real
//! content), and the local authority's comments to a partnership. One
//! declarative description per kind drives creating, editing, validating,
//! reading, rendering and diffing, so the kinds behave alike and a new
//! field is one line here.

use crate::values::{Choices, IN_PARTNERSHIP, KEY_STAGE, PARTNERSHIP_KIND, PHASE, STATUS};

/// The shape of the documents this version writes. Version 1 kept a named
/// responsibility as one line of text and ordered rows only by their
/// place in the list; version 2 splits responsibility into person, role
/// and school, and gives rows a `position`, an edit counter and removal
/// tombstones. Readers accept every older shape; see `read::read`.
///
/// A field added to a kind (the partnership's `funding`, an outcome
/// row's number of `schools`) is not a new version: documents without it
/// read it as empty, and an older program that does not know it leaves
/// it as it is (an edit touches only the fields it names). The version
/// changes only when a field it knows changes shape, which an older
/// program would misread.
pub const SCHEMA_VERSION: i64 = 2;

/// The parts of a `FieldType::Responsibility`, in the order a person
/// gives them ("person; role; school").
pub const RESPONSIBILITY_PARTS: [&str; 3] = ["person", "role", "school"];

/// The nine documents a partnership writes, and the one a local
/// authority writes to a partnership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Partnership,
    Principles,
    Memorandum,
    AimsAudit,
    PartnershipAudit,
    AuditAnalysis,
    ActionPlan,
    ProgressReport,
    Outcomes,
    /// The local authority's dated comments to one partnership, written
    /// by the local authority alone and read by that partnership.
    Comments,
}

/// The kinds a partnership's schools start themselves.
pub const PARTNERSHIP_KINDS: [Kind; 9] = [
    Kind::Partnership,
    Kind::Principles,
    Kind::Memorandum,
    Kind::AimsAudit,
    Kind::PartnershipAudit,
    Kind::AuditAnalysis,
    Kind::ActionPlan,
    Kind::ProgressReport,
    Kind::Outcomes,
];

pub const KINDS: [Kind; 10] = [
    Kind::Partnership,
    Kind::Principles,
    Kind::Memorandum,
    Kind::AimsAudit,
    Kind::PartnershipAudit,
    Kind::AuditAnalysis,
    Kind::ActionPlan,
    Kind::ProgressReport,
    Kind::Outcomes,
    Kind::Comments,
];

pub static KIND_CHOICES: Choices = Choices {
    what: "kind of document",
    options: &[
        ("partnership", &[]),
        ("principles", &["principle"]),
        ("memorandum", &["memorandum of understanding", "mou"]),
        ("aims-audit", &["partnership aims audit", "aims audit"]),
        ("partnership-audit", &["audit"]),
        ("audit-analysis", &["analysis"]),
        ("action-plan", &["plan", "partnership action plan"]),
        (
            "progress-report",
            &["report", "progress report", "progress report to the la"],
        ),
        ("outcomes", &[]),
        (
            "comments",
            &["local authority comments", "la comments", "comment"],
        ),
    ],
};

impl Kind {
    /// The name stored in the document's `kind` and used on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Partnership => "partnership",
            Kind::Principles => "principles",
            Kind::Memorandum => "memorandum",
            Kind::AimsAudit => "aims-audit",
            Kind::PartnershipAudit => "partnership-audit",
            Kind::AuditAnalysis => "audit-analysis",
            Kind::ActionPlan => "action-plan",
            Kind::ProgressReport => "progress-report",
            Kind::Outcomes => "outcomes",
            Kind::Comments => "comments",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Partnership => "Partnership",
            Kind::Principles => "Principles",
            Kind::Memorandum => "Memorandum of understanding",
            Kind::AimsAudit => "Partnership aims audit",
            Kind::PartnershipAudit => "Partnership audit",
            Kind::AuditAnalysis => "Audit analysis",
            Kind::ActionPlan => "Partnership action plan",
            Kind::ProgressReport => "Progress report to the local authority",
            Kind::Outcomes => "Outcomes",
            Kind::Comments => "Local authority comments",
        }
    }

    pub fn parse(input: &str) -> Result<Kind, String> {
        let key = KIND_CHOICES.parse(input)?;
        Ok(KINDS
            .into_iter()
            .find(|k| k.key() == key)
            .unwrap_or(Kind::ActionPlan))
    }

    pub fn schema(self) -> &'static DocSchema {
        SCHEMAS
            .iter()
            .find(|s| s.kind == self)
            .expect("every kind has a schema")
    }
}

/// How a field is stored and what it accepts.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// Automerge text: several schools typing in it keep all they typed.
    Prose,
    /// A short scalar string (a name): set, not typed into; two values at
    /// once are a conflict.
    Line,
    /// One of a closed set of names.
    Choice(&'static Choices),
    /// A date, month or term (`When`), stored as its canonical text.
    When,
    Integer,
    /// An amount of money in whole pounds (an integer), written and shown
    /// as "£51,000".
    Money,
    /// 0 to 100, such as the share of pupils reaching a level.
    Percent,
    /// Objective numbers an area links to: a map from number to `true`,
    /// so two schools adding different links keep both.
    Links,
    /// A named responsibility: a map of `person`, `role` and `school`,
    /// each a scalar, made when the row is.
    Responsibility,
}

impl FieldType {
    pub fn is_prose(self) -> bool {
        matches!(self, FieldType::Prose)
    }
}

#[derive(Debug)]
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub ty: FieldType,
}

/// Rows of one kind, each a map with a uuid `id`, in a list.
#[derive(Debug)]
pub struct Table {
    pub key: &'static str,
    pub label: &'static str,
    /// What one row is called: "action".
    pub row: &'static str,
    pub fields: &'static [Field],
    /// Tables inside each row (an area's actions and impact entries).
    pub tables: &'static [Table],
}

impl Table {
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.key == key)
    }
}

#[derive(Debug)]
pub struct DocSchema {
    pub kind: Kind,
    pub fields: &'static [Field],
    pub tables: &'static [Table],
}

impl DocSchema {
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The table with this key, at any depth.
    pub fn table(&self, key: &str) -> Option<&'static Table> {
        fn find(tables: &'static [Table], key: &str) -> Option<&'static Table> {
            tables
                .iter()
                .find(|t| t.key == key)
                .or_else(|| tables.iter().find_map(|t| find(t.tables, key)))
        }
        find(self.tables, key)
    }
}

const fn field(key: &'static str, label: &'static str, ty: FieldType) -> Field {
    Field { key, label, ty }
}

use FieldType::*;

const TEXT_ROW: &[Field] = &[field("text", "Text", Prose)];

pub static SCHEMAS: [DocSchema; 10] = [
    DocSchema {
        kind: Kind::Partnership,
        fields: &[
            field("partnershipKind", "Kind", Choice(&PARTNERSHIP_KIND)),
            field("district", "District", Line),
            field("localAuthority", "Local authority", Line),
            field("leadSchools", "Lead school(s)", Line),
            field("budgetHolder", "Budget holder", Line),
            field("funding", "Funding from the local authority", Money),
            field("term", "Agreed term of collaboration", Line),
            field("noticePeriod", "Notice period", Line),
        ],
        tables: &[
            Table {
                key: "schools",
                label: "Member schools",
                row: "school",
                fields: &[
                    field("name", "School", Line),
                    field("phase", "Phase", Choice(&PHASE)),
                    field("headteacher", "Headteacher", Line),
                    field("chair", "Chair of governors", Line),
                    field("joined", "Joined", When),
                    field("withdrawalNotice", "Notice of withdrawal", When),
                ],
                tables: &[],
            },
            Table {
                key: "documents",
                label: "Documents",
                row: "document",
                fields: &[
                    field("title", "Title", Line),
                    field("kind", "Kind", Choice(&KIND_CHOICES)),
                    field("url", "URL", Line),
                ],
                tables: &[],
            },
        ],
    },
    DocSchema {
        kind: Kind::Principles,
        fields: &[field("introduction", "Introduction", Prose)],
        tables: &[Table {
            key: "principles",
            label: "Principles",
            row: "principle",
            fields: TEXT_ROW,
            tables: &[],
        }],
    },
    DocSchema {
        kind: Kind::Memorandum,
        fields: &[
            field("term", "Agreed term of collaboration", Line),
            field("noticePeriod", "Notice period", Line),
        ],
        tables: &[
            Table {
                key: "foci",
                label: "Foci of the partnership",
                row: "focus",
                fields: TEXT_ROW,
                tables: &[],
            },
            Table {
                key: "commitments",
                label: "All schools in the collaboration are committed to",
                row: "commitment",
                fields: TEXT_ROW,
                tables: &[],
            },
            Table {
                key: "undertakings",
                label: "All schools undertake to support the partnership by",
                row: "undertaking",
                fields: TEXT_ROW,
                tables: &[],
            },
            Table {
                key: "receives",
                label: "All schools in the collaboration will receive",
                row: "benefit",
                fields: TEXT_ROW,
                tables: &[],
            },
            Table {
                key: "signatures",
                label: "Signatures",
                row: "signature",
                fields: &[
                    field("school", "School", Line),
                    field("headteacher", "Headteacher", Line),
                    field("date", "Date", When),
                ],
                tables: &[],
            },
        ],
    },
    DocSchema {
        kind: Kind::AimsAudit,
        fields: &[],
        tables: &[Table {
            key: "aims",
            label: "Partnership aims",
            row: "aim",
            fields: &[
                field("aim", "Partnership aim", Prose),
                field("strengths", "Strengths", Prose),
                field("forum", "Through which forum?", Prose),
                field("needs", "Needs", Prose),
                field("whoCanHelp", "Who can help?", Prose),
            ],
            tables: &[],
        }],
    },
    DocSchema {
        kind: Kind::PartnershipAudit,
        fields: &[],
        tables: &[Table {
            key: "schools",
            label: "Schools",
            row: "school",
            fields: &[
                field("school", "Name of school", Line),
                field(
                    "strengths",
                    "Potential strengths offered to partnership",
                    Prose,
                ),
                field("needs", "Potential development needs", Prose),
                field("notes", "Notes", Prose),
            ],
            tables: &[],
        }],
    },
    DocSchema {
        kind: Kind::AuditAnalysis,
        fields: &[],
        tables: &[Table {
            key: "needs",
            label: "Areas of need",
            row: "need",
            fields: &[
                field("need", "Area of need", Prose),
                field("provider", "Provider of support", Line),
                field(
                    "notes",
                    "Additional notes (and how impact will be measured)",
                    Prose,
                ),
            ],
            tables: &[],
        }],
    },
    DocSchema {
        kind: Kind::ActionPlan,
        fields: &[
            field("period", "Period", Line),
            field("overridingObjective", "Overriding objective", Prose),
            field("source", "Source", Prose),
        ],
        tables: &[
            Table {
                key: "objectives",
                label: "Partnership objectives",
                row: "objective",
                fields: &[
                    field("number", "No.", Integer),
                    field("text", "Objective", Prose),
                ],
                tables: &[],
            },
            Table {
                key: "areas",
                label: "Areas",
                row: "area",
                fields: &[
                    field("name", "Area", Line),
                    field("links", "Objectives", Links),
                    field("keyObjectives", "Key objective(s)", Prose),
                    field("timeline", "Timeline", When),
                    field("outcome", "Intended outcome / impact", Prose),
                ],
                tables: &[
                    Table {
                        key: "actions",
                        label: "Actions",
                        row: "action",
                        fields: &[
                            field("what", "Action", Prose),
                            field("responsibility", "Named responsibility", Responsibility),
                            field("reviewDate", "Review date", When),
                            field("status", "Status", Choice(&STATUS)),
                            field("notes", "Notes", Prose),
                        ],
                        tables: &[],
                    },
                    Table {
                        key: "impact",
                        label: "Impact to date",
                        row: "impact entry",
                        fields: &[field("date", "Date", When), field("text", "Impact", Prose)],
                        tables: &[],
                    },
                ],
            },
        ],
    },
    DocSchema {
        kind: Kind::ProgressReport,
        fields: &[
            field("period", "Period", When),
            field("collaborative", "Collaborative", Line),
            field("leadSchool", "Lead school", Line),
            field(
                "activity",
                "What activity has been undertaken to date?",
                Prose,
            ),
            field(
                "progress",
                "What progress has been made against the priorities?",
                Prose,
            ),
            field("strengths", "Strengths so far", Prose),
            field("development", "Areas for further development", Prose),
            field("comments", "Additional comments", Prose),
        ],
        tables: &[],
    },
    DocSchema {
        kind: Kind::Outcomes,
        fields: &[field("notes", "Notes", Prose)],
        tables: &[Table {
            key: "results",
            label: "Results",
            row: "result",
            fields: &[
                field("school", "School or group", Line),
                field("year", "Year", Integer),
                field("keyStage", "Key stage", Choice(&KEY_STAGE)),
                field(
                    "inPartnership",
                    "In a partnership?",
                    Choice(&IN_PARTNERSHIP),
                ),
                field("schools", "Schools", Integer),
                field("pupils", "Pupils", Integer),
                field("measure", "Measure", Line),
                field("percent", "%", Percent),
            ],
            tables: &[],
        }],
    },
    DocSchema {
        kind: Kind::Comments,
        fields: &[
            field("localAuthority", "Local authority", Line),
            field("partnership", "To the partnership", Line),
        ],
        tables: &[Table {
            key: "comments",
            label: "Comments",
            row: "comment",
            fields: &[
                field("date", "Date", When),
                field("officer", "Officer", Line),
                field("concerning", "Concerning", Line),
                field("text", "Comment", Prose),
            ],
            tables: &[],
        }],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_schema_and_reads_back() {
        for kind in KINDS {
            assert_eq!(kind.schema().kind, kind);
            assert_eq!(Kind::parse(kind.key()).unwrap(), kind);
        }
        assert_eq!(Kind::parse("MoU").unwrap(), Kind::Memorandum);
        assert!(Kind::parse("minutes").unwrap_err().contains("action-plan"));
    }
}
