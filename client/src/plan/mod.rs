//! The command line for the typed partnership documents: create any of
//! the nine kinds, add, edit, move and remove rows, set a status, resolve
//! a conflict, record reviews with signatures, read any document as
//! tables, its history and what changed since a review, import and
//! export. Every edit goes through the store and the model in
//! `partnerplan_model`; these modules only parse, call and print:
//!
//! - `args` — the commands as the command line spells them;
//! - `edits` — the commands that change a document, one change each;
//! - `reads` — the commands that read one;
//! - `import` — an action plan file, written in one transaction;
//! - `terminal` — documents, reviews and history as text for a terminal.

use std::path::Path;

use partnerplan_model::records::SignatureInput;

use crate::error::ClientError;
use crate::school::School;

mod args;
mod edits;
mod import;
mod reads;
mod terminal;

pub use args::{
    ModelCommand, NewSchool, PartnershipCommand, PlaceArgs, PlanCommand, ReviewCommand, RowCommand,
};
pub use terminal::terminal;

/// Runs one typed-document command for the school in `dir`, as `person`.
pub fn run(dir: &Path, person: Option<&str>, command: ModelCommand) -> Result<(), ClientError> {
    let mut school = School::open(dir)?;
    let who = edits::author(&mut school, person)?;
    let school = &mut school;
    match command {
        ModelCommand::New {
            kind,
            title,
            partnership,
        } => edits::new_document(school, &who, &kind, &title, partnership.as_deref()),
        ModelCommand::View {
            url,
            review,
            removed,
            json,
        } => reads::view(school, &url, review.as_deref(), removed, json),
        ModelCommand::Put {
            url,
            field,
            value,
            row,
        } => edits::put(school, &who, &url, &field, &value, row.as_deref()),
        ModelCommand::Type {
            url,
            field,
            row,
            how,
        } => edits::type_text(school, &who, &url, &field, row.as_deref(), how.edit()?),
        ModelCommand::Row(command) => edits::row(school, &who, command),
        ModelCommand::Plan(PlanCommand::Status {
            url,
            action,
            status,
        }) => edits::plan_status(school, &who, &url, &action, &status),
        ModelCommand::Partnership(PartnershipCommand::AddSchool(new)) => {
            edits::add_school(school, &who, &new)
        }
        ModelCommand::Partnership(PartnershipCommand::OpenAll { url }) => {
            reads::open_all(school, &url)
        }
        ModelCommand::Conflicts { url, json } => reads::conflicts(school, &url, json),
        ModelCommand::Resolve {
            url,
            field,
            keep,
            row,
        } => edits::resolve(school, &who, &url, &field, &keep, row.as_deref()),
        ModelCommand::Review(ReviewCommand::Record {
            url,
            date,
            by,
            note,
            signatures,
        }) => edits::record_review(
            school,
            &who,
            &url,
            (&date, &by, note.as_deref()),
            &signatures,
        ),
        ModelCommand::Review(ReviewCommand::Sign {
            url,
            review,
            name,
            role,
            school: for_school,
            date,
        }) => {
            let input = SignatureInput {
                name,
                role,
                school: for_school.unwrap_or_default(),
                date,
            };
            edits::sign_review(school, &who, &url, &review, input)
        }
        ModelCommand::Review(ReviewCommand::Withdraw {
            url,
            review,
            reason,
        }) => edits::withdraw_review(school, &who, &url, &review, reason.as_deref()),
        ModelCommand::Review(ReviewCommand::List { url, json }) => {
            reads::reviews(school, &url, json)
        }
        ModelCommand::History { url, json } => reads::history(school, &url, json),
        ModelCommand::Changes { url, since, json } => reads::changes(school, &url, &since, json),
        ModelCommand::Comment {
            partnership,
            text,
            officer,
            date,
            concerning,
        } => edits::comment(
            school,
            &who,
            &partnership,
            [
                ("date", date),
                ("officer", officer),
                ("concerning", concerning),
                ("text", Some(text)),
            ],
        ),
        ModelCommand::Import { file, partnership } => {
            import::import_file(school, &who, &file, partnership.as_deref())
        }
        ModelCommand::Export {
            url,
            format,
            output,
        } => reads::export(school, &url, &format, output),
    }
}
