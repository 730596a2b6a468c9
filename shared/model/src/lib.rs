//! The partnership documents as a typed model, and the one place that
//! maps them to Automerge.
//!
//! Each of the nine documents (`Kind`) is one Automerge document whose
//! root holds `kind`, `schemaVersion`, `title` (text), `actors` (which
//! school and person each Automerge actor is), `reviews`, and the fields
//! and tables `schema` lists for its kind. How they merge:
//!
//! - prose is Automerge text, so two schools typing in one cell keep both;
//! - rows are maps with a uuid `id` in lists, ordered by a `position`
//!   number, found by id; removing a row marks it removed (a tombstone)
//!   so an edit made meanwhile elsewhere is never lost;
//! - a scalar set to two values at once is a `Conflict`, reported with
//!   each value and the school that set it, until someone sets it again.
//!
//! Nothing here does IO or reads a clock: callers pass the time in.

pub mod diff;
pub mod doc;
pub mod history;
pub mod plan_file;
pub mod render;
pub mod review;
pub mod schema;
pub mod text;
pub mod values;
pub mod when;

#[cfg(test)]
mod merge_tests;

pub use doc::{
    Author, Candidate, Conflict, DocView, FieldView, Placement, ProseEdit, RowView, TableView,
};
pub use review::{Review, Signature};
pub use schema::{KINDS, Kind};
pub use values::Status;
pub use when::When;

/// The shape of the documents this version writes. Version 1 kept a named
/// responsibility as one line of text and ordered rows only by their
/// place in the list; version 2 splits responsibility into person, role
/// and school, and gives rows a `position`, an edit counter and removal
/// tombstones. Readers accept every older shape; see `doc::read`.
pub const SCHEMA_VERSION: i64 = 2;

/// Why a change to a document could not be made, as a sentence that says
/// what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "this document is not one of the partnership documents (it has no kind). Use `partnerplan show` and `partnerplan set` for it, or create a typed one with `partnerplan new <kind>`."
    )]
    NotModel,
    #[error(
        "this document was written by a newer partnerplan (schema version {found}; this one knows up to {SCHEMA_VERSION}). You can read it, but update partnerplan before changing it."
    )]
    TooNew { found: i64 },
    #[error("this is a {found}, not a {expected}: {hint}")]
    WrongKind {
        found: &'static str,
        expected: &'static str,
        hint: String,
    },
    #[error("“{field}” is not a field of {of}. Its fields are: {known}.")]
    UnknownField {
        field: String,
        of: String,
        known: String,
    },
    #[error("“{table}” is not a table of {of}. Its tables are: {known}.")]
    UnknownTable {
        table: String,
        of: String,
        known: String,
    },
    #[error(
        "there is no row “{id}” in this document. Show it with `partnerplan view` to see each row's id."
    )]
    NoSuchRow { id: String },
    #[error("“{id}” could be any of {matches}: give more of the id.")]
    AmbiguousRow { id: String, matches: String },
    #[error("{what}: {reason}.")]
    BadValue { what: String, reason: String },
    #[error(
        "the {row} “{label}” was removed by {by}. Restore it with `partnerplan row restore <url> {id}` before changing it."
    )]
    RowRemoved {
        row: &'static str,
        label: String,
        by: String,
        id: String,
    },
    #[error("{0}")]
    Placement(String),
    #[error(
        "there is no review “{id}” in this document. `partnerplan review list <url>` shows each review's id."
    )]
    NoSuchReview { id: String },
    #[error(
        "the version signed at the review of {date} cannot be read: {detail}. The review's record of it is damaged; `partnerplan view <url>` still shows the document as it is now, and `partnerplan history <url>` every change."
    )]
    UnreadableVersion { date: String, detail: String },
    #[error("the plan cannot be exported as a JSON file yet: {0}")]
    NotExportable(String),
    #[error("the import file is not usable: {0}")]
    BadFile(String),
    #[error("the document could not be changed: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for ModelError {
    fn from(error: automerge::AutomergeError) -> Self {
        ModelError::Automerge(error.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for ModelError {
    fn from(error: autosurgeon::ReconcileError) -> Self {
        ModelError::Automerge(error.to_string())
    }
}
