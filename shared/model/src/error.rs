//! `ModelError`: why a change to a document could not be made, as a
//! sentence that says what to do. The one error type of the model.

use crate::schema::SCHEMA_VERSION;

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
        "{yours} can sign only for itself, not for {named}: each school signs from its own computer, in its app or with `partnerplan review sign`."
    )]
    NotYourSchool { yours: String, named: String },
    #[error(
        "{who} has already signed the review of {review} (on {on}): a person signs a review once."
    )]
    AlreadySigned {
        who: String,
        review: String,
        on: String,
    },
    #[error(
        "the review of {review} was withdrawn by {by} on {on}, so it cannot be signed. Record a new review and sign that."
    )]
    Withdrawn {
        review: String,
        by: String,
        on: String,
    },
    #[error("the review of {review} was already withdrawn by {by} on {on}.")]
    AlreadyWithdrawn {
        review: String,
        by: String,
        on: String,
    },
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

impl ModelError {
    /// The sentence for someone working in the app, where there are no
    /// commands to type: the same fact, with what to do on the page. The
    /// `Display` sentence is the command line's.
    pub fn for_page(&self) -> String {
        match self {
            ModelError::NotModel => {
                "this document is not one of the partnership documents, so the app cannot change it.".into()
            }
            ModelError::NoSuchRow { .. } => {
                "that row is no longer in this document: a partner may have removed it. Reload the page to see the document as it is now.".into()
            }
            ModelError::RowRemoved { row, label, by, .. } => format!(
                "the {row} “{label}” was removed by {by}. Reload the page and choose “Bring it back” beside it, then change it."
            ),
            ModelError::NoSuchReview { .. } => {
                "that review is no longer in this document. Reload the page to see its reviews as they are now.".into()
            }
            ModelError::NotYourSchool { yours, named } => format!(
                "{yours} can sign only for itself, not for {named}: each school signs from its own computer."
            ),
            ModelError::UnreadableVersion { date, detail } => format!(
                "the version signed at the review of {date} cannot be read: {detail}. The review's record of it is damaged; the document as it is now and its history can still be read."
            ),
            other => other.to_string(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_sentences_name_no_commands() {
        let every = [
            ModelError::NotModel,
            ModelError::NoSuchRow { id: "ab12".into() },
            ModelError::RowRemoved {
                row: "action",
                label: "Phonics training".into(),
                by: "Valley Infants".into(),
                id: "ab12".into(),
            },
            ModelError::NoSuchReview { id: "cd34".into() },
            ModelError::NotYourSchool {
                yours: "Hilltop Primary".into(),
                named: "Valley Infants".into(),
            },
            ModelError::UnreadableVersion {
                date: "11 July 2017".into(),
                detail: "a change is missing".into(),
            },
        ];
        for error in every {
            let cli = error.to_string();
            let page = error.for_page();
            assert!(cli.contains("`partnerplan"), "the command line's: {cli}");
            assert!(
                !page.contains('`') && !page.contains("partnerplan "),
                "{page}"
            );
            assert!(
                !page.contains("ab12") && !page.contains("cd34"),
                "no ids: {page}"
            );
        }
    }
}
