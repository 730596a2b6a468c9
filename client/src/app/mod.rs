//! `partnerplan app`: the school's app. One long-running process holds
//! the school's documents in memory, syncs them with the relay in-process
//! and serves the pages people use on `http://127.0.0.1:<port>`.
//!
//! - [`library`]: the documents, read and edited through the model.
//! - [`web`]: routes, request checks (host, origin, token) and handlers.
//! - [`pages`]: the HTML, rendered from the model's views.
//! - [`county`]: the local authority's pages across the partnerships it
//!   views.
//! - [`sync_state`]: what the sync indicator says.

pub mod comments;
pub mod county;
pub mod library;
pub mod pages;
pub mod password;
pub mod sync_state;
pub mod versions;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use partnerplan_sync::engine::{EngineSender, Input};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};

use crate::error::ClientError;
use crate::school::School;
use crate::status::StatusKey;
use crate::sync::{self, Link, SyncOptions};
use library::Library;
use sync_state::SyncState;

/// The port the app tries first, so its address stays the same from day
/// to day (a bookmark works); another free one if that is taken.
pub const DEFAULT_PORT: u16 = 7272;

#[derive(Debug, Clone)]
pub struct AppOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// Open the page in the browser once started.
    pub open_browser: bool,
    /// Ask for the app's password even on this computer's own address
    /// (it is always asked beyond it).
    pub require_password: bool,
}

/// Joins the school to its partnership from the join page, and wakes the
/// sync once it has.
#[derive(Clone)]
pub struct Joining {
    dir: PathBuf,
    joined: Arc<Notify>,
}

impl Joining {
    /// Takes the invite, the school's name and the person's; `Err` is the
    /// sentence the page shows.
    pub fn join(
        &self,
        library: &Library,
        invite: &str,
        school: &str,
        person: &str,
        role: &str,
    ) -> Result<(), String> {
        if invite.is_empty() {
            return Err(
                "Paste the invite your lead school gave you: it starts with ws:// or wss://."
                    .into(),
            );
        }
        // The invite carries the school's name as the relay knows it.
        let from_invite = crate::school::invite_school(invite);
        let school = match (school.is_empty(), &from_invite) {
            (true, Some(name)) => name.as_str(),
            _ => school,
        };
        if school.is_empty() {
            return Err("Enter your school's name, as your partners know it.".into());
        }
        if person.is_empty() {
            return Err("Enter your name: partners see it beside what you write.".into());
        }
        let mut opened = match School::open(&self.dir) {
            Ok(opened) => opened,
            Err(ClientError::NotInitialized { .. }) => {
                School::init(&self.dir, school, None).map_err(|e| sentence(&e.to_string()))?
            }
            Err(error) => return Err(sentence(&error.to_string())),
        };
        opened
            .join(invite, None)
            .map_err(|e| sentence(&e.to_string()))?;
        let saved = library
            .set_meta("school_name", school)
            .and_then(|_| library.set_meta("person", person))
            .and_then(|_| library.set_meta("person_role", role));
        saved.map_err(|e| sentence(&e.to_string()))?;
        self.joined.notify_one();
        Ok(())
    }
}

fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub fn run(options: AppOptions) -> Result<(), ClientError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ClientError::Other(format!("could not start: {e}")))?;
    runtime.block_on(serve(options))
}

async fn serve(options: AppOptions) -> Result<(), ClientError> {
    crate::school::make_private_dir(&options.dir)?;
    let library = Arc::new(Library::open(&options.dir)?);
    let storage = library_storage_id(&options.dir)?;
    let password = if options.require_password || password::needs_password(&options.listen) {
        Some(library.meta(password::META_PASSWORD)?.ok_or_else(|| {
            ClientError::Other(
                "serving the app to other computers needs a password. Set one with `partnerplan app-password` on this computer, then start the app again.".into(),
            )
        })?)
    } else {
        None
    };

    // A second start finds the running app and opens its page.
    if let Some(url) = library.meta("app.url")?
        && already_running(&url, &storage).await
    {
        println!("partnerplan is already running for this school at {url}");
        open_browser(&url, options.open_browser);
        return Ok(());
    }

    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(_) if options.listen.port() == DEFAULT_PORT => {
            tokio::net::TcpListener::bind(SocketAddr::new(options.listen.ip(), 0))
                .await
                .map_err(|e| listen_error(options.listen, e))?
        }
        Err(error) => return Err(listen_error(options.listen, error)),
    };
    let addr = listener
        .local_addr()
        .map_err(|e| listen_error(options.listen, e))?;
    let url = format!("http://{addr}/");
    library.set_meta("app.url", &url)?;

    let hosts = vec![format!("{addr}"), format!("localhost:{}", addr.port())];
    let joined = Arc::new(Notify::new());
    let (sync_tx, sync_rx) = watch::channel(SyncState::default());
    let state = Arc::new(web::AppState {
        library: library.clone(),
        csrf: partnerplan_web::guard::new_secret(),
        login_csrf: partnerplan_web::guard::new_secret(),
        hosts,
        sync: sync_rx,
        password,
        sessions: password::Sessions::default(),
        passwords: password::PasswordGate::default(),
        signed_views: versions::SignedViews::default(),
        person: std::sync::RwLock::new(library.meta("person")?),
        dir: options.dir.clone(),
        joining: Joining {
            dir: options.dir.clone(),
            joined: joined.clone(),
        },
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let (engine_tx, engine_rx) = watch::channel::<Option<EngineSender>>(None);
    tokio::spawn(keep_syncing(
        options.dir.clone(),
        library.clone(),
        joined,
        engine_tx,
        stop_rx.clone(),
    ));
    tokio::spawn(pass_edits_to_sync(library.clone(), engine_rx));
    tokio::spawn(watch_sync_state(library.clone(), sync_tx, stop_rx.clone()));

    println!("partnerplan is running for this school at {url}");
    println!("Keep this window open while you work; close it (Ctrl-C) to stop.");
    open_browser(&url, options.open_browser);

    let app = web::router(state);
    let mut stop_wait = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_wait.wait_for(|stop| *stop).await;
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    server
        .await
        .map_err(|e| ClientError::Other(format!("the app stopped: {e}")))?;
    let _ = library.set_meta("app.url", "");
    Ok(())
}

fn listen_error(addr: SocketAddr, error: std::io::Error) -> ClientError {
    ClientError::Other(format!(
        "could not listen on {addr}: {error}. Choose another address with --listen."
    ))
}

fn library_storage_id(dir: &Path) -> Result<String, ClientError> {
    let mut store = partnerplan_sync::Store::open(dir.join(crate::school::DATABASE_FILE))?;
    Ok(store.storage_id()?)
}

/// Whether the app answering at `url` is this school's (same store).
async fn already_running(url: &str, storage: &str) -> bool {
    let Some(host) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
    else {
        return false;
    };
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
        let request = format!("GET /hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut answer).await.ok()?;
        Some(String::from_utf8_lossy(&answer).contains(storage))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn open_browser(url: &str, open: bool) {
    if open && webbrowser::open(url).is_err() {
        println!("Open {url} in your web browser.");
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = ctrl_c => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the sync with the relay for as long as the app runs, starting it
/// once the school has joined.
async fn keep_syncing(
    dir: PathBuf,
    library: Arc<Library>,
    joined: Arc<Notify>,
    engine: watch::Sender<Option<EngineSender>>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let has_relay = library.meta("relay_url").ok().flatten().is_some();
        if !has_relay {
            // No sync to notice what the command line stores: look for
            // it here, until the school joins.
            let mut stop = stop.clone();
            let mut seen = library.last_stored().unwrap_or(0);
            loop {
                tokio::select! {
                    _ = joined.notified() => break,
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {
                        if let Ok((documents, last)) = library.stored_after(seen) {
                            seen = last;
                            for id in documents {
                                library.changed_elsewhere(id);
                            }
                        }
                    }
                }
            }
            continue;
        }
        let changed_library = library.clone();
        let link = Link {
            engine: engine.clone(),
            changed: Box::new(move |documents| {
                for id in documents {
                    changed_library.changed_elsewhere(*id);
                }
            }),
        };
        let mut stop_wait = stop.clone();
        let result = sync::run_linked(
            &dir,
            SyncOptions {
                watch: true,
                timeout: Duration::from_secs(60),
                on_receiving: None,
            },
            async move {
                let _ = stop_wait.wait_for(|s| *s).await;
            },
            Some(link),
        )
        .await;
        let _ = engine.send(None);
        if *stop.borrow() {
            return;
        }
        if let Err(error) = result {
            tracing::warn!(%error, "the sync stopped; starting it again");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Hands each edit made in the app to the sync at once: no polling for
/// the app's own edits.
async fn pass_edits_to_sync(library: Arc<Library>, engine: watch::Receiver<Option<EngineSender>>) {
    let mut changes = library.subscribe();
    loop {
        match changes.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                if let Some(engine) = engine.borrow().as_ref() {
                    engine.send(Input::Poke);
                }
            }
            Err(_) => return,
        }
    }
}

/// The titles of the documents whose changes the relay refused, from what
/// the sync recorded (`[{"url", "reason", "passes"}]`): those refused for
/// good, then those whose refusal passes.
fn refused_titles(library: &Library, recorded: Option<&str>) -> (Vec<String>, Vec<String>) {
    let list: Vec<crate::status::Refused> = recorded
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let titles = |passes: bool| -> Vec<String> {
        list.iter()
            .filter(|refused| refused.passes == passes)
            .filter_map(|refused| partnerplan_sync::DocumentId::parse_url_or_id(&refused.url).ok())
            .map(|id| {
                library
                    .title(&id)
                    .ok()
                    .flatten()
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| "a document without a title".into())
            })
            .collect()
    };
    (titles(false), titles(true))
}

/// Keeps the sync indicator's state current.
async fn watch_sync_state(
    library: Arc<Library>,
    state: watch::Sender<SyncState>,
    stop: watch::Receiver<bool>,
) {
    let mut changes = library.subscribe();
    loop {
        let meta = |key: StatusKey| {
            library
                .meta(key.as_str())
                .ok()
                .flatten()
                .filter(|v| !v.is_empty())
        };
        let relay_storage = meta(StatusKey::RelayStorageId);
        let lib = library.clone();
        let unconfirmed = tokio::task::spawn_blocking(move || {
            lib.unconfirmed(relay_storage.as_deref()).unwrap_or(0)
        })
        .await
        .unwrap_or(0);
        let (refused, held) = refused_titles(&library, meta(StatusKey::Refused).as_deref());
        let next = SyncState {
            joined: library.meta("relay_url").ok().flatten().is_some(),
            connected: meta(StatusKey::Connected).as_deref() == Some("yes"),
            unconfirmed,
            last_success: meta(StatusKey::LastSuccess).and_then(|v| v.parse().ok()),
            last_error: meta(StatusKey::LastError),
            refused,
            held,
            receiving: meta(StatusKey::Receiving)
                .as_deref()
                .and_then(crate::status::Receiving::from_meta),
        };
        state.send_if_modified(|current| {
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
        if *stop.borrow() {
            return;
        }
        // Look again after a second, or sooner when a document changes.
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.recv()).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
