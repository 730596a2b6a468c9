//! The command line for the typed partnership documents: create any of
//! the nine kinds, add, edit, move and remove rows, set a status, resolve
//! a conflict, record reviews with signatures, read any document as
//! tables, its history and what changed since a review, import and
//! export. Every edit goes through `Store::change` and the model in
//! `partnerplan_model`; this file only parses, calls and prints.

use std::path::{Path, PathBuf};

use automerge::{ActorId, AutoCommit};
use clap::{Args, Subcommand};
use partnerplan_model::diff::{Difference, diff};
use partnerplan_model::doc;
use partnerplan_model::history::{self, HistoryEntry};
use partnerplan_model::plan_file::{self, PlanFile};
use partnerplan_model::records::{self, Review, SignatureInput, describe_signature};
use partnerplan_model::render;
use partnerplan_model::review;
use partnerplan_model::rows::{self, Placement};
use partnerplan_model::schema::Kind;
use partnerplan_model::text::{short, shorten};
use partnerplan_model::when::{format_time, when_text};
use partnerplan_model::{Author, DocView, ModelError, RowView, TableView};
use partnerplan_model::{create, edit, locate, read};
use partnerplan_sync::DocumentId;
use serde_json::json;

use crate::documents;
use crate::error::ClientError;
use crate::school::School;

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
    /// Import an action plan file (see the README for its format) and print the new URLs.
    Import {
        file: PathBuf,
        /// List the plan in this existing partnership document instead of
        /// creating the one the file describes.
        #[arg(long)]
        partnership: Option<String>,
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
    fn placement(&self) -> Option<Placement> {
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
    AddSchool {
        url: String,
        #[arg(long)]
        name: String,
        /// nursery, infant, junior, primary, secondary or special.
        #[arg(long)]
        phase: Option<String>,
        #[arg(long)]
        headteacher: Option<String>,
        /// The chair of governors.
        #[arg(long)]
        chair: Option<String>,
        /// When it joined: a date or a term.
        #[arg(long)]
        joined: Option<String>,
    },
    /// Fetch, at the next sync, every document the partnership lists: how a
    /// school that joins later gets everything from that one document.
    OpenAll { url: String },
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Record a review of the document as it is now, with signatures.
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
        /// A signature, as "name; role; school" (role: headteacher or chair of governors; leave the name empty if unknown). Repeat for each signer.
        #[arg(long = "sign")]
        signatures: Vec<String>,
    },
    /// Add a signature to a review: the signer signs the document as it is now.
    Sign {
        url: String,
        review: String,
        /// The signer's name (leave out if it is not known).
        #[arg(long)]
        name: Option<String>,
        /// headteacher or chair of governors.
        #[arg(long)]
        role: String,
        #[arg(long)]
        school: String,
        /// When they signed (default: today).
        #[arg(long)]
        date: Option<String>,
    },
    /// Every review, with its signatures and the version each signed.
    List {
        url: String,
        #[arg(long)]
        json: bool,
    },
}

fn model(error: ModelError) -> ClientError {
    ClientError::Other(error.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Who is editing: this school, and the person named with `--as` (kept
/// for later commands) or named before.
fn author(school: &mut School, person: Option<&str>) -> Result<Author, ClientError> {
    let person = match person.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => {
            school.store.set_meta("person", p)?;
            Some(p.to_string())
        }
        None => school.store.meta("person")?,
    };
    Ok(Author {
        school: school.name()?.unwrap_or_default(),
        person,
        time: now(),
    })
}

/// The Automerge actor for this school's edits as `who`.
fn actor(school: &School, who: &Author) -> Result<ActorId, ClientError> {
    Ok(crate::school::person_actor(
        &school.actor()?,
        who.person.as_deref(),
    ))
}

/// Makes one change to a typed document as this school.
fn change<T>(
    school: &mut School,
    who: &Author,
    url: &str,
    message: String,
    edit: impl FnOnce(&mut AutoCommit) -> Result<T, ModelError>,
) -> Result<(DocumentId, T), ClientError> {
    let (id, existing) = documents::load(school, url)?;
    doc::kind_of(&existing).map_err(model)?;
    let actor = actor(school, who)?;
    let result = school
        .store
        .change(&id, &actor, Some(message), |doc| edit(doc).map_err(model))?;
    Ok((id, result))
}

fn read(school: &School, url: &str) -> Result<(DocumentId, AutoCommit, DocView), ClientError> {
    let (id, doc) = documents::load(school, url)?;
    let view = read::read(&doc).map_err(model)?;
    Ok((id, doc, view))
}

fn print_json(value: serde_json::Value) {
    println!("{value}");
}

pub fn run(dir: &Path, person: Option<&str>, command: ModelCommand) -> Result<(), ClientError> {
    let mut school = School::open(dir)?;
    let who = author(&mut school, person)?;
    match command {
        ModelCommand::New {
            kind,
            title,
            partnership,
        } => {
            let kind = Kind::parse(&kind).map_err(|e| ClientError::Other(format!("{e}.")))?;
            let url = new_document(&mut school, &who, kind, &title, partnership.as_deref())?;
            println!("{url}");
            if let Some(p) = partnership {
                eprintln!("Listed in the partnership {p}.");
            }
        }
        ModelCommand::View {
            url,
            review,
            removed,
            json,
        } => {
            let (id, mut doc, mut view) = read(&school, &url)?;
            let mut heading = None;
            if let Some(r) = review {
                let (_, found) = records::find(&doc, &r).map_err(model)?;
                view = found.signed_view(doc.document()).map_err(model)?.1;
                heading = Some(format!(
                    "As signed at the review of {} by {} (version {}). Later edits are not shown.",
                    when_text(&found.date),
                    found.by,
                    render::version(&found.heads)
                ));
            }
            if json {
                let mut value = view.to_json();
                value["url"] = json!(id.url());
                print_json(value);
            } else {
                if let Some(h) = heading {
                    println!("{h}\n");
                }
                print!("{}", terminal(&id, &view, removed));
            }
        }
        ModelCommand::Put {
            url,
            field,
            value,
            row,
        } => {
            let message = match &row {
                Some(r) => format!("set {field} of row {} to {value}", short(r)),
                None => format!("set {field} to {value}"),
            };
            change(&mut school, &who, &url, message, |doc| {
                edit::set_field(doc, row.as_deref(), &field, &value, &who)
            })?;
            println!("Saved {field}.");
        }
        ModelCommand::Type {
            url,
            field,
            row,
            how,
        } => {
            let edit = how.edit()?;
            let (_, now) = change(
                &mut school,
                &who,
                &url,
                format!("typed in {field}"),
                |doc| edit::edit_prose(doc, row.as_deref(), &field, &edit, &who),
            )?;
            println!("Saved {field}: {now}");
        }
        ModelCommand::Row(command) => row_command(&mut school, &who, command)?,
        ModelCommand::Plan(PlanCommand::Status {
            url,
            action,
            status,
        }) => {
            {
                let (_, doc) = documents::load(&school, &url)?;
                if doc::kind_of(&doc).map_err(model)?.0 != Kind::ActionPlan {
                    return Err(model(ModelError::WrongKind {
                        found: doc::kind_of(&doc).map_err(model)?.0.label(),
                        expected: Kind::ActionPlan.label(),
                        hint: "give the URL of the action plan instead.".into(),
                    }));
                }
                let loc = locate::find_row(&doc, Kind::ActionPlan, &action).map_err(model)?;
                if loc.table.key != "actions" {
                    return Err(ClientError::Other(format!(
                        "“{action}” is an {}, not an action. `partnerplan view {url}` shows each action's id.",
                        loc.table.row
                    )));
                }
            }
            change(
                &mut school,
                &who,
                &url,
                format!("set status of action {} to {status}", short(&action)),
                |doc| edit::set_field(doc, Some(&action), "status", &status, &who),
            )?;
            println!("Saved the status.");
        }
        ModelCommand::Partnership(PartnershipCommand::AddSchool {
            url,
            name,
            phase,
            headteacher,
            chair,
            joined,
        }) => {
            let values: Vec<(String, String)> = [
                ("name", Some(name.clone())),
                ("phase", phase),
                ("headteacher", headteacher),
                ("chair", chair),
                ("joined", joined),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            let (_, id) = change(
                &mut school,
                &who,
                &url,
                format!("added school {name}"),
                |doc| {
                    doc::expect_kind(doc, Kind::Partnership)?;
                    rows::add_row(doc, "schools", None, &values, &Placement::End, &who)
                },
            )?;
            println!("{}", short(&id));
        }
        ModelCommand::Partnership(PartnershipCommand::OpenAll { url }) => {
            let (_, _, view) = read(&school, &url)?;
            if view.kind != Kind::Partnership {
                return Err(ClientError::Other(format!(
                    "{url} is a {}, not a partnership: give the partnership document's URL.",
                    view.kind.label().to_lowercase()
                )));
            }
            let mut count = 0;
            for row in view.live("documents") {
                let Some(link) = row.field("url").map(|f| f.text.clone()) else {
                    continue;
                };
                if link.is_empty() {
                    continue;
                }
                let id = documents::open(&mut school, &link)?;
                println!("{}  {}", id.url(), row.label());
                count += 1;
            }
            println!(
                "{count} document{} will be fetched at the next sync.",
                if count == 1 { "" } else { "s" }
            );
        }
        ModelCommand::Conflicts { url, json } => {
            let (id, _, view) = read(&school, &url)?;
            let conflicts = view.conflicts();
            if json {
                print_json(json!({"url": id.url(), "conflicts": conflicts}));
            } else if conflicts.is_empty() {
                println!("No conflicts: every field holds one value.");
            } else {
                for c in conflicts {
                    println!("{}", describe_conflict(&c));
                }
            }
        }
        ModelCommand::Resolve {
            url,
            field,
            keep,
            row,
        } => {
            let (_, kept) = change(
                &mut school,
                &who,
                &url,
                format!("resolved {field} keeping {keep}"),
                |doc| edit::resolve(doc, row.as_deref(), &field, &keep, &who),
            )?;
            println!("Resolved {field}: it now holds “{kept}”.");
        }
        ModelCommand::Review(command) => review_command(&mut school, &who, command)?,
        ModelCommand::History { url, json } => {
            let (id, mut doc) = documents::load(&school, &url)?;
            let entries = history::history(doc.document(), &[]);
            if json {
                print_json(json!({"url": id.url(), "history": entries}));
            } else {
                print_history(&entries);
            }
        }
        ModelCommand::Changes { url, since, json } => {
            let (id, mut doc, now_view) = read(&school, &url)?;
            let (_, found) = records::find(&doc, &since).map_err(model)?;
            let (heads, then) = found.signed_view(doc.document()).map_err(model)?;
            let differences = diff(&then, &now_view);
            let entries = history::history(doc.document(), &heads);
            if json {
                print_json(json!({
                    "url": id.url(),
                    "review": found,
                    "differences": differences,
                    "history": entries,
                }));
            } else {
                print_changes(&found, &differences, &entries);
            }
        }
        ModelCommand::Import { file, partnership } => {
            import(&mut school, &who, &file, partnership.as_deref())?
        }
        ModelCommand::Export {
            url,
            format,
            output,
        } => {
            let (_, _, view) = read(&school, &url)?;
            if view.schema_version > partnerplan_model::SCHEMA_VERSION {
                eprintln!(
                    "Note: this document was written by a newer partnerplan (schema version {}; this one knows up to {}), so the export may leave out what that version added. Update partnerplan for a complete export.",
                    view.schema_version,
                    partnerplan_model::SCHEMA_VERSION
                );
            }
            let text = match format.to_lowercase().as_str() {
                "markdown" | "md" => render::markdown(&view),
                "html" => render::html(&view),
                "csv" => render::csv(&view),
                "json" => plan_file::export(&view).map_err(model)?.to_json() + "\n",
                other => {
                    return Err(ClientError::Other(format!(
                        "“{other}” is not an export format: use markdown, html, csv or json."
                    )));
                }
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| {
                        ClientError::Other(format!(
                            "could not write {}: {e}. Check the folder exists and can be written to.",
                            path.display()
                        ))
                    })?;
                    println!("Wrote {}.", path.display());
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

fn new_document(
    school: &mut School,
    who: &Author,
    kind: Kind,
    title: &str,
    partnership: Option<&str>,
) -> Result<String, ClientError> {
    let partnership = match partnership {
        Some(p) => {
            let (pid, doc) = documents::load(school, p)?;
            let (found, _) = doc::kind_of(&doc).map_err(model)?;
            if found != Kind::Partnership {
                return Err(ClientError::Other(format!(
                    "{} is a {}, not a partnership: give the partnership document's URL to --partnership.",
                    pid.url(),
                    found.label().to_lowercase()
                )));
            }
            Some(pid)
        }
        None => None,
    };
    let id = DocumentId::random();
    let actor = actor(school, who)?;
    let partnership_url = partnership.map(|p| p.url());
    school.store.change(
        &id,
        &actor,
        Some(format!("created {}", kind.label().to_lowercase())),
        |doc| create::create(doc, kind, title, partnership_url.as_deref(), who).map_err(model),
    )?;
    if let Some(pid) = partnership {
        list_in_partnership(school, who, &pid, kind, title, &id)?;
    }
    Ok(id.url())
}

fn list_in_partnership(
    school: &mut School,
    who: &Author,
    partnership: &DocumentId,
    kind: Kind,
    title: &str,
    id: &DocumentId,
) -> Result<(), ClientError> {
    let values = vec![
        ("title".to_string(), title.to_string()),
        ("kind".to_string(), kind.key().to_string()),
        ("url".to_string(), id.url()),
    ];
    let actor = actor(school, who)?;
    school.store.change(
        partnership,
        &actor,
        Some(format!("listed {}", kind.label().to_lowercase())),
        |doc| {
            rows::add_row(doc, "documents", None, &values, &Placement::End, who)
                .map(|_| ())
                .map_err(model)
        },
    )
}

fn parse_pairs(values: &[String]) -> Result<Vec<(String, String)>, ClientError> {
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

fn row_command(school: &mut School, who: &Author, command: RowCommand) -> Result<(), ClientError> {
    match command {
        RowCommand::Add {
            url,
            table,
            values,
            within,
            place,
        } => {
            let pairs = parse_pairs(&values)?;
            let placement = place.placement().unwrap_or(Placement::End);
            let (_, id) = change(
                school,
                who,
                &url,
                format!("added a row to {table}"),
                |doc| rows::add_row(doc, &table, within.as_deref(), &pairs, &placement, who),
            )?;
            println!("{}", short(&id));
        }
        RowCommand::Move { url, row, place } => {
            let placement = place.placement().ok_or_else(|| {
                ClientError::Other(
                    "say where to move it: --before <row>, --after <row>, --first or --last."
                        .into(),
                )
            })?;
            change(
                school,
                who,
                &url,
                format!("moved row {}", short(&row)),
                |doc| rows::move_row(doc, &row, &placement, who),
            )?;
            println!("Moved.");
        }
        RowCommand::Remove { url, row } => {
            let (_, label) = change(
                school,
                who,
                &url,
                format!("removed row {}", short(&row)),
                |doc| rows::remove_row(doc, &row, who),
            )?;
            println!(
                "Removed “{label}”. `partnerplan row restore {url} {}` brings it back.",
                short(&row)
            );
        }
        RowCommand::Restore { url, row } => {
            let (_, label) = change(
                school,
                who,
                &url,
                format!("restored row {}", short(&row)),
                |doc| rows::restore_row(doc, &row, who),
            )?;
            println!("Restored “{label}”.");
        }
    }
    Ok(())
}

/// "name; role; school", the name may be empty.
fn parse_signature(input: &str) -> Result<SignatureInput, ClientError> {
    let parts: Vec<&str> = input.split(';').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(ClientError::Other(format!(
            "“{input}” is not a signature: write it as \"name; role; school\", such as \"Carole Clemens; headteacher; Bank Road Infant and Nursery School\" (leave the name empty if it is not known)."
        )));
    }
    Ok(SignatureInput {
        name: Some(parts[0].to_string()).filter(|n| !n.is_empty()),
        role: parts[1].to_string(),
        school: parts[2].to_string(),
        date: None,
    })
}

fn review_command(
    school: &mut School,
    who: &Author,
    command: ReviewCommand,
) -> Result<(), ClientError> {
    match command {
        ReviewCommand::Record {
            url,
            date,
            by,
            note,
            signatures,
        } => {
            let signatures = signatures
                .iter()
                .map(|s| parse_signature(s))
                .collect::<Result<Vec<_>, _>>()?;
            let (_, id) = change(
                school,
                who,
                &url,
                format!("recorded the review of {date}"),
                |doc| review::record(doc, &date, &by, note.as_deref(), &signatures, who),
            )?;
            println!("{}", short(&id));
        }
        ReviewCommand::Sign {
            url,
            review: which,
            name,
            role,
            school: for_school,
            date,
        } => {
            let today = partnerplan_model::when::date_from_unix(now()).to_string();
            let input = SignatureInput {
                name,
                role,
                school: for_school,
                date,
            };
            let (_, signature) =
                change(school, who, &url, format!("signed review {which}"), |doc| {
                    review::sign(doc, &which, &input, &today, who)
                })?;
            println!(
                "Signed by {}, for version {}.",
                describe_signature(&signature),
                render::version(&signature.heads)
            );
        }
        ReviewCommand::List { url, json } => {
            let (id, _, view) = read(school, &url)?;
            if json {
                print_json(json!({"url": id.url(), "reviews": view.reviews}));
            } else if view.reviews.is_empty() {
                println!(
                    "No reviews yet. Record one with `partnerplan review record {url} --date … --by …`."
                );
            } else {
                for r in &view.reviews {
                    print_review(r);
                }
            }
        }
    }
    Ok(())
}

fn import(
    school: &mut School,
    who: &Author,
    file: &Path,
    partnership: Option<&str>,
) -> Result<(), ClientError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ClientError::Other(format!(
            "could not read {}: {e}. Check the path.",
            file.display()
        ))
    })?;
    let plan = PlanFile::from_json(&text).map_err(|e| {
        ClientError::Other(format!(
            "{}: {} Nothing was imported.",
            file.display(),
            sentence(&e.to_string())
        ))
    })?;
    let mut existing = match partnership {
        Some(url) => Some(partnership_to_list_in(school, url)?),
        None => None,
    };
    rehearse_import(&plan, existing.as_mut().map(|(_, doc)| doc), who).map_err(|e| {
        ClientError::Other(format!(
            "{}: {} Nothing was imported.",
            file.display(),
            sentence(&e.to_string())
        ))
    })?;
    let actor = actor(school, who)?;
    // The partnership first, so the plan can name it.
    let partnership_id = match (existing, &plan.partnership) {
        (Some((id, _)), _) => Some(id),
        (None, Some(p)) => {
            let id = DocumentId::random();
            school.store.change(
                &id,
                &actor,
                Some("imported the partnership".into()),
                |doc| plan_file::import_partnership(doc, p, who).map_err(model),
            )?;
            Some(id)
        }
        (None, None) => None,
    };
    let id = DocumentId::random();
    let partnership_url = partnership_id.map(|p| p.url());
    school.store.change(
        &id,
        &actor,
        Some("imported the action plan".into()),
        |doc| plan_file::import_content(doc, &plan, partnership_url.as_deref(), who).map_err(model),
    )?;
    // A second change, so the reviews sign the version just imported.
    if !plan.reviews.is_empty() {
        school
            .store
            .change(&id, &actor, Some("imported the reviews".into()), |doc| {
                plan_file::import_reviews(doc, &plan, who)
                    .map(|_| ())
                    .map_err(model)
            })?;
    }
    if let Some(pid) = partnership_id {
        list_in_partnership(school, who, &pid, Kind::ActionPlan, &plan.title, &id)?;
        if partnership.is_none() {
            println!("Partnership: {}", pid.url());
        }
    }
    println!("Action plan: {}", id.url());
    Ok(())
}

/// Ends a message with a full stop if it has none.
fn sentence(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with(['.', '!', '?']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

/// The partnership document named by `--partnership`, if it is one this
/// version can list a document in.
fn partnership_to_list_in(
    school: &School,
    url: &str,
) -> Result<(DocumentId, AutoCommit), ClientError> {
    let (id, doc) = documents::load(school, url)?;
    let (kind, version) = doc::kind_of(&doc).map_err(|e| {
        ClientError::Other(format!(
            "{url} cannot take the plan (--partnership): {} Nothing was imported.",
            sentence(&e.to_string())
        ))
    })?;
    if kind != Kind::Partnership {
        return Err(ClientError::Other(format!(
            "{url} is a {}, not a partnership: give the partnership document's URL to --partnership. Nothing was imported.",
            kind.label().to_lowercase()
        )));
    }
    if version > partnerplan_model::SCHEMA_VERSION {
        return Err(ClientError::Other(format!(
            "the partnership given to --partnership: {} Nothing was imported.",
            sentence(&ModelError::TooNew { found: version }.to_string())
        )));
    }
    Ok((id, doc))
}

/// Makes every document the import will write in memory first, so a
/// problem `PlanFile::check` did not foresee stops the import before
/// anything is on disk, rather than leaving half of it written.
fn rehearse_import(
    plan: &PlanFile,
    partnership: Option<&mut AutoCommit>,
    who: &Author,
) -> Result<(), ModelError> {
    let placeholder = DocumentId::random().url();
    match partnership {
        // The caller's loaded copy, which is never saved.
        Some(listed) => {
            rows::add_row(
                listed,
                "documents",
                None,
                &[
                    ("title".into(), plan.title.clone()),
                    ("kind".into(), Kind::ActionPlan.key().into()),
                    ("url".into(), placeholder.clone()),
                ],
                &Placement::End,
                who,
            )?;
        }
        None => {
            if let Some(p) = &plan.partnership {
                plan_file::import_partnership(&mut AutoCommit::new(), p, who)?;
            }
        }
    }
    let mut trial = AutoCommit::new();
    plan_file::import_content(&mut trial, plan, Some(&placeholder), who)?;
    trial.commit();
    plan_file::import_reviews(&mut trial, plan, who)?;
    Ok(())
}

// ---------------------------------------------------------------------
// Printing

fn describe_conflict(c: &partnerplan_model::Conflict) -> String {
    let values: Vec<String> = c
        .values
        .iter()
        .map(|v| format!("“{}” set by {}", v.text, v.who()))
        .collect();
    let how = match &c.row {
        Some(row) => format!(
            "`partnerplan resolve <url> {} <value or school> --row {}`",
            c.field,
            short(row)
        ),
        None => format!("`partnerplan resolve <url> {} <value or school>`", c.field),
    };
    format!(
        "Conflict in {}: {}. Choose one with {how}.",
        c.place,
        values.join(" and ")
    )
}

/// Lays out rows as aligned columns, each at most `max` wide.
fn columns(headers: &[String], rows: &[Vec<String>], indent: &str) -> String {
    const MAX: usize = 44;
    let count = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| shorten(c, MAX)).collect())
        .collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(count) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut out = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers);
    out.push_str(&line(
        &widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>(),
    ));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

fn row_state(row: &RowView) -> String {
    match (&row.removed, row.edited_after_removal) {
        (Some(r), true) => format!(
            "REMOVED by {} but edited by a partner at the same time: `row restore` brings it back",
            r.by
        ),
        (Some(r), false) => format!("removed by {}", r.by),
        _ => String::new(),
    }
}

fn terminal_table(table: &TableView, show_removed: bool, indent: &str, out: &mut String) {
    let rows: Vec<&RowView> = table
        .rows
        .iter()
        .filter(|r| show_removed || r.removed.is_none() || r.edited_after_removal)
        .collect();
    out.push_str(&format!("{indent}{}", table.label));
    if rows.is_empty() {
        out.push_str(": none yet\n");
        return;
    }
    out.push('\n');
    if !table.table.tables.is_empty() {
        for row in rows {
            out.push_str(&format!(
                "\n{indent}  ■ {}  [{} {}]{}\n",
                row.label(),
                table.row,
                short(&row.id),
                match row_state(row) {
                    s if s.is_empty() => String::new(),
                    s => format!("  ({s})"),
                }
            ));
            for field in row.fields.iter().skip(1) {
                if field.text.is_empty() && field.conflict.is_empty() {
                    continue;
                }
                let value = render::cell(field).replace('\n', &format!("\n{indent}      "));
                out.push_str(&format!("{indent}    {}: {value}\n", field.label));
            }
            for inner in &row.tables {
                terminal_table(inner, show_removed, &format!("{indent}    "), out);
            }
        }
        return;
    }
    let mut headers = vec!["Id".to_string()];
    headers.extend(table.table.fields.iter().map(|f| f.label.to_string()));
    let show_state = rows.iter().any(|r| r.removed.is_some());
    if show_state {
        headers.push("State".into());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![short(&row.id).to_string()];
            cells.extend(row.fields.iter().map(render::cell));
            if show_state {
                cells.push(row_state(row));
            }
            cells
        })
        .collect();
    out.push_str(&columns(&headers, &cells, &format!("{indent}  ")));
}

/// The document as a person reads it in a terminal.
pub fn terminal(id: &DocumentId, view: &DocView, show_removed: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}\n", view.title));
    out.push_str(&format!("{} · {}\n\n", view.kind.label(), id.url()));
    for field in &view.fields {
        if field.text.is_empty() && field.conflict.is_empty() {
            continue;
        }
        let value = render::cell(field).replace('\n', "\n  ");
        if value.contains('\n') || value.chars().count() > 60 {
            out.push_str(&format!("{}:\n  {value}\n", field.label));
        } else {
            out.push_str(&format!("{}: {value}\n", field.label));
        }
    }
    for table in &view.tables {
        out.push('\n');
        terminal_table(table, show_removed, "", &mut out);
    }
    if !view.reviews.is_empty() {
        out.push_str("\nReviews\n");
        for r in &view.reviews {
            out.push_str(&format!(
                "  {}  {} · version {} · {} signature{}\n",
                short(&r.id),
                render::review_heading(r),
                render::version(&r.heads),
                r.signatures.len(),
                if r.signatures.len() == 1 { "" } else { "s" }
            ));
        }
    }
    let conflicts = view.conflicts();
    if !conflicts.is_empty() {
        out.push_str("\nConflicts\n");
        for c in &conflicts {
            out.push_str(&format!("  {}\n", describe_conflict(c)));
        }
    }
    let removed = view.removed_while_edited();
    if !removed.is_empty() {
        out.push_str("\nRemoved while a partner was editing them\n");
        for (place, row) in removed {
            out.push_str(&format!(
                "  {place} [{}]: restore it with `partnerplan row restore <url> {}` to keep working on it.\n",
                short(&row.id),
                short(&row.id)
            ));
        }
    }
    out
}

fn print_review(r: &Review) {
    println!("{}  {}", short(&r.id), render::review_heading(r));
    if let Some(note) = &r.note {
        println!("    {note}");
    }
    println!(
        "    Version reviewed: {} · {}",
        render::version(&r.heads),
        render::recorded(r)
    );
    if r.signatures.is_empty() {
        println!("    Not signed yet.");
    }
    for s in &r.signatures {
        println!(
            "    Signed: {} on {} (version {})",
            describe_signature(s),
            when_text(&s.date),
            render::version(&s.heads)
        );
    }
}

fn print_history(entries: &[HistoryEntry]) {
    if entries.is_empty() {
        println!("No changes yet.");
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                format_time(e.time),
                e.who(),
                e.message
                    .clone()
                    .unwrap_or_else(|| "(no description)".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        columns(&["When".into(), "Who".into(), "What".into()], &rows, "")
    );
}

fn print_changes(r: &Review, differences: &[Difference], entries: &[HistoryEntry]) {
    println!(
        "Since the review of {} by {} (version {}):",
        when_text(&r.date),
        r.by,
        render::version(&r.heads)
    );
    if differences.is_empty() {
        println!("  Nothing has changed: the document reads as it did when it was signed.");
    }
    for d in differences {
        println!("  {}", d.describe());
    }
    if !entries.is_empty() {
        println!("\nChanges made since, by whom:");
        print_history(entries);
    }
}
