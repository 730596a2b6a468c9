//! The partnerplan relay: an axum server that speaks the automerge-repo
//! WebSocket protocol at `/`, keeps every document in SQLite, and merges
//! partner schools' changes whenever they connect.
//!
//! `Relay::start` is what the binary, the demo and the tests all run.

mod access;
mod activity;
mod admin;
pub mod backup;
pub mod cli;
pub mod directory;
mod gate;
mod metrics;
mod service;
mod websocket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use partnerplan_sync::engine::{Engine, EngineConfig, EngineSender, InputLimit, Notice, Side};
use partnerplan_sync::message::DEFAULT_MAX_FRAME_BYTES;
use partnerplan_sync::repo::Quotas;
use partnerplan_sync::{Effect, Repo, RepoConfig, Store, StoreError};
use tokio::sync::watch;

use access::Access;
use directory::DirectoryError;
use gate::{Gate, GateAcceptor, GatedListener, Peer};
use partnerplan_sync::access::{DailyAllowance, Grant, PartnershipPolicy, Register};
use partnerplan_sync::invite::percent_decode;

/// The database file inside the relay's data directory.
pub const DATABASE_FILE: &str = "relay.sqlite";

/// Where the admin pages listen unless told otherwise: this computer only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:7172";

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    /// The admin pages' own listener: a loopback address, where the
    /// relay's own computer needs no password (see `admin`).
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_frame_bytes: usize,
    /// How often the relay pings each connection; one silent for three
    /// times this long is dropped.
    pub keepalive: Duration,
    /// A document nobody has touched for this long leaves memory, even
    /// while its subscribers stay connected (see the core's `resting.rs`).
    pub idle_unload: Duration,
    /// How much memory documents may take while they are worked on,
    /// estimated from their size on disk: past it, those untouched for a
    /// few seconds leave memory before `idle_unload` is up (the core's
    /// `RepoConfig::document_memory`).
    pub document_memory: u64,
    /// The most connections one school may have open at once.
    pub max_connections_per_school: usize,
    /// What one message and one document may hold.
    pub quotas: Quotas,
    /// What one school may send a day.
    pub daily_allowance: DailyAllowance,
    /// A message holding more operations than this is applied on the
    /// engine's worker thread, so other documents do not wait for it
    /// (about 6 µs an operation: 10,000 is some 60 ms).
    pub heavy_ops: u64,
    /// How many bytes of frames may wait for the engine, from all
    /// connections together (each connection may have 64 KiB waiting): past
    /// this, connections stop reading until the engine catches up.
    pub engine_input_bytes: usize,
    /// How many bytes may wait to be written to one connection before the
    /// relay holds back its sync messages for it (made later, with what
    /// is new by then). A slow reader is never cut for being slow; it
    /// costs at most this plus one message.
    pub outbox_bytes: usize,
    /// How long a connection has, from its first byte, to present a valid
    /// token (TLS handshake, HTTP request, upgrade), and then to send its
    /// `join`.
    pub handshake_timeout: Duration,
    /// The most connections that may wait at once without a valid token;
    /// past this the one that has waited longest is closed.
    pub max_waiting_connections: usize,
    /// The most messages one school may send per second over all its
    /// connections (with ten seconds' worth of burst).
    pub max_messages_per_second: u32,
    /// The address schools use to reach this relay, written into invites.
    pub public_url: Option<String>,
    /// `/health` reports the relay unhealthy when its data directory's
    /// disk has less free space than this, in bytes: it can no longer be
    /// sure of saving what schools send.
    pub min_free_disk_bytes: u64,
    /// Serve wss:// with these files.
    pub tls: Option<TlsFiles>,
    /// Scheduled backups, if any.
    pub backups: Option<backup::Schedule>,
}

/// A certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl RelayConfig {
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        RelayConfig {
            listen,
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().expect("a socket address"),
            data_dir: data_dir.into(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            keepalive: Duration::from_secs(20),
            idle_unload: Duration::from_secs(60),
            document_memory: 32 * 1024 * 1024,
            max_connections_per_school: 16,
            outbox_bytes: 1024 * 1024,
            quotas: Quotas {
                message_ops: 1_000_000,
                document_ops: 1_000_000,
                document_bytes: 32 * 1024 * 1024,
            },
            daily_allowance: DailyAllowance {
                ops: 4_000_000,
                bytes: 256 * 1024 * 1024,
            },
            heavy_ops: 10_000,
            engine_input_bytes: 64 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_waiting_connections: 256,
            max_messages_per_second: 1000,
            public_url: None,
            min_free_disk_bytes: 256 * 1024 * 1024,
            tls: None,
            backups: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{}", store_sentence(.0))]
    Store(#[from] StoreError),
    #[error("{0}")]
    Directory(#[from] DirectoryError),
    #[error(
        "could not use the TLS certificate {cert} and key {key}: {detail}. Both must be PEM files; the key must belong to the certificate."
    )]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    /// The data directory is in use (another relay, a restore), or cannot
    /// be locked; the sentence says which.
    #[error("{0}")]
    Locked(String),
    #[error("could not start scheduled backups: {0}")]
    Backups(String),
    #[error(
        "could not listen on {addr}: {source}. Is another relay already running there? Choose another address with --listen."
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "could not open the admin pages on {addr}: {source}. Is another relay already running on this computer? Choose another port with --admin-listen (for example --admin-listen 127.0.0.1:7173)."
    )]
    AdminListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the admin pages listen only on this computer, so --admin-listen must be a loopback address such as 127.0.0.1:7172 or [::1]:7172, not {0}. To use them from other computers, set an admin password (`partnerplan-relay admin-password`) and log in at the relay's public address."
    )]
    AdminNotLoopback(SocketAddr),
}

/// What the relay's operator is told about its database: the store's own
/// sentences, but for a damaged file, which a relay restores from a backup
/// (the store's sentence tells a school to sync again from the relay).
pub(crate) fn store_sentence(error: &StoreError) -> String {
    match error {
        StoreError::Corrupt { path, detail } => format!(
            "{} is damaged ({detail}). It was left untouched: restore the latest backup with `partnerplan-relay restore FILE` (scheduled backups are in the backups folder of the data directory, or where --backup-dir says). Schools keep their own copies and send again whatever the restored relay lacks.",
            path.display()
        ),
        other => other.to_string(),
    }
}

pub(crate) struct AppState {
    engine: EngineSender,
    /// Counters for `/metrics`, bumped by connections and the engine.
    metrics: Arc<metrics::Metrics>,
    /// Who is connected now, for the admin pages.
    activity: Arc<activity::Activity>,
    admin: admin::Admin,
    access: Access,
    config: RelayConfig,
    peer_id: String,
    next_conn: AtomicU64,
    /// Messages per second, per school.
    budgets: websocket::Budgets,
    /// Connections that have not presented a valid token yet.
    gate: Arc<Gate>,
    /// What frames may wait in the engine's input, in bytes.
    input: InputLimit,
    storage: Arc<StorageHealth>,
    shutdown: watch::Receiver<bool>,
}

/// The relay's sync core as it starts from its database: its storage id,
/// and the register, document owners, signing keys and what the policy
/// keeps across restarts (actors' schools, peer-id claims) read into its
/// access policy.
/// `Relay::start` runs it on the engine; the random-schedule tests
/// (`tests/tests/random_schedules.rs`) restart it from the same file, as a
/// relay killed and started again does. Also returns the register read.
pub fn core_from_store(
    store: &mut Store,
    config: &RelayConfig,
) -> Result<(Repo, Arc<Register>), RelayError> {
    let storage_id = store.storage_id()?;
    let register = Arc::new(store.register()?);
    let kept = store.kept_access()?;
    if !kept.restored.is_empty() {
        tracing::info!(
            schools = kept.restored.len(),
            "restored from a backup: a school's lost changes to a document are taken from its partners until it has sent that document all it holds"
        );
    }
    let policy = PartnershipPolicy::new(
        register.clone(),
        store.owners()?,
        config.max_connections_per_school,
    )
    .with_kept(kept)
    .with_signing_keys(store.signing_keys()?)
    .with_writers(store.writers()?)
    .with_daily_allowance(config.daily_allowance);
    let peer_id = format!("partnerplan-relay-{storage_id}");
    let mut repo_config = RepoConfig::new(peer_id, Some(storage_id));
    repo_config.max_frame_bytes = config.max_frame_bytes;
    repo_config.idle_unload_ms = config.idle_unload.as_millis() as u64;
    repo_config.eager_sync_states = false;
    repo_config.outbox_bytes = Some(config.outbox_bytes);
    repo_config.quotas = Some(config.quotas);
    repo_config.heavy_ops = Some(config.heavy_ops);
    repo_config.document_memory = Some(config.document_memory);
    let mut repo = Repo::new(repo_config, Box::new(policy));
    // Listings say how many bytes each document is, for a joining
    // school's progress.
    repo.set_stored_sizes(store.document_sizes()?);
    Ok((repo, register))
}

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    scheme: &'static str,
    storage_id: String,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    engine: Engine,
    backups: Option<tokio::task::JoinHandle<()>>,
    /// The admin pages' own listener, on a loopback address.
    admin_addr: SocketAddr,
    admin_server: tokio::task::JoinHandle<()>,
    /// Held while the relay runs, so a restore cannot replace the
    /// database under it.
    _lock: backup::DataLock,
}

impl Relay {
    /// Opens the database, binds the address and starts serving.
    pub async fn start(config: RelayConfig) -> Result<Relay, RelayError> {
        let lock = backup::DataLock::acquire(&config.data_dir)
            .map_err(|e| RelayError::Locked(e.for_serve(&config.data_dir)))?;
        if let Some(schedule) = &config.backups {
            std::fs::create_dir_all(&schedule.dir).map_err(|e| {
                RelayError::Backups(format!(
                    "the folder {} cannot be made ({e}). Choose another with --backup-dir.",
                    schedule.dir.display()
                ))
            })?;
        }
        // One writing handle on the database, checked once, owned by the
        // engine thread from here on: documents, owners, the register and
        // what the access policy keeps (actors' schools, peer-id claims).
        let mut store = Store::open(config.data_dir.join(DATABASE_FILE))?;
        // Snapshots of large documents are made on the engine's worker.
        store.compact_later();
        let (repo, register) = core_from_store(&mut store, &config)?;
        let peer_id = repo.config().peer_id.clone();
        let storage_id = repo.config().storage_id.clone().unwrap_or_default();
        let (register_tx, register_rx) = watch::channel(register);
        let listen = config.listen;
        let listen_error = move |source| RelayError::Listen {
            addr: listen,
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        let admin_listener = admin_listener(config.admin_listen)?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| RelayError::AdminListen {
                addr: config.admin_listen,
                source,
            })?;
        let tls = match &config.tls {
            Some(files) => Some(tls_config(files).await?),
            None => None,
        };
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"));
        // Invites name the address schools reach this relay at.
        store.set_meta("public_url", &public_url)?;
        let storage = Arc::new(StorageHealth::default());
        // The admin pages' own connection, as the admin commands have.
        let directory = directory::Directory::beside_running(&config.data_dir)?;
        let metrics = Arc::new(metrics::Metrics::default());
        let activity = Arc::new(activity::Activity::default());
        let notices = {
            let (metrics, activity, storage) = (metrics.clone(), activity.clone(), storage.clone());
            move |notice: Notice| {
                storage.note(&notice);
                match &notice {
                    Notice::Core(Effect::PeerJoined { conn, metadata, .. }) => {
                        activity.joined(*conn, metadata.client.clone())
                    }
                    Notice::Turn { latencies } => latencies.iter().for_each(|l| metrics.synced(*l)),
                    _ => {}
                }
                log_notice(notice)
            }
        };
        let engine = Engine::spawn(
            repo,
            store,
            EngineConfig {
                tick: Duration::from_secs(1),
                watch_store: false,
                side: Side::Relay,
                register: Some(register_tx),
                release_memory: Some(release_memory),
            },
            Box::new(notices),
        );
        let access = Access::new(engine.sender(), register_rx);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let backups = config.backups.clone().map(|schedule| {
            tokio::spawn(run_backups(
                config.data_dir.clone(),
                schedule,
                engine.sender(),
                shutdown_rx.clone(),
            ))
        });
        let gate = Arc::new(Gate::new(
            config.max_waiting_connections,
            config.handshake_timeout,
        ));
        let state = Arc::new(AppState {
            budgets: websocket::Budgets::new(config.max_messages_per_second),
            gate: gate.clone(),
            input: InputLimit::new(config.engine_input_bytes, 64 * 1024),
            storage,
            engine: engine.sender(),
            metrics,
            activity,
            admin: admin::Admin::new(
                directory,
                tls.is_some(),
                format!("http://{admin_addr}/admin"),
            ),
            access,
            config,
            peer_id,
            next_conn: AtomicU64::new(1),
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new()
            .route("/", get(websocket))
            .route("/health", get(health))
            .merge(admin::router(state.clone(), admin::Listener::Public))
            .with_state(state.clone());
        let admin_app = Router::new()
            .route("/health", get(health))
            .merge(admin::router(state.clone(), admin::Listener::Admin))
            .with_state(state);
        let admin_server = {
            let mut stop = shutdown_rx.clone();
            tokio::spawn(async move {
                let served = axum::serve(
                    admin_listener,
                    admin_app.into_make_service_with_connect_info::<Peer>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                })
                .await;
                if let Err(error) = served {
                    tracing::error!(%error, "the admin pages stopped serving");
                }
            })
        };
        let mut stop = shutdown_rx;
        let server = match tls {
            None => {
                let listener = GatedListener {
                    listener: tokio::net::TcpListener::from_std(listener).map_err(listen_error)?,
                    gate,
                };
                tokio::spawn(async move {
                    let result =
                        axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                            .with_graceful_shutdown(async move {
                                let _ = stop.wait_for(|stopping| *stopping).await;
                            })
                            .await;
                    if let Err(error) = result {
                        tracing::error!(%error, "the relay stopped serving");
                    }
                })
            }
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let acceptor =
                    axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(GateAcceptor(gate));
                let server = axum_server::from_tcp(listener)
                    .map_err(listen_error)?
                    .acceptor(acceptor)
                    .handle(handle.clone());
                tokio::spawn(async move {
                    tokio::spawn(async move {
                        let _ = stop.wait_for(|stopping| *stopping).await;
                        handle.graceful_shutdown(Some(Duration::from_secs(5)));
                    });
                    if let Err(error) = server
                        .serve(app.into_make_service_with_connect_info::<Peer>())
                        .await
                    {
                        tracing::error!(%error, "the relay stopped serving");
                    }
                })
            }
        };
        tracing::info!(%addr, %admin_addr, "relay listening");
        Ok(Relay {
            addr,
            admin_addr,
            admin_server,
            scheme,
            storage_id,
            shutdown,
            server,
            engine,
            backups,
            _lock: lock,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the admin pages are served without a password, to this
    /// computer only.
    pub fn admin_url(&self) -> String {
        format!("http://{}/admin", self.admin_addr)
    }

    /// The `ws://` (or `wss://`) URL clients connect to.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn storage_id(&self) -> &str {
        &self.storage_id
    }

    /// Closes every connection, finishes what the engine was writing and
    /// stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.admin_server).await;
        if let Some(backups) = self.backups {
            // A backup under way finishes (it only reads); none starts.
            let _ = tokio::time::timeout(Duration::from_secs(60), backups).await;
        }
        let engine = self.engine;
        let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
        tracing::info!("relay stopped");
    }
}

/// Binds the admin pages' own listener, which must be on this computer.
fn admin_listener(addr: SocketAddr) -> Result<tokio::net::TcpListener, RelayError> {
    if !addr.ip().is_loopback() {
        return Err(RelayError::AdminNotLoopback(addr));
    }
    let error = |source| RelayError::AdminListen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(error)?;
    listener.set_nonblocking(true).map_err(error)?;
    tokio::net::TcpListener::from_std(listener).map_err(error)
}

/// Scheduled backups, off the engine thread: each is an online backup
/// through a read connection of its own (see `backup.rs`), run as blocking
/// work, so the engine keeps serving schools while the file is copied; only
/// the time it finished goes through the engine, into `meta`.
async fn run_backups(
    data: PathBuf,
    schedule: backup::Schedule,
    engine: EngineSender,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now() + schedule.every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        next += schedule.every;
        let (dir, s) = (data.clone(), schedule.clone());
        let done = tokio::task::spawn_blocking(move || backup::scheduled(&dir, &s)).await;
        match done {
            Ok(Ok(done)) => {
                tracing::info!(file = %done.path.display(), bytes = done.bytes, "scheduled backup made");
                record_backup(&engine, &done).await;
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "the scheduled backup failed");
                // For /health and the admin pages later: newer than
                // backup.last means backups are failing.
                let now = partnerplan_sync::clock::unix_seconds();
                let _ = engine
                    .set_meta(vec![(
                        backup::META_LAST_FAILURE.into(),
                        format!("{} {error}", backup::iso_time(now)),
                    )])
                    .await;
            }
            Err(error) => tracing::error!(%error, "the scheduled backup stopped"),
        }
        // A backup slower than the period: the next starts a period after.
        let now = tokio::time::Instant::now();
        if next < now {
            next = now + schedule.every;
        }
    }
}

/// Keeps when a backup was made, and where, in `meta` through the engine
/// (for `/health`, the admin pages and `/metrics`).
pub(crate) async fn record_backup(engine: &EngineSender, done: &backup::BackupDone) {
    let now = partnerplan_sync::clock::unix_seconds();
    let recorded = engine
        .set_meta(vec![
            (backup::META_LAST.into(), backup::iso_time(now)),
            (
                backup::META_LAST_FILE.into(),
                done.path.display().to_string(),
            ),
        ])
        .await;
    if let Some(Err(error)) = recorded {
        tracing::warn!(%error, "could not record the backup's time");
    }
}

/// mimalloc's `mi_option_purge_delay` (its header's `mi_option_e`; the
/// crate names no constant for it): how long freed memory stays
/// resident before it goes back to the system: a second by default in
/// mimalloc 3 (its `options.c`; the header still says 10 ms).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the relay's allocator up; called first thing by the program.
/// Freed memory goes back to the system at once rather than after a second:
/// under live editing the relay frees and allocates in bursts, and the
/// delay let each burst's freed pages pile up resident, 40 MiB at the
/// peak against 24 MiB without it, for the same CPU (BENCHMARKS.md).
pub fn configure_allocator() {
    // SAFETY: mi_option_set takes and stores a plain integer; mimalloc
    // reads options at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// Hands memory the engine thread freed back to the system (see
/// `EngineConfig::release_memory`). The relay's programs allocate with
/// mimalloc; under another allocator this does nothing.
fn release_memory() {
    // SAFETY: mi_collect only walks the calling thread's heap and the
    // allocator's own free lists; it may be called at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn log_notice(notice: Notice) {
    match notice {
        Notice::Core(Effect::PeerJoined { conn, metadata, .. }) => {
            tracing::info!(
                conn,
                ephemeral = metadata.is_ephemeral,
                listing = metadata.listing,
                "peer joined"
            )
        }
        Notice::Core(Effect::Close { conn, reason }) => {
            tracing::info!(conn, %reason, "connection refused")
        }
        Notice::Core(Effect::RemoteError { conn, message }) => {
            tracing::info!(conn, %message, "a peer reported an error")
        }
        Notice::StorageFailed(reason) => tracing::error!(%reason, "storage failed"),
        Notice::Core(_) | Notice::Saved { .. } | Notice::Stored { .. } | Notice::Turn { .. } => {}
    }
}

/// The WebSocket endpoint. A connection that cannot be let in is still
/// upgraded, so it can be told why in an `error` message: the JavaScript
/// client crashes on an HTTP error during the upgrade.
async fn websocket(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<Peer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    State(state): State<Arc<AppState>>,
) -> Response {
    let params = query_params(query.as_deref().unwrap_or(""));
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_string);
    let token = bearer.or_else(|| params.get("token").cloned());
    let grant: Result<Grant, String> = state
        .access
        .authenticate(
            token.as_deref(),
            params.get("partnership").map(String::as_str),
        )
        .await;
    if grant.is_ok() {
        // Past the door: the school's own limits apply from here.
        state.gate.admit(peer.0);
    }
    if grant.is_err() {
        state.metrics.refused(match token {
            None => metrics::Refusal::NoToken,
            Some(_) => metrics::Refusal::BadToken,
        });
    }
    let limit = state.config.max_frame_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| websocket::serve_connection(socket, state, grant))
}

/// `a=1&b=two%20words` as a map; later keys win.
fn query_params(query: &str) -> std::collections::HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

async fn tls_config(files: &TlsFiles) -> Result<axum_server::tls_rustls::RustlsConfig, RelayError> {
    // One crypto provider for the process: ring, which builds anywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| RelayError::Tls {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail: e.to_string(),
        })
}

/// A connection's task ended: count it, and keep its school's last sync
/// (for the admin pages, across restarts) through the engine.
pub(crate) fn connection_closed(state: &AppState, conn: u64) {
    state
        .metrics
        .connections_closed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some((school, last)) = state.activity.closed(conn) {
        let engine = state.engine.clone();
        let value = serde_json::to_string(&last).unwrap_or_default();
        tokio::spawn(async move {
            let _ = engine
                .set_meta(vec![(activity::last_sync_key(&school), value)])
                .await;
        });
    }
}

/// Whether the relay can read and write its database now; the sentence
/// says what is wrong.
pub(crate) async fn database_health(engine: &EngineSender) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(5), engine.check_writable()).await {
        Ok(Some(Ok(()))) => Ok(()),
        Ok(Some(Err(error))) => Err(error.to_string()),
        Ok(None) => Err("the relay is shutting down".into()),
        Err(_) => Err("the database did not answer within 5 seconds".into()),
    }
}

/// The last time the engine could not save what schools sent, until a
/// later save succeeds: a small health-check write can succeed on a disk
/// too full for a document's changes.
#[derive(Default)]
struct StorageHealth(std::sync::Mutex<Option<(std::time::Instant, String)>>);

impl StorageHealth {
    /// How long a failed save keeps the relay unhealthy if nothing is
    /// saved after it.
    const REMEMBERED: Duration = Duration::from_secs(600);

    fn note(&self, notice: &Notice) {
        let mut failed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match notice {
            Notice::StorageFailed(reason) => {
                *failed = Some((std::time::Instant::now(), reason.clone()))
            }
            Notice::Saved { .. } => *failed = None,
            _ => {}
        }
    }

    fn failure(&self) -> Option<String> {
        let failed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        failed
            .as_ref()
            .filter(|(at, _)| at.elapsed() < Self::REMEMBERED)
            .map(|(_, reason)| reason.clone())
    }
}

/// Free bytes for the relay on the disk that holds `dir`.
#[cfg(unix)]
fn free_disk_bytes(dir: &std::path::Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(not(unix))]
fn free_disk_bytes(_dir: &std::path::Path) -> Option<u64> {
    None
}

fn megabytes(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// Whether the relay has room on its disk, and saved what schools sent
/// last; the sentence says what is wrong.
pub(crate) fn storage_health(state: &AppState) -> Result<(), String> {
    let data = &state.config.data_dir;
    let needed = state.config.min_free_disk_bytes;
    if let Some(free) = free_disk_bytes(data)
        && free < needed
    {
        return Err(format!(
            "the disk holding {} has {} MB free, less than the {} MB the relay keeps free to save what schools send. Free some space on it, or move the data directory to a larger disk.",
            data.join(DATABASE_FILE).display(),
            megabytes(free),
            megabytes(needed)
        ));
    }
    if let Some(reason) = state.storage.failure() {
        return Err(format!(
            "the relay could not save schools' changes just now: {reason}"
        ));
    }
    Ok(())
}

/// 200 only while the relay can read and write its database and has room
/// on its disk to keep doing so; says when the last backup was made, and
/// how many documents are in memory and how many rest out of it.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let healthy = match storage_health(&state) {
        Ok(()) => database_health(&state.engine).await,
        Err(why) => Err(why),
    };
    match healthy {
        Ok(()) => {
            let answer = state
                .engine
                .query(|repo, store| {
                    let last = store.meta(backup::META_LAST).ok().flatten();
                    (last, repo.loaded_documents(), repo.resting_documents())
                })
                .await;
            let (last, loaded, resting) = answer.unwrap_or((None, 0, 0));
            let backup = match last {
                Some(at) => format!("last backup: {at}"),
                None => "last backup: none yet".into(),
            };
            // Idle documents rest out of memory while their schools stay
            // connected (the core's resting.rs).
            (
                StatusCode::OK,
                format!(
                    "ok: the relay can read and write its database\ndocuments: {loaded} in memory, {resting} at rest\n{backup}\n"
                ),
            )
                .into_response()
        }
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_hands_freed_memory_back_at_once() {
        // SAFETY: mi_option_get reads a plain integer.
        let purge_delay = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // The option is the purge delay: mimalloc 3's default is 1,000 ms.
        assert_eq!(purge_delay(), 1000);
        configure_allocator();
        assert_eq!(purge_delay(), 0);
    }
}
