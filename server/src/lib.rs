//! The partnerplan relay: an axum server that speaks the automerge-repo
//! WebSocket protocol at `/`, keeps every document in SQLite, and merges
//! partner schools' changes whenever they connect.
//!
//! `Relay::start` is what the binary, the demo and the tests all run.

mod access;
pub mod cli;
mod websocket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use partnerplan_shared::engine::{Engine, EngineConfig, EngineSender, Notice};
use partnerplan_shared::message::DEFAULT_MAX_FRAME_BYTES;
use partnerplan_shared::{Repo, RepoConfig, Store, StoreError};
use tokio::sync::watch;

pub use access::RelayPolicy;

/// The database file inside the relay's data directory.
pub const DATABASE_FILE: &str = "relay.sqlite";

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_frame_bytes: usize,
    /// How often the relay pings each connection; one silent for three
    /// times this long is dropped.
    pub keepalive: Duration,
    /// A document nobody is syncing leaves memory after this long.
    pub idle_unload: Duration,
}

impl RelayConfig {
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        RelayConfig {
            listen,
            data_dir: data_dir.into(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            keepalive: Duration::from_secs(20),
            idle_unload: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "could not listen on {addr}: {source}. Is another relay already running there? Choose another address with --listen."
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub(crate) struct AppState {
    engine: EngineSender,
    config: RelayConfig,
    peer_id: String,
    next_conn: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    storage_id: String,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    engine: Engine,
}

impl Relay {
    /// Opens the database, binds the address and starts serving.
    pub async fn start(config: RelayConfig) -> Result<Relay, RelayError> {
        let mut store = Store::open(config.data_dir.join(DATABASE_FILE))?;
        let storage_id = store.storage_id()?;
        let peer_id = format!("partnerplan-relay-{storage_id}");
        let mut repo_config = RepoConfig::new(peer_id.clone(), Some(storage_id.clone()));
        repo_config.max_frame_bytes = config.max_frame_bytes;
        repo_config.idle_unload_ms = config.idle_unload.as_millis() as u64;
        let repo = Repo::new(repo_config, Box::new(RelayPolicy));
        let engine = Engine::spawn(
            repo,
            store,
            EngineConfig {
                tick: Duration::from_secs(1),
                watch_store: false,
            },
            Box::new(log_notice),
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| RelayError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| RelayError::Listen {
            addr: config.listen,
            source,
        })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            engine: engine.sender(),
            config,
            peer_id,
            next_conn: AtomicU64::new(1),
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new()
            .route("/", get(websocket))
            .route("/health", get(health))
            .with_state(state);
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "the relay stopped serving");
            }
        });
        tracing::info!(%addr, "relay listening");
        Ok(Relay {
            addr,
            storage_id,
            shutdown,
            server,
            engine,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ws://` URL clients connect to.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn storage_id(&self) -> &str {
        &self.storage_id
    }

    /// Closes every connection, finishes what the engine was writing and
    /// stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        let engine = self.engine;
        let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
        tracing::info!("relay stopped");
    }
}

fn log_notice(notice: Notice) {
    match notice {
        Notice::PeerJoined { conn, metadata, .. } => {
            tracing::info!(conn, ephemeral = metadata.is_ephemeral, "peer joined")
        }
        Notice::Closed { conn, reason } => tracing::info!(conn, %reason, "connection refused"),
        Notice::RemoteError { conn, message } => {
            tracing::info!(conn, %message, "a peer reported an error")
        }
        Notice::StorageFailed(reason) => tracing::error!(%reason, "storage failed"),
        Notice::Unavailable { .. } | Notice::Saved { .. } => {}
    }
}

async fn websocket(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> Response {
    let limit = state.config.max_frame_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| websocket::serve_connection(socket, state))
}

/// 200 only while the relay can read and write its database.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let check = state.engine.query(|_, store| store.check_writable());
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Some(Ok(()))) => (
            StatusCode::OK,
            "ok: the relay can read and write its database\n",
        )
            .into_response(),
        Ok(Some(Err(error))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {error}\n"),
        )
            .into_response(),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: the relay is shutting down\n",
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: the database did not answer within 5 seconds\n",
        )
            .into_response(),
    }
}
