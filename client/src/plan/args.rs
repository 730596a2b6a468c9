//! The typed-document commands as the command line spells them, and
//! the small parsers that turn their text into the model's inputs.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use partnerplan_model::records::SignatureInput;
use partnerplan_model::rows::Placement;

use crate::documents;
use crate::error::ClientError;

/// The typed-document commands, flattened into `partnerplan`'s own.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// Create a partnership document (kind `partnership`) or any of the
    /// partnership's documents, and print its URL.
    #[command(
        long_about = "Create a typed document and print its URL. Kinds: partnership, principles, memorandum, aims-audit, partnership-audit, audit-analysis, action-plan, progress-report, outcomes. With --partnership, the new document is listed in that partnership document, so schools that join later find it there."
    )]
    New {
        /// partnership, principles, memorandum, aims-audit, partnership-audit, audit-analysis, action-plan, progress-report or outcomes.
        kind: String,
        /// The document's title (for a partnership: its name).
        #[arg(long)]
        title: String,
        /// The partnership document (automerge: URL) to list it in.
        #[arg(long)]
        partnership: Option<String>,
    },
    /// Show a typed document as tables, with every conflict and removed row.
    View {
        url: String,
        /// Show it as it was when this review was recorded (its id, or its date).
        #[arg(long)]
        review: Option<String>,
        /// Also show rows that have been removed.
        #[arg(long)]
        removed: bool,
        #[arg(long)]
        json: bool,
    },
    /// Give a field a value: of the document, or with --row of one row.
    #[command(
        long_about = "Give a field a value. Dates and terms: 25 April 2017, 2017-04-25, July 2017, Autumn 2017, Spring 1, Summer 2 2018. A status: red, amber, green or done. A responsibility: person; role; school (any part may be empty). Objective links: 1, 2, 5. An empty value clears the field. Setting a field that holds a conflict resolves it."
    )]
    Put {
        url: String,
        /// The field's name, as `view --json` shows it: status, reviewDate, responsibility, notes …
        field: String,
        value: String,
        /// The row (its id, or the first characters of it, as `view` shows).
        #[arg(long)]
        row: Option<String>,
    },
    /// Type into a text field in place, keeping what partners typed.
    Type {
        url: String,
        field: String,
        #[arg(long)]
        row: Option<String>,
        #[command(flatten)]
        how: documents::TextEditArgs,
    },
    /// Add, move, remove or restore rows (actions, areas, schools, audit rows …).
    #[command(subcommand)]
    Row(RowCommand),
    /// The partnership action plan: set an action's status.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// The partnership: add a member school, fetch all its documents.
    #[command(subcommand)]
    Partnership(PartnershipCommand),
    /// Fields that two schools set to different values at once.
    Conflicts {
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// Resolve a conflict: keep one school's value (give the value, or the school).
    Resolve {
        url: String,
        field: String,
        /// The value to keep, or the name of the school whose value to keep.
        keep: String,
        #[arg(long)]
        row: Option<String>,
    },
    /// Record a review, add signatures, list reviews.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Who changed what and when.
    History {
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// What changed since a review was signed, and who changed it.
    Changes {
        url: String,
        /// The review (its id or the start of it, or its date).
        #[arg(long)]
        since: String,
        #[arg(long)]
        json: bool,
    },
    /// Import an action plan file, or a documents file of any kinds (see
    /// the README for both formats), and print the new URLs.
    Import {
        file: PathBuf,
        /// List the documents in this existing partnership document
        /// instead of creating the one the file describes.
        #[arg(long)]
        partnership: Option<String>,
    },
    /// Write a comment to a partnership your school views (a local
    /// authority's): it goes into your own comments document for that
    /// partnership, which only its schools read and nobody else changes.
    Comment {
        /// The partnership, by its name on the relay.
        partnership: String,
        /// The comment.
        text: String,
        /// The officer writing it (by default the person named with --as).
        #[arg(long)]
        officer: Option<String>,
        /// Its date (by default today): a date such as 14 March 2025.
        #[arg(long)]
        date: Option<String>,
        /// The plan or report it concerns (by default the partnership as a whole).
        #[arg(long)]
        concerning: Option<String>,
    },
    /// Export a document as markdown, html (print-ready), csv, or json (the import format; action plans).
    Export {
        url: String,
        #[arg(long, default_value = "markdown")]
        format: String,
        /// Write to this file instead of the terminal.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum RowCommand {
    /// Add a row to a table, with FIELD=VALUE pairs; prints its id.
    Add {
        url: String,
        /// The table: areas, actions, impact, objectives, schools, documents, aims, needs, results …
        table: String,
        /// Field values, such as what="Joint learning walks" status=amber reviewDate="Spring 1".
        values: Vec<String>,
        /// The row it goes in, for a table inside rows (an area, for actions and impact).
        #[arg(long = "in")]
        within: Option<String>,
        #[command(flatten)]
        place: PlaceArgs,
    },
    /// Move a row among its neighbours.
    Move {
        url: String,
        row: String,
        #[command(flatten)]
        place: PlaceArgs,
    },
    /// Remove a row. It can be restored; an edit a partner made meanwhile is kept.
    Remove { url: String, row: String },
    /// Bring back a removed row, with every edit made to it.
    Restore { url: String, row: String },
}

#[derive(Args)]
pub struct PlaceArgs {
    /// Put it just before this row.
    #[arg(long, group = "place")]
    before: Option<String>,
    /// Put it just after this row.
    #[arg(long, group = "place")]
    after: Option<String>,
    /// Put it first.
    #[arg(long, group = "place")]
    first: bool,
    /// Put it last (the default when adding).
    #[arg(long, group = "place")]
    last: bool,
}

impl PlaceArgs {
    pub(super) fn placement(&self) -> Option<Placement> {
        match (&self.before, &self.after, self.first, self.last) {
            (Some(id), ..) => Some(Placement::Before(id.clone())),
            (_, Some(id), ..) => Some(Placement::After(id.clone())),
            (_, _, true, _) => Some(Placement::Start),
            (_, _, _, true) => Some(Placement::End),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Set an action's status: red, amber, green or done.
    Status {
        url: String,
        action: String,
        status: String,
    },
}

#[derive(Subcommand)]
pub enum PartnershipCommand {
    /// Add a member school; prints its row id.
    AddSchool(NewSchool),
    /// Fetch, at the next sync, every document the partnership lists: how a
    /// school that joins later gets everything from that one document.
    OpenAll { url: String },
}

// A member school as `partnership add-school` gives it. (A plain comment:
// a doc comment here would replace the subcommand's help.)
#[derive(Args)]
pub struct NewSchool {
    pub url: String,
    #[arg(long)]
    pub name: String,
    /// nursery, infant, junior, primary, secondary or special.
    #[arg(long)]
    pub phase: Option<String>,
    #[arg(long)]
    pub headteacher: Option<String>,
    /// The chair of governors.
    #[arg(long)]
    pub chair: Option<String>,
    /// When it joined: a date or a term.
    #[arg(long)]
    pub joined: Option<String>,
}

impl NewSchool {
    /// The row's values, as `rows::add_row` takes them: only those given.
    pub(super) fn values(&self) -> Vec<(String, String)> {
        [
            ("name", Some(&self.name)),
            ("phase", self.phase.as_ref()),
            ("headteacher", self.headteacher.as_ref()),
            ("chair", self.chair.as_ref()),
            ("joined", self.joined.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.clone())))
        .collect()
    }
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Record a review of the document as it is now, with this school's signatures.
    Record {
        url: String,
        /// When it was reviewed: a date or a term.
        #[arg(long)]
        date: String,
        /// Who reviewed it, such as "the HTs and members of the JCC".
        #[arg(long)]
        by: String,
        #[arg(long)]
        note: Option<String>,
        /// A signature of this school's, signed now with its key, as "name; role" (role: headteacher or chair of governors; leave the name empty if unknown; "name; role; school" works too, naming this school). Repeat for each signer.
        #[arg(long = "sign")]
        signatures: Vec<String>,
    },
    /// Sign a review for this school, now: the signer signs the document as it is now.
    #[command(
        long_about = "Sign a review for this school. The signature is sealed with this school's signing key and carries the time it is made (not the review's date), so partners can check which school gave it. A school signs only for itself, and a person signs a review once. To copy a signature given on paper, add --date with the date on the paper: it is recorded as transcribed, which partners see is not proved."
    )]
    Sign {
        url: String,
        review: String,
        /// The signer's name (leave out if it is not known).
        #[arg(long)]
        name: Option<String>,
        /// headteacher or chair of governors.
        #[arg(long)]
        role: String,
        /// This school (the default); no other school can be named.
        #[arg(long)]
        school: Option<String>,
        /// Only for a signature given on paper: the date on the paper. The signature is then recorded as transcribed from paper, not signed here.
        #[arg(long)]
        date: Option<String>,
    },
    /// Withdraw a review recorded by mistake: it stays in the document and its history, marked with who withdrew it and when.
    Withdraw {
        url: String,
        review: String,
        /// Why, in a few words ("recorded twice").
        #[arg(long)]
        reason: Option<String>,
    },
    /// Every review, with its signatures and the version each signed.
    List {
        url: String,
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn parse_pairs(values: &[String]) -> Result<Vec<(String, String)>, ClientError> {
    values
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| {
                    ClientError::Other(format!(
                        "“{pair}” is not FIELD=VALUE: write it as status=amber or what=\"Joint learning walks\"."
                    ))
                })
        })
        .collect()
}

/// "name; role" or "name; role; school", the name may be empty.
pub(super) fn parse_signature(input: &str) -> Result<SignatureInput, ClientError> {
    let parts: Vec<&str> = input.split(';').map(str::trim).collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(ClientError::Other(format!(
            "“{input}” is not a signature: write it as \"name; role\", such as \"Carole Clemens; headteacher\" (leave the name empty if it is not known)."
        )));
    }
    Ok(SignatureInput {
        name: Some(parts[0].to_string()).filter(|n| !n.is_empty()),
        role: parts[1].to_string(),
        school: parts.get(2).map(|s| s.to_string()).unwrap_or_default(),
        date: None,
    })
}
