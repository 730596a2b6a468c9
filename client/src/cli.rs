//! The `partnerplan` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::documents;
use crate::status;
use crate::sync::{self, SyncOptions};
use crate::{ClientError, School};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "partnerplan",
    version,
    about = "Your school's copy of the partnership's shared documents, synced through the lead school's relay.",
    long_about = "Your school's copy of the partnership's shared documents. Every edit is saved on this computer first, so it never waits for the network and survives a crash; `partnerplan sync` sends it to the partnership's relay and brings back what partner schools wrote."
)]
struct Cli {
    /// The school's data directory (its SQLite file lives there).
    #[arg(
        long,
        global = true,
        env = "PARTNERPLAN_DATA",
        default_value = "./partnerplan-data"
    )]
    data: PathBuf,
    /// Who is making the change (a person's name), recorded with this
    /// school in the document's history; remembered for later commands.
    #[arg(long = "as", global = true, env = "PARTNERPLAN_PERSON")]
    person: Option<String>,
    /// What to do; with none, the app starts (so a double-click works).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the school's app: your documents in a web page on this
    /// computer, shared with partners whenever the line is up.
    App {
        /// Where the app listens. Keep it on 127.0.0.1 (this computer only).
        #[arg(long, default_value_t = std::net::SocketAddr::from(([127, 0, 0, 1], crate::app::DEFAULT_PORT)))]
        listen: std::net::SocketAddr,
        /// Do not open the web browser.
        #[arg(long)]
        no_browser: bool,
        /// Ask for the app's password even on this computer's own address
        /// (it is always asked when --listen is beyond this computer).
        #[arg(long)]
        require_password: bool,
    },
    /// Set the password the app asks for when it is served to the
    /// school's network (read from the standard input).
    AppPassword,
    /// Set up this school's data directory.
    Init {
        /// The school's name, as partners know it.
        #[arg(long)]
        school: String,
        /// The relay's address, such as ws://lead-school.example:7171.
        #[arg(long)]
        relay: Option<String>,
    },
    /// Use the invite the lead school gave you: the relay address with
    /// this school's secret token. Sets up the data directory if needed.
    Join {
        /// The invite line, such as wss://relay.example/?partnership=…&token=pp_…
        invite: String,
        /// The school's name, when this data directory is new (default: the
        /// name the invite carries).
        #[arg(long)]
        school: Option<String>,
        /// Trust this certificate authority (PEM) for a relay with a
        /// self-signed certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Change the relay this school syncs through.
    SetRelay { url: String },
    /// Create a new shared document and print its URL.
    Create {
        /// The document's title.
        #[arg(long, default_value = "Untitled")]
        title: String,
    },
    /// Fetch a document a partner shared, by its automerge: URL, at the next sync.
    Open { url: String },
    /// List the documents this school holds.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a document, with any field two schools set at once.
    Show {
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a field to a value (JSON, or plain text).
    Set {
        url: String,
        /// The field, such as status or actions.0.status.
        field: String,
        value: String,
    },
    /// Edit a text field in place, keeping what partners typed.
    Edit {
        url: String,
        field: String,
        #[command(flatten)]
        how: documents::TextEditArgs,
    },
    /// Sync with the relay: once until everything is in sync, or with --watch until stopped.
    Sync {
        /// Keep syncing in the foreground, reconnecting by itself.
        #[arg(long)]
        watch: bool,
        /// For a single sync: give up after this many seconds without
        /// progress (documents that keep arriving over a slow line keep
        /// it going). A relay that cannot be reached at all is reported
        /// after a few seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Whether sync is connected, what waits to sync, and when it last succeeded.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Start a relay and two schools' apps on this machine, with the seed
    /// action plan, to edit in two tabs and watch edits merge.
    Demo {
        /// Do not open the web browser.
        #[arg(long)]
        no_browser: bool,
    },
    #[command(flatten)]
    Model(crate::plan::ModelCommand),
}

/// The whole program; `main.rs` only calls this, so the end-to-end tests
/// can build the same binary.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARTNERPLAN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("partnerplan: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), ClientError> {
    let dir = cli.data;
    let command = cli.command.unwrap_or(Command::App {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], crate::app::DEFAULT_PORT)),
        no_browser: false,
        require_password: false,
    });
    match command {
        Command::App {
            listen,
            no_browser,
            require_password,
        } => crate::app::run(crate::app::AppOptions {
            dir: dir.clone(),
            listen,
            open_browser: !no_browser,
            require_password,
        })?,
        Command::AppPassword => {
            eprintln!(
                "Type the new password for the app (at least 10 characters), then press Enter:"
            );
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| ClientError::Other(format!("could not read the password: {e}")))?;
            let hash = crate::app::password::hash(line.trim_end_matches(['\r', '\n']))
                .map_err(ClientError::Other)?;
            let mut store = partnerplan_sync::Store::open(dir.join(crate::school::DATABASE_FILE))?;
            store.set_meta(crate::app::password::META_PASSWORD, &hash)?;
            println!("The app's password is set. Start the app again for it to take effect.");
        }
        Command::Init { school, relay } => {
            School::init(&dir, &school, relay.as_deref())?;
            println!("Set up {school} in {}.", dir.display());
            if relay.is_none() {
                println!(
                    "Set the relay with `partnerplan set-relay ws://host:7171` before syncing."
                );
            }
        }
        Command::Join {
            invite,
            school,
            ca_file,
        } => {
            let mut opened = match School::open(&dir) {
                Ok(opened) => opened,
                Err(ClientError::NotInitialized { .. }) => match school
                    .clone()
                    .or_else(|| crate::school::invite_school(&invite))
                {
                    Some(name) => School::init(&dir, &name, None)?,
                    None => {
                        return Err(ClientError::Other(format!(
                            "{} is not set up yet: add --school \"Your School\" to name this school",
                            dir.display()
                        )));
                    }
                },
                Err(error) => return Err(error),
            };
            let url = opened.join(&invite, ca_file.as_deref())?;
            println!(
                "Joined: this school syncs through {url}. Its token is kept in {}, readable only by you.",
                dir.join(crate::school::TOKEN_FILE).display()
            );
        }
        Command::SetRelay { url } => {
            School::open(&dir)?.set_relay(&url)?;
            println!("This school now syncs through {url}.");
        }
        Command::Create { title } => {
            let mut school = School::open(&dir)?;
            let id = documents::create(&mut school, &title)?;
            println!("{}", id.url());
        }
        Command::Open { url } => {
            let mut school = School::open(&dir)?;
            let id = documents::open(&mut school, &url)?;
            println!("{} will be fetched at the next sync.", id.url());
        }
        Command::List { json } => {
            let school = School::open(&dir)?;
            let docs = documents::list(&school)?;
            if json {
                let list: Vec<_> = docs
                    .iter()
                    .map(|(id, title)| serde_json::json!({"url": id.url(), "title": title}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if docs.is_empty() {
                println!(
                    "This school holds no documents yet. Create one with `partnerplan create --title …`."
                );
            } else {
                for (id, title) in docs {
                    println!(
                        "{}  {}",
                        id.url(),
                        title.unwrap_or_else(|| "(not fetched yet)".into())
                    );
                }
            }
        }
        Command::Show { url, json } => {
            let school = School::open(&dir)?;
            let (id, doc) = documents::load(&school, &url)?;
            let value = documents::to_json(&doc);
            let conflicts = documents::conflicts(&doc);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"url": id.url(), "document": value, "conflicts": conflicts})
                );
            } else {
                println!("{}", id.url());
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
                for conflict in conflicts {
                    let values: Vec<String> =
                        conflict.values.iter().map(|v| v.to_string()).collect();
                    println!(
                        "Conflict: two schools set “{}” at once; it holds {} until someone chooses.",
                        conflict.path,
                        values.join(" and ")
                    );
                }
            }
        }
        Command::Set { url, field, value } => {
            let mut school = School::open(&dir)?;
            documents::set_field(&mut school, &url, &field, &value)?;
            println!("Saved {field}.");
        }
        Command::Edit { url, field, how } => {
            let edit = how.edit()?;
            let mut school = School::open(&dir)?;
            let now = documents::edit_text(&mut school, &url, &field, edit)?;
            println!("Saved {field}: {now}");
        }
        Command::Sync { watch, timeout } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| ClientError::Other(format!("could not start: {e}")))?;
            runtime.block_on(async {
                // A first sync over a slow line says how far it has got.
                let on_receiving: sync::OnReceiving = std::sync::Arc::new(|receiving| {
                    println!("Receiving {} from the relay.", receiving.describe());
                });
                let options = SyncOptions {
                    watch,
                    timeout: Duration::from_secs(timeout),
                    on_receiving: Some(on_receiving),
                };
                if watch {
                    println!("Syncing continuously; press Ctrl-C to stop.");
                }
                let stop = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                let report = sync::run(&dir, options, stop).await?;
                if let Some(refused) = report.refusal() {
                    return Err(refused);
                }
                if !watch {
                    let plural = if report.documents == 1 { "" } else { "s" };
                    if report.held.is_empty() {
                        println!("In sync: {} document{plural} match the relay.", report.documents);
                    } else {
                        println!(
                            "Synced {} document{plural} with the relay, but the relay could not take this school's changes to {} just now: they stay on this computer, and the next sync (or the app, while it runs) sends them.",
                            report.documents,
                            report.held.iter().map(|(id, _)| id.url()).collect::<Vec<_>>().join(", ")
                        );
                    }
                    for warning in &report.warnings {
                        println!("The relay said: {warning}.");
                    }
                    if !report.read_only.is_empty() {
                        println!(
                            "This school may only read {} of them: its own changes to {} stay on this computer.",
                            report.read_only.len(),
                            report.read_only.iter().map(|id| id.url()).collect::<Vec<_>>().join(", ")
                        );
                    }
                    let school = School::open(&dir)?;
                    for id in report.unavailable {
                        if school.store.load_document(&id)?.is_some() {
                            println!(
                                "The relay would not take {} from this school (it may only read that partnership's documents, or belongs to several and used an invite that names none); it stays on this computer.",
                                id.url()
                            );
                            continue;
                        }
                        println!("The relay does not have {}: check the URL, or ask the school that created it to sync.", id.url());
                    }
                }
                Ok::<(), ClientError>(())
            })?;
        }
        Command::Status { json } => {
            let school = School::open(&dir)?;
            let status = status::status(&school)?;
            if json {
                println!("{}", serde_json::to_string(&status).unwrap_or_default());
            } else {
                println!("{}", status::describe(&status));
            }
        }
        Command::Demo { no_browser } => crate::demo::run(!no_browser)?,
        Command::Model(command) => crate::plan::run(&dir, cli.person.as_deref(), command)?,
    }
    Ok(())
}
