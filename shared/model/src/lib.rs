//! The partnership documents as a typed model, and the one place that
//! maps them to Automerge.
//!
//! Each of the nine documents, and the local authority's comments (`Kind`), is one Automerge document whose
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
//!
//! # Layers
//!
//! Lowest first; a module uses only modules on lines above its own, or
//! before it on its line, so `use` lines never form a cycle
//! (`layer_tests` checks it):
//!
//! 1. `text`, `when`, `values`, `schema`, `error`: words, dates and terms,
//!    choices, each kind's fields and tables, the one error type. No
//!    Automerge.
//! 2. `records`, `signing`, `doc`: what a document keeps whole (actors,
//!    reviews, signatures) and reading it back; what a signature seals
//!    and checking it against schools' keys; a document's kind and
//!    version, and the check every typed edit makes inside its own change.
//! 3. `view`, `author`, `locate`: a document as read (`DocView`); who
//!    made a change; where rows are and in what order.
//! 4. `read`: a whole document, or a past version of it, into a view.
//! 5. `create`, `edit`, `rows`, `review`: the typed edits, each on a
//!    `&mut AutoCommit` inside the caller's change.
//! 6. `diff`, `render`, `history`, `plan_file`, `documents_file`:
//!    comparing, printing, who-changed-what, the action plan's import and
//!    export file and the file for any document.
//! 7. `county`: the local authority's reading across partnerships (the
//!    overview, the county table, outcomes, funding).
//!
//! Readers take any Automerge document (`&impl ReadDoc`, `&impl
//! Readable`, or `&Automerge` for past versions and history), so a caller
//! holding the store's `Automerge` reads it without a copy.

pub mod author;
pub mod county;
pub mod create;
pub mod diff;
pub mod doc;
pub mod documents_file;
pub mod edit;
pub mod error;
pub mod history;
pub mod locate;
pub mod plan_file;
pub mod read;
pub mod records;
pub mod render;
pub mod review;
pub mod rows;
pub mod schema;
pub mod signing;
pub mod text;
pub mod values;
pub mod view;
pub mod when;

#[cfg(test)]
mod layer_tests;
#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod signature_tests;

pub use author::Author;
pub use edit::ProseEdit;
pub use error::ModelError;
pub use records::{Review, Signature};
pub use rows::Placement;
pub use schema::{KINDS, Kind, PARTNERSHIP_KINDS, SCHEMA_VERSION};
pub use values::Status;
pub use view::{Candidate, Conflict, DocView, FieldView, RowView, TableView};
pub use when::When;
