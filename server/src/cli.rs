//! The `partnerplan-relay` command line: `serve`, and the lead school's
//! register of partnerships, schools and tokens, which works against the
//! data directory while the relay runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::directory::{Directory, Invite, Role};
use crate::{Relay, RelayConfig, TlsFiles};

#[derive(Parser)]
#[command(
    name = "partnerplan-relay",
    version,
    about = "The partnerplan relay: partner schools sync their shared documents through it.",
    long_about = "The partnerplan relay, hosted by a lead school. Each school's client keeps its own copy of every shared document and syncs through this relay whenever it is online. The relay speaks the automerge-repo WebSocket protocol at the root path, so automerge-repo JavaScript clients can use it too, and keeps every document in a SQLite file in its data directory. Each school connects with its own token; each partnership's documents reach its own schools and no one else."
)]
struct Cli {
    /// The directory that holds the relay's database (relay.sqlite). It is
    /// created if missing.
    #[arg(long, global = true, default_value = "./relay-data")]
    data: PathBuf,
    /// How the log (on stderr) is written: text for people, json (one
    /// object a line) for log collectors. Text has colours only on a
    /// terminal.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the relay until stopped with Ctrl-C or SIGTERM.
    Serve {
        /// The address and port to listen on. Use 0.0.0.0:7171 to accept
        /// schools from other machines.
        #[arg(long, default_value = "127.0.0.1:7171")]
        listen: SocketAddr,
        /// The admin pages' own address (and /metrics'), on this computer
        /// only: a loopback address. Other computers use the admin pages at
        /// the --listen address, after an admin password is set.
        #[arg(long, default_value = crate::DEFAULT_ADMIN_LISTEN)]
        admin_listen: SocketAddr,
        /// The address schools reach this relay at, written into invites
        /// (for example wss://relay.hilltop.sch.uk). Defaults to the
        /// listen address.
        #[arg(long)]
        public_url: Option<String>,
        /// Serve wss:// with this certificate chain (PEM). Needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The largest message accepted from a client, in bytes. Larger
        /// ones are refused with an error that says so.
        #[arg(long, default_value_t = partnerplan_sync::message::DEFAULT_MAX_FRAME_BYTES)]
        max_frame_bytes: usize,
        /// The most connections one school may have open at once.
        #[arg(long, default_value_t = 16)]
        max_connections_per_school: usize,
        /// The most messages one school may send a second, over all its
        /// connections (ten seconds' worth may come at once); a connection
        /// that goes over is told so and closed, and reconnecting does not
        /// refill the allowance.
        #[arg(long, default_value_t = 1000)]
        max_messages_per_second: u32,
        /// The most operations (one per character typed, or value set) one
        /// document may hold, and one message may bring.
        #[arg(long, default_value_t = 1_000_000)]
        max_document_ops: u64,
        /// The most megabytes one document may take on disk.
        #[arg(long, default_value_t = 32)]
        max_document_mb: u64,
        /// The most operations one school may send in a day, over all its
        /// documents and connections.
        #[arg(long, default_value_t = 4_000_000)]
        school_ops_per_day: u64,
        /// The most megabytes one school may send in a day.
        #[arg(long, default_value_t = 256)]
        school_mb_per_day: u64,
        /// Seconds a connection has to present a valid token (TLS, HTTP
        /// request and upgrade) and then to send its first message.
        #[arg(long, default_value_t = 10)]
        handshake_timeout_secs: u64,
        /// The most connections that may wait at once without a valid
        /// token; past this the one that has waited longest is closed.
        #[arg(long, default_value_t = 256)]
        max_waiting_connections: usize,
        /// /health reports the relay unhealthy when the disk holding its data
        /// directory has less free space than this, in megabytes.
        #[arg(long, default_value_t = 256)]
        min_free_disk_mb: u64,
        /// Seconds between keepalive pings; a connection silent for three
        /// times this long is dropped.
        #[arg(long, default_value_t = 20)]
        keepalive_secs: u64,
        /// A document nobody has changed or asked about for this long
        /// leaves the relay's memory, even while the schools that sync it
        /// stay connected; their next message brings it back from the
        /// database (s, m, h or d).
        #[arg(long, default_value = "1m", value_parser = crate::backup::parse_duration)]
        idle_unload: std::time::Duration,
        /// How much memory, in megabytes, documents being worked on may
        /// take: past it, those untouched for a few seconds leave memory
        /// before --idle-unload is up, so a burst of schools syncing
        /// thousands of documents cannot run the relay out of memory.
        #[arg(long, default_value_t = 32)]
        document_memory_mb: u64,
        /// Back the database up this often while serving: 30m, 6h, 24h
        /// (s, m, h or d). Each backup is a dated file in --backup-dir.
        #[arg(long, value_parser = crate::backup::parse_duration)]
        backup_every: Option<std::time::Duration>,
        /// How many scheduled backups to keep; older ones are removed.
        #[arg(long, default_value_t = crate::backup::DEFAULT_KEEP, requires = "backup_every")]
        backup_keep: usize,
        /// The folder for scheduled backups (default: backups in the data
        /// directory). A folder on another disk survives that disk failing.
        #[arg(long, requires = "backup_every")]
        backup_dir: Option<PathBuf>,
    },
    /// Copy the database to a file, safely, even while the relay runs.
    Backup {
        /// The backup file to make.
        #[arg(long)]
        to: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Put a backup in place of the database. The relay must be stopped;
    /// the database it replaces is kept beside it.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Partnerships on this relay.
    #[command(subcommand)]
    Partnership(PartnershipCommand),
    /// Schools and their access.
    #[command(subcommand)]
    School(SchoolCommand),
    /// Access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Documents on this relay: which partnership, size, last change.
    #[command(subcommand)]
    Document(DocumentCommand),
    /// What the relay holds and its last backup.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Set the password for the admin pages (/admin) and /metrics from
    /// other computers. Reads it from standard input; only its Argon2id
    /// hash is kept. Without one, they open only on this computer.
    AdminPassword {
        /// Remove the password: the admin pages open only on this
        /// computer again.
        #[arg(long)]
        remove: bool,
    },
    /// Run the relay as a systemd service, as its own user with its own
    /// data folder: makes the user and folder, writes the unit, enables
    /// and starts it. Needs root; --dry-run only shows what it would do.
    InstallService(crate::service::InstallOptions),
}

#[derive(Subcommand)]
enum DocumentCommand {
    /// List the documents, the most recently changed first.
    List {
        /// Only this partnership's, by name or id.
        #[arg(long)]
        partnership: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PartnershipCommand {
    /// Create a partnership.
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the partnerships, with how many schools and documents each has.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    /// Reads and writes the partnership's documents.
    Member,
    /// Reads them and never writes (a governor, the local authority).
    Viewer,
}

#[derive(Subcommand)]
enum SchoolCommand {
    /// Add a school to a partnership. A school new to this relay gets an
    /// invite (the relay address and a secret token), shown only once.
    Add {
        /// The partnership, by name or id.
        #[arg(long)]
        partnership: String,
        /// The school's name.
        name: String,
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
        /// The relay address to put in the invite; defaults to the address
        /// the relay last served at.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Take a school out of one partnership, or (without --partnership)
    /// off the relay altogether. Its open connections are cut at once.
    Remove {
        name: String,
        #[arg(long)]
        partnership: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Make a school a member or a viewer of a partnership it is in. Its
    /// open connections follow at once.
    Role {
        name: String,
        #[arg(long)]
        partnership: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        json: bool,
    },
    /// List the schools and their partnerships.
    List {
        #[arg(long)]
        partnership: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Give a school a new token. The old one stops working at once.
    Rotate {
        /// The school's name.
        school: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The whole program; `main.rs` only calls this, so the end-to-end tests
/// can build the same binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve {
            listen,
            admin_listen,
            public_url,
            tls_cert,
            tls_key,
            max_frame_bytes,
            max_connections_per_school,
            max_messages_per_second,
            min_free_disk_mb,
            max_document_ops,
            max_document_mb,
            school_ops_per_day,
            school_mb_per_day,
            handshake_timeout_secs,
            max_waiting_connections,
            keepalive_secs,
            idle_unload,
            document_memory_mb,
            backup_every,
            backup_keep,
            backup_dir,
        } => {
            let mut config = RelayConfig::new(listen, cli.data.clone());
            config.admin_listen = admin_listen;
            config.max_frame_bytes = max_frame_bytes;
            config.max_connections_per_school = max_connections_per_school.max(1);
            config.max_messages_per_second = max_messages_per_second.max(1);
            config.keepalive = std::time::Duration::from_secs(keepalive_secs.max(1));
            config.idle_unload = idle_unload;
            config.document_memory = document_memory_mb.max(1).saturating_mul(1024 * 1024);
            config.public_url = public_url;
            config.min_free_disk_bytes = min_free_disk_mb.saturating_mul(1024 * 1024);
            config.handshake_timeout =
                std::time::Duration::from_secs(handshake_timeout_secs.max(1));
            config.max_waiting_connections = max_waiting_connections.max(1);
            config.quotas = partnerplan_sync::repo::Quotas {
                message_ops: max_document_ops.max(1),
                document_ops: max_document_ops.max(1),
                document_bytes: max_document_mb.max(1).saturating_mul(1024 * 1024),
            };
            config.daily_allowance = partnerplan_sync::access::DailyAllowance {
                ops: school_ops_per_day.max(1),
                bytes: school_mb_per_day.max(1).saturating_mul(1024 * 1024),
            };
            config.backups = backup_every.map(|every| crate::backup::Schedule {
                every,
                keep: backup_keep.max(1),
                dir: backup_dir.unwrap_or_else(|| cli.data.join("backups")),
            });
            config.tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| TlsFiles { cert, key });
            serve(config)
        }
        Command::Backup { to, force } => backup(&cli.data, &to, force),
        Command::Restore { file } => restore(&cli.data, &file),
        Command::Partnership(command) => partnership(&cli.data, command),
        Command::School(command) => school(&cli.data, command),
        Command::Token(command) => token(&cli.data, command),
        Command::Document(command) => document(&cli.data, command),
        Command::Status { json } => status(&cli.data, json),
        Command::AdminPassword { remove } => admin_password(&cli.data, remove),
        Command::InstallService(options) => crate::service::install(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("partnerplan-relay: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: RelayConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start: {e}"))?;
    runtime.block_on(async move {
        let data = config.data_dir.clone();
        let relay = Relay::start(config).await.map_err(|e| e.to_string())?;
        println!(
            "partnerplan relay listening on {} with its data in {}",
            relay.url(),
            data.display()
        );
        println!("Its admin pages, on this computer: {}", relay.admin_url());
        wait_for_stop_signal().await;
        println!("stopping: closing connections and finishing writes");
        relay.shutdown().await;
        Ok(())
    })
}

fn backup(data: &Path, to: &Path, force: bool) -> Result<(), String> {
    let done = crate::backup::backup(data, to, force).map_err(|e| e.to_string())?;
    // For the admin pages and /health: when the last backup was made. The
    // copy is safe whether or not this is recorded.
    let recorded =
        partnerplan_sync::Store::open(data.join(crate::DATABASE_FILE)).and_then(|mut store| {
            let now = partnerplan_sync::clock::unix_seconds();
            store.set_meta(crate::backup::META_LAST, &crate::backup::iso_time(now))?;
            store.set_meta(
                crate::backup::META_LAST_FILE,
                &done.path.display().to_string(),
            )
        });
    if let Err(error) = recorded {
        eprintln!("partnerplan-relay: the backup is made, but its time was not recorded: {error}");
    }
    println!("{}", done.sentence());
    Ok(())
}

fn restore(data: &Path, file: &Path) -> Result<(), String> {
    let restored = crate::backup::restore(data, file).map_err(|e| e.to_string())?;
    let kept = match &restored.set_aside {
        Some(aside) => format!(" The database it replaced is kept as {}.", aside.display()),
        None => String::new(),
    };
    println!(
        "Restored {} from {} ({} documents).{kept} Start the relay again: schools send whatever they changed since the backup when they next sync. Schools added or tokens rotated after the backup need doing again.",
        restored.database.display(),
        file.display(),
        restored.documents
    );
    Ok(())
}

fn open(data: &Path) -> Result<Directory, String> {
    Directory::open(data).map_err(|e| e.to_string())
}

fn relay_url(directory: &Directory, given: Option<String>) -> Result<String, String> {
    directory.relay_url(given).map_err(|e| e.to_string())
}

/// Logs to stderr: colours only on a terminal (a file or journald gets
/// plain text), or one JSON object a line.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARTNERPLAN_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

fn document(data: &Path, command: DocumentCommand) -> Result<(), String> {
    let directory = open(data)?;
    match command {
        DocumentCommand::List { partnership, json } => {
            let list = directory
                .documents(partnership.as_deref())
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&list);
            } else if list.is_empty() {
                println!("No documents yet. They appear when a school first shares one.");
            } else {
                for d in list {
                    let changed = d.changed_at.unwrap_or(d.created_at);
                    println!(
                        "{}  {} ({}), last changed {}, started by {}",
                        d.url,
                        d.partnership,
                        crate::backup::human_size(d.bytes),
                        crate::backup::iso_time(changed),
                        d.created_by.as_deref().unwrap_or("a school since removed"),
                    );
                }
            }
        }
    }
    Ok(())
}

fn status(data: &Path, json: bool) -> Result<(), String> {
    let directory = open(data)?;
    let storage = directory.storage().map_err(|e| e.to_string())?;
    if json {
        print_json(&storage);
        return Ok(());
    }
    println!(
        "{} documents, {} on disk.",
        storage.documents,
        crate::backup::human_size(storage.bytes)
    );
    match &storage.last_backup {
        Some(at) => println!(
            "Last backup: {at}{}.",
            storage
                .last_backup_file
                .as_deref()
                .map(|f| format!(", to {f}"))
                .unwrap_or_default()
        ),
        None => println!(
            "No backup yet: make one with `partnerplan-relay backup --to FILE`, or serve with --backup-every 24h."
        ),
    }
    if let Some(failure) = &storage.last_backup_failure {
        println!("Last failed scheduled backup: {failure}");
    }
    Ok(())
}

fn admin_password(data: &Path, remove: bool) -> Result<(), String> {
    let mut directory = open(data)?;
    if remove {
        directory
            .set_meta(crate::admin::META_PASSWORD, "")
            .map_err(|e| e.to_string())?;
        tracing::info!("the admin password was removed");
        println!("The admin password is removed: the admin pages open only on this computer.");
        return Ok(());
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        println!(
            "Type the new admin password (at least {} characters), then press Enter:",
            partnerplan_web::password::MIN_CHARS
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("could not read the password: {e}"))?;
    let hash = partnerplan_web::password::hash(line.trim_end_matches(['\r', '\n']))?;
    directory
        .set_meta(crate::admin::META_PASSWORD, &hash)
        .map_err(|e| e.to_string())?;
    tracing::info!("the admin password was set");
    println!(
        "The admin password is set. The admin pages (/admin) now open from other computers after logging in with it, and /metrics takes it as HTTP Basic or Bearer credentials. It takes effect at once."
    );
    Ok(())
}

fn partnership(data: &Path, command: PartnershipCommand) -> Result<(), String> {
    let mut directory = open(data)?;
    match command {
        PartnershipCommand::Create { name, json } => {
            let created = directory
                .create_partnership(&name)
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&created).unwrap_or_default());
            } else {
                println!(
                    "Created the partnership {} (id {}). Add its schools with `partnerplan-relay school add --partnership \"{}\" NAME`.",
                    created.name, created.id, created.name
                );
            }
        }
        PartnershipCommand::List { json } => {
            let list = directory.partnerships().map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&list).unwrap_or_default());
            } else if list.is_empty() {
                println!(
                    "There are no partnerships yet. Create one with `partnerplan-relay partnership create NAME`."
                );
            } else {
                for p in list {
                    println!(
                        "{}  ({} schools, {} documents; id {})",
                        p.name, p.schools, p.documents, p.id
                    );
                }
            }
        }
    }
    Ok(())
}

fn school(data: &Path, command: SchoolCommand) -> Result<(), String> {
    let mut directory = open(data)?;
    match command {
        SchoolCommand::Add {
            partnership,
            name,
            role,
            url,
            json,
        } => {
            let role = match role {
                RoleArg::Member => Role::Member,
                RoleArg::Viewer => Role::Viewer,
            };
            let url = relay_url(&directory, url)?;
            let (invite, school, address) = directory
                .add_school(&partnership, &name, role, &url)
                .map_err(|e| e.to_string())?;
            match invite {
                Some(invite) => print_invite(&invite, json, "added"),
                None if json => println!(
                    "{}",
                    serde_json::json!({"school": school, "partnership": partnership, "role": role, "url": address, "token": null})
                ),
                // A viewer (governors, the local authority) creates
                // nothing there: its next sync lists the documents.
                None if role == Role::Viewer => println!(
                    "{school} is now a viewer of {partnership}. It already has a token on this relay and uses it for this partnership too: {partnership}'s documents reach it at its next sync, with nothing to do at the school."
                ),
                None => println!(
                    "{school} is now a {} of {partnership}. It already has a token on this relay and uses it for this partnership too. To create documents for {partnership}, it runs: partnerplan set-relay '{address}'",
                    role.as_str()
                ),
            }
        }
        SchoolCommand::Remove {
            name,
            partnership,
            json,
        } => {
            let school = directory
                .remove_school(&name, partnership.as_deref())
                .map_err(|e| e.to_string())?;
            if json {
                print_json(
                    &serde_json::json!({"school": school, "removed_from": partnership.as_deref().unwrap_or("relay")}),
                );
                return Ok(());
            }
            match partnership {
                Some(p) => println!(
                    "{school} is no longer in {p}. Its connections are cut now; it receives nothing more of {p}'s documents."
                ),
                None => println!(
                    "{school} was removed from this relay. Its token no longer works and its connections are cut now."
                ),
            }
        }
        SchoolCommand::Role {
            name,
            partnership,
            role,
            json,
        } => {
            let role = match role {
                RoleArg::Member => Role::Member,
                RoleArg::Viewer => Role::Viewer,
            };
            let (school, partnership) = directory
                .set_role(&name, &partnership, role)
                .map_err(|e| e.to_string())?;
            if json {
                print_json(
                    &serde_json::json!({"school": school, "partnership": partnership, "role": role}),
                );
            } else {
                println!(
                    "{school} is now a {} of {partnership}. Its open connections follow at once.",
                    role.as_str()
                );
            }
        }
        SchoolCommand::List { partnership, json } => {
            let schools = directory
                .schools(partnership.as_deref())
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&schools).unwrap_or_default());
            } else if schools.is_empty() {
                println!(
                    "No schools yet. Add one with `partnerplan-relay school add --partnership P NAME`."
                );
            } else {
                for s in schools {
                    let places: Vec<String> = s
                        .partnerships
                        .iter()
                        .map(|(p, r)| format!("{p} ({})", r.as_str()))
                        .collect();
                    println!("{}: {}", s.name, places.join(", "));
                }
            }
        }
    }
    Ok(())
}

fn token(data: &Path, command: TokenCommand) -> Result<(), String> {
    let mut directory = open(data)?;
    match command {
        TokenCommand::Rotate { school, url, json } => {
            let url = relay_url(&directory, url)?;
            let invite = directory
                .rotate_token(&school, &url)
                .map_err(|e| e.to_string())?;
            print_invite(&invite, json, "given a new token");
        }
    }
    Ok(())
}

fn print_invite(invite: &Invite, json: bool, what: &str) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "school": invite.school,
                "partnership": invite.partnership,
                "role": invite.role,
                "url": invite.url,
                "token": invite.token,
                "invite": invite.line(),
            })
        );
        return;
    }
    println!(
        "{} was {what}. Its invite is shown only this once; give it to the school privately:\n\n  {}\n\nThe school runs: partnerplan join '{}'",
        invite.school,
        invite.line(),
        invite.line()
    );
}

async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
