//! The background sync: keeps one connection to the relay, reconnects by
//! itself with backoff and jitter, and records in the school's database
//! how it is going, for `partnerplan status`.
//!
//! It asks the relay for the listing of every document the school's
//! partnerships hold (the core tracks each as it is listed, now and as
//! partners create more), and records the partnerships' names and the
//! school's role in each in the `meta` table, for the app.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use partnerplan_sync::engine::{
    Engine, EngineConfig, EngineSender, Input, Notice, OUTBOX_FRAMES, Outgoing, Side,
};
use partnerplan_sync::message::{ListedPartnership, PublicKey};
use partnerplan_sync::repo::AllowAll;
use partnerplan_sync::{DocumentId, Effect, Repo, RepoConfig, Store, SyncProgress};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::error::ClientError;
use crate::school::{DATABASE_FILE, School};
use crate::status::{Receiving, StatusKey, now_unix};

#[derive(Clone)]
pub struct SyncOptions {
    /// Keep syncing until stopped, rather than until everything is in sync.
    pub watch: bool,
    /// For a single sync: give up after this long without progress (a
    /// first sync over a slow line may take longer, as long as documents
    /// keep arriving).
    pub timeout: Duration,
    /// Hears how fetching the listed documents goes, at most once a
    /// second while they arrive and once when they all have.
    pub on_receiving: Option<OnReceiving>,
}

/// What hears a sync's [`Receiving`] progress (the command line prints it).
pub type OnReceiving = Arc<dyn Fn(&Receiving) + Send + Sync>;

/// How often progress is told while documents arrive.
const RECEIVING_EVERY: Duration = Duration::from_secs(1);

/// What a sync knows of the documents the relay listed, across the
/// reconnections of one run: how big each is, and which have arrived
/// (so a cut line does not count them again).
#[derive(Default)]
struct Arrivals {
    listed: HashMap<DocumentId, u64>,
    arrived: HashSet<DocumentId>,
    /// What was last kept in `meta`, and when it was last told.
    kept: Option<Receiving>,
    told: Option<Instant>,
}

impl Arrivals {
    fn listed(&mut self, partnerships: &[ListedPartnership]) {
        for partnership in partnerships {
            for (index, id) in partnership.documents.iter().enumerate() {
                let size = partnership.sizes.get(index).copied().unwrap_or(0);
                self.listed.insert(*id, size);
            }
        }
    }

    /// Counts as arrived every listed document now in sync (or that the
    /// relay does not have, or that this school may only read, or whose
    /// changes the relay refused); returns whether any newly arrived.
    fn survey(&mut self, progress: &[Progress]) -> bool {
        let mut moved = false;
        for (id, progress, _) in progress {
            if self.listed.contains_key(id)
                && matches!(
                    progress,
                    SyncProgress::InSync
                        | SyncProgress::Unavailable
                        | SyncProgress::ReadOnly
                        | SyncProgress::Refused
                )
            {
                moved |= self.arrived.insert(*id);
            }
        }
        moved
    }

    fn receiving(&self) -> Receiving {
        let bytes_done = self
            .arrived
            .iter()
            .filter_map(|id| self.listed.get(id))
            .sum();
        Receiving {
            documents: self.listed.len(),
            documents_done: self.arrived.len(),
            bytes: self.listed.values().sum(),
            bytes_done,
        }
    }
}

/// What a finished single sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub documents: usize,
    /// Documents the relay does not have (opened by a wrong URL, or not
    /// yet shared by their school).
    pub unavailable: Vec<DocumentId>,
    /// Documents this school may only read: it holds all the relay has,
    /// and its own changes to them stay on this computer.
    pub read_only: Vec<DocumentId>,
    /// What the relay said went wrong while keeping the connection (for
    /// example that this school may only read a document).
    pub warnings: Vec<String>,
    /// Documents whose changes from this school the relay refused, with
    /// its reason: they stay on this computer and are not sent again.
    pub refused: Vec<(DocumentId, String)>,
    /// Documents whose changes the relay could not take just now (it was
    /// busy, or the school's daily allowance ran out), with its reason:
    /// they stay on this computer, and a later sync sends them.
    pub held: Vec<(DocumentId, String)>,
}

impl SyncReport {
    /// The error that tells the truth about refused changes, if any were.
    pub fn refusal(&self) -> Option<ClientError> {
        refusal(&self.refused)
    }
}

fn refusal(refused: &[(DocumentId, String)]) -> Option<ClientError> {
    if refused.is_empty() {
        return None;
    }
    let mut reasons: Vec<&str> = refused.iter().map(|(_, r)| r.as_str()).collect();
    reasons.dedup();
    Some(ClientError::ChangesRefused {
        documents: refused
            .iter()
            .map(|(id, _)| id.url())
            .collect::<Vec<_>>()
            .join(", "),
        reason: reasons.join("; "),
    })
}

const PING_EVERY: Duration = Duration::from_secs(20);
const SILENT_LIMIT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a single sync tries to reach a relay it has not reached yet
/// before saying it cannot: a person at a command line waits for an
/// answer, and the background sync keeps trying anyway.
const REACH_LIMIT: Duration = Duration::from_millis(3500);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a single sync waits for the relay's words about changes it
/// will not take from a school that may only read.
const READ_ONLY_SETTLE: Duration = Duration::from_secs(2);

/// What hears the documents that changed.
pub type Changed = Box<dyn Fn(&[DocumentId]) + Send>;

/// How a sync running inside the app talks to the rest of it.
pub struct Link {
    /// Receives the engine once it runs, so the app can hand it its
    /// edits at once ([`Input::Poke`]).
    pub engine: tokio::sync::watch::Sender<Option<EngineSender>>,
    /// Hears which documents changed in the store (partners' changes,
    /// another process's edits), so open pages refresh.
    pub changed: Changed,
}

/// `meta` key: the name of the school's partnership (its home one, where
/// the documents it creates belong, when it is in several).
pub const META_PARTNERSHIP_NAME: &str = "partnership_name";
/// `meta` key: the school's role in that partnership, `member` or
/// `viewer` (a viewer's changes are never kept).
pub const META_ROLE: &str = "role";
/// `meta` key: every partnership of the school, as a JSON list of
/// [`KnownPartnership`] (`{"id", "name", "role", "home", "documents"}`),
/// sorted by name.
pub const META_PARTNERSHIPS: &str = "partnerships";

/// One of the school's partnerships as the relay last listed it: what
/// the app knows of which documents are whose, and what the school may
/// do with them. From the relay's record of owners, never from what
/// documents say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownPartnership {
    pub id: String,
    pub name: String,
    /// `member` or `viewer`.
    pub role: String,
    /// Where the documents this school creates belong.
    pub home: bool,
    /// Its documents' ids, as listed (records made before listings
    /// carried them have none).
    #[serde(default)]
    pub documents: Vec<String>,
    /// Those of them one school alone writes (a local authority's
    /// comments to the partnership): the partnership's schools read them.
    #[serde(default)]
    pub shared: Vec<String>,
}

impl KnownPartnership {
    pub fn viewer(&self) -> bool {
        self.role == "viewer"
    }

    pub fn document_ids(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.documents.iter().filter_map(|d| d.parse().ok())
    }

    /// Whether one school alone writes `id` (a viewer's own, shared with
    /// this partnership to read).
    pub fn is_shared(&self, id: &DocumentId) -> bool {
        self.shared
            .iter()
            .any(|d| d.parse().ok().as_ref() == Some(id))
    }

    /// The partnerships recorded in `meta` (none if nothing readable).
    pub fn read(meta: Option<&str>) -> Vec<KnownPartnership> {
        meta.and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }
}

/// Syncs the school's documents with its relay: once (until everything is
/// in sync) or, with `watch`, until `stop` resolves.
pub async fn run(
    dir: &Path,
    options: SyncOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<SyncReport, ClientError> {
    run_linked(dir, options, stop, None).await
}

/// A school's sync core, as each sync process starts it: a new peer id
/// of its own, the store's storage id, trusting its relay, asking it for
/// the listing of the school's documents, giving the school's public
/// signing key in `join`. The random-schedule tests
/// (`tests/tests/random_schedules.rs`) run the same core.
pub fn school_core(storage_id: String, public_key: PublicKey) -> Repo {
    let peer_id = format!("school-{:016x}", rand::rng().random::<u64>());
    let mut config = RepoConfig::new(peer_id, Some(storage_id));
    config.ask_for_listing = true;
    config.signing_key = Some(public_key);
    config.client = Some(concat!("partnerplan ", env!("CARGO_PKG_VERSION")).into());
    Repo::new(config, Box::new(AllowAll))
}

/// [`run`], inside a program that also edits (the app).
pub async fn run_linked(
    dir: &Path,
    options: SyncOptions,
    stop: impl std::future::Future<Output = ()>,
    link: Option<Link>,
) -> Result<SyncReport, ClientError> {
    let school = School::open(dir)?;
    let url = school.relay()?.ok_or(ClientError::NoRelay)?;
    let token = school.token()?;
    // Given in `join`, so the relay publishes it to the partners.
    let public_key = crate::school::signing_key(dir)?.verifying_key().to_bytes();
    let tls = if url.starts_with("wss://") {
        Some(crate::tls::client_config(school.ca_file()?.as_deref())?)
    } else {
        None
    };
    drop(school);
    let mut store = Store::open(dir.join(DATABASE_FILE))?;
    let storage_id = store.storage_id()?;
    let repo = school_core(storage_id, public_key);
    let (notices_tx, mut notices) = mpsc::unbounded_channel();
    let (engine_link, changed) = match link {
        Some(Link { engine, changed }) => (Some(engine), Some(changed)),
        None => (None, None),
    };
    let engine = Engine::spawn(
        repo,
        store,
        EngineConfig {
            tick: Duration::from_millis(200),
            watch_store: true,
            side: Side::School,
            register: None,
            release_memory: None,
        },
        Box::new(move |notice| {
            if let (Some(link), Notice::Saved { documents } | Notice::Stored { documents }) =
                (&changed, &notice)
            {
                link(documents);
            }
            let _ = notices_tx.send(notice);
        }),
    );
    let sender = engine.sender();
    if let Some(engine) = engine_link {
        let _ = engine.send(Some(sender.clone()));
    }
    set_status(
        &sender,
        &[
            (StatusKey::Pid, std::process::id().to_string()),
            (StatusKey::Connected, "no".into()),
        ],
    )
    .await;

    let mut deadline = (!options.watch).then(|| Instant::now() + options.timeout);
    let mut arrivals = Arrivals::default();
    // Until the relay answers once, a single sync gives up after
    // REACH_LIMIT (or its own deadline, if sooner).
    let mut reach_deadline = deadline.map(|d| d.min(Instant::now() + REACH_LIMIT));
    let mut attempt: u32 = 0;
    let mut conn: u64 = 0;
    let mut last_error: Option<ClientError> = None;
    tokio::pin!(stop);
    let result = loop {
        conn += 1;
        let remaining = reach_deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let connect_limit = remaining.map_or(CONNECT_TIMEOUT, |r| r.min(CONNECT_TIMEOUT));
        let connected = tokio::select! {
            result = tokio::time::timeout(connect_limit, connect(&url, token.as_deref(), tls.clone())) => Some(result),
            _ = &mut stop => None,
        };
        let ended = match connected {
            None => break Ok(None),
            Some(Ok(Ok((socket, _)))) => {
                let ended = drive(
                    &sender,
                    &mut notices,
                    socket,
                    Drive {
                        conn,
                        url: &url,
                        options: &options,
                        deadline: &mut deadline,
                        arrivals: &mut arrivals,
                    },
                    &mut stop,
                    &mut attempt,
                )
                .await;
                // Documents that kept arriving moved the deadline on.
                reach_deadline = deadline;
                sender.send(Input::Closed { conn });
                ended
            }
            Some(Ok(Err(error))) => {
                let detail = describe_ws_error(&error);
                Ended::Failed(if detail.contains("certificate") {
                    ClientError::Untrusted {
                        url: url.clone(),
                        detail,
                    }
                } else {
                    ClientError::Unreachable {
                        url: url.clone(),
                        detail,
                    }
                })
            }
            // Cut short by the deadline: what went wrong before says more.
            Some(Err(_))
                if last_error.is_some() && reach_deadline.is_some_and(|d| Instant::now() >= d) =>
            {
                break Err(last_error.take().expect("checked"));
            }
            Some(Err(_)) => Ended::Failed(ClientError::Unreachable {
                url: url.clone(),
                detail: format!(
                    "no answer in {} seconds; check this computer's internet connection, or ask the lead school whether its relay is running",
                    connect_limit.as_secs_f64().round()
                ),
            }),
        };
        match ended {
            Ended::Synced(report) => break Ok(Some(report)),
            Ended::Failed(ClientError::Timeout { waiting, .. }) => {
                break Err(ClientError::Timeout {
                    seconds: options.timeout.as_secs(),
                    waiting,
                });
            }
            Ended::Stopped => break Ok(None),
            // A single sync stops at a refusal: trying again at once would
            // be refused again. The background sync keeps trying, with
            // backoff, in case the relay's operator fixes it.
            Ended::Failed(
                error @ (ClientError::Refused { .. } | ClientError::Untrusted { .. }),
            ) if !options.watch => {
                break Err(error);
            }
            Ended::Failed(error) => {
                tracing::info!(%error, "sync connection ended");
                set_status(
                    &sender,
                    &[
                        (StatusKey::Connected, "no".into()),
                        (StatusKey::LastError, error.to_string()),
                    ],
                )
                .await;
                last_error = Some(error);
            }
        }
        if let Some(deadline) = reach_deadline
            && Instant::now() >= deadline
        {
            break Err(last_error.take().unwrap_or(ClientError::Timeout {
                seconds: options.timeout.as_secs(),
                waiting: "the relay".into(),
            }));
        }
        let delay = backoff(attempt);
        attempt = attempt.saturating_add(1);
        let delay = reach_deadline.map_or(delay, |d| {
            delay.min(d.saturating_duration_since(Instant::now()))
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut stop => break Ok(None),
        }
    };
    set_status(
        &sender,
        &[
            (StatusKey::Connected, "no".into()),
            (StatusKey::Pid, String::new()),
        ],
    )
    .await;
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .ok();
    match result {
        Ok(Some(report)) => Ok(report),
        Ok(None) => Ok(SyncReport {
            documents: 0,
            unavailable: Vec::new(),
            read_only: Vec::new(),
            warnings: Vec::new(),
            refused: Vec::new(),
            held: Vec::new(),
        }),
        Err(error) => Err(error),
    }
}

enum Ended {
    Synced(SyncReport),
    Stopped,
    Failed(ClientError),
}

/// What one connection's run works with and moves on.
struct Drive<'a> {
    conn: u64,
    url: &'a str,
    options: &'a SyncOptions,
    /// When a single sync gives up; moved on while documents arrive.
    deadline: &'a mut Option<Instant>,
    arrivals: &'a mut Arrivals,
}

/// Runs one connection until it ends.
async fn drive<S>(
    sender: &EngineSender,
    notices: &mut mpsc::UnboundedReceiver<Notice>,
    socket: tokio_tungstenite::WebSocketStream<S>,
    run: Drive<'_>,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    attempt: &mut u32,
) -> Ended
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Drive {
        conn,
        url,
        options,
        deadline,
        arrivals,
    } = run;
    let (outbox, mut outgoing) = mpsc::channel(OUTBOX_FRAMES);
    sender.send(Input::Open {
        conn,
        initiate: true,
        outbox,
        grant: None,
    });
    let (mut sink, mut stream) = socket.split();
    let mut joined = false;
    // A relay that lists documents says so as it answers; until the
    // listing has ended, this school cannot be in sync.
    let mut expect_listing = false;
    let mut listed = false;
    let mut partnerships: BTreeMap<String, ListedPartnership> = BTreeMap::new();
    let mut in_sync_now = false;
    let mut warnings: Vec<String> = Vec::new();
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let mut read_only_since: Option<Instant> = None;
    let mut recorded_refusals: Vec<Refusal> = Vec::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    // A watching sync has no deadline: its sleep is never looked at.
    let until = tokio::time::sleep_until(
        deadline
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))
            .into(),
    );
    tokio::pin!(until);
    let refused = |reason: String| {
        Ended::Failed(ClientError::Refused {
            url: url.to_string(),
            reason,
        })
    };
    loop {
        tokio::select! {
            out = outgoing.recv() => match out {
                Some(Outgoing::Frame(bytes)) => {
                    if sink.send(WsMessage::Binary(bytes.into())).await.is_err() {
                        return Ended::Failed(dropped(url));
                    }
                }
                Some(Outgoing::Close(reason)) => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    return refused(reason);
                }
                None => return Ended::Failed(dropped(url)),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    last_heard = Instant::now();
                    sender.send(Input::Frame { conn, bytes: bytes.to_vec(), reserved: None });
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    // The error message, if the relay sent one, came first
                    // and is handled by the engine; give it a moment.
                    if let Some(Outgoing::Close(reason)) = next_close(&mut outgoing).await {
                        return refused(reason);
                    }
                    drain_warnings(notices, conn, &mut warnings);
                    let reason = warnings
                        .last()
                        .cloned()
                        .or_else(|| frame.map(|f| f.reason.to_string()).filter(|r| !r.is_empty()));
                    return match reason {
                        Some(reason) => refused(reason),
                        None => Ended::Failed(dropped(url)),
                    };
                }
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(_)) | None => {
                    if let Some(Outgoing::Close(reason)) = next_close(&mut outgoing).await {
                        return refused(reason);
                    }
                    drain_warnings(notices, conn, &mut warnings);
                    if let Some(reason) = warnings.last() {
                        return refused(reason.clone());
                    }
                    return Ended::Failed(dropped(url));
                }
            },
            notice = notices.recv() => match notice {
                Some(Notice::Core(Effect::PeerJoined { conn: c, metadata, .. })) if c == conn => {
                    joined = true;
                    expect_listing = metadata.listing;
                    *attempt = 0;
                    let mut status = vec![(StatusKey::Connected, "yes".to_string()), (StatusKey::LastError, String::new()), (StatusKey::Refused, String::new())];
                    recorded_refusals.clear();
                    if let Some(storage_id) = metadata.storage_id {
                        status.push((StatusKey::RelayStorageId, storage_id));
                    }
                    set_status(sender, &status).await;
                }
                Some(Notice::Core(Effect::RemoteError { conn: c, message })) if c == conn => {
                    tracing::warn!(%message, "the relay reported a problem");
                    set_status(sender, &[(StatusKey::LastError, format!("the relay said: {message}"))]).await;
                    if !warnings.contains(&message) {
                        warnings.push(message);
                    }
                }
                Some(Notice::Core(Effect::Listed { conn: c, partnerships: listing, more })) if c == conn => {
                    arrivals.listed(&listing);
                    // A listing comes in parts, and a document claimed
                    // later comes alone: each adds to what was listed.
                    // The latest message says the rest (name, role,
                    // schools) as it is now.
                    for mut partnership in listing {
                        if let Some(known) = partnerships.remove(&partnership.id) {
                            let mut documents = known.documents;
                            for id in partnership.documents {
                                if !documents.contains(&id) {
                                    documents.push(id);
                                }
                            }
                            partnership.documents = documents;
                            let mut shared = known.shared;
                            for id in partnership.shared {
                                if !shared.contains(&id) {
                                    shared.push(id);
                                }
                            }
                            partnership.shared = shared;
                        }
                        partnerships.insert(partnership.id.clone(), partnership);
                    }
                    if !more {
                        listed = true;
                        record_partnerships(sender, &partnerships).await;
                    }
                }
                Some(Notice::StorageFailed(reason)) => {
                    tracing::error!(%reason, "storage failed");
                    set_status(sender, &[(StatusKey::LastError, reason)]).await;
                }
                _ => {}
            },
            _ = check.tick(), if joined && (listed || !expect_listing) => {
                let survey = survey(sender, conn).await;
                if let Some((_, progress)) = &survey
                    && arrivals.survey(progress)
                    && let Some(deadline) = deadline.as_mut()
                {
                    // Documents keep arriving: a slow line is not a dead one.
                    *deadline = Instant::now() + options.timeout;
                    until.as_mut().reset((*deadline).into());
                }
                tell_receiving(sender, arrivals, options).await;
                let (report, refused) = match &survey {
                    Some((announcing, progress)) => in_sync(*announcing, progress),
                    None => (None, Vec::new()),
                };
                if refused != recorded_refusals {
                    // Said where `status` and the app look, as it happens.
                    record_refusals(sender, &refused).await;
                    recorded_refusals = refused;
                }
                let now_in_sync = report.is_some();
                // Written when sync completes, then with each heartbeat
                // while it stays complete: not on every check.
                if now_in_sync && !in_sync_now {
                    set_status(sender, &[(StatusKey::LastSuccess, now_unix().to_string())]).await;
                }
                in_sync_now = now_in_sync;
                // A document this school may only read, holding changes
                // of ours: the relay says so in words once it has seen
                // them; wait a moment for that, so the report gives them.
                let settling = report.as_ref().is_some_and(|r| !r.read_only.is_empty())
                    && warnings.is_empty()
                    && *read_only_since.get_or_insert_with(Instant::now) + READ_ONLY_SETTLE > Instant::now();
                if let Some(mut report) = report
                    && deadline.is_some()
                    && !settling
                {
                    report.warnings = std::mem::take(&mut warnings);
                    let _ = sink.send(WsMessage::Close(None)).await;
                    return Ended::Synced(report);
                }
            }
            _ = heartbeat.tick() => {
                let now = now_unix().to_string();
                let mut status = vec![(StatusKey::Heartbeat, now.clone())];
                if in_sync_now {
                    status.push((StatusKey::LastSuccess, now));
                }
                set_status(sender, &status).await;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENT_LIMIT {
                    return Ended::Failed(ClientError::Unreachable { url: url.to_string(), detail: "the relay stopped answering".into() });
                }
                let _ = sink.send(WsMessage::Ping(Vec::new().into())).await;
            }
            _ = &mut until, if deadline.is_some() => {
                // Changes the relay refused would not be sent next time.
                // Only those refused for good: the others go next time.
                let refused: Vec<(DocumentId, String)> = match survey(sender, conn).await {
                    Some((announcing, progress)) => in_sync(announcing, &progress)
                        .1
                        .into_iter()
                        .filter(|(_, _, passes)| !passes)
                        .map(|(id, reason, _)| (id, reason))
                        .collect(),
                    None => Vec::new(),
                };
                if let Some(error) = refusal(&refused) {
                    return Ended::Failed(error);
                }
                let waiting = waiting_for(sender, conn).await;
                return Ended::Failed(ClientError::Timeout { seconds: 0, waiting });
            }
            _ = stop.as_mut() => {
                let _ = sink.send(WsMessage::Close(None)).await;
                return Ended::Stopped;
            }
        }
    }
}

async fn next_close(outgoing: &mut mpsc::Receiver<Outgoing>) -> Option<Outgoing> {
    let wait = async {
        while let Some(out) = outgoing.recv().await {
            if matches!(out, Outgoing::Close(_)) {
                return Some(out);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_millis(300), wait)
        .await
        .ok()
        .flatten()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket, presenting the school's token as a bearer token.
async fn connect(
    url: &str,
    token: Option<&str>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<
    (
        Socket,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    if let Some(token) = token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        request.headers_mut().insert("authorization", value);
    }
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    // Nagle off: small sync frames go out at once.
    tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await
}

/// Collects what the relay said just before it closed (the engine may
/// still have been reading it when the close arrived).
fn drain_warnings(
    notices: &mut mpsc::UnboundedReceiver<Notice>,
    conn: u64,
    warnings: &mut Vec<String>,
) {
    while let Ok(notice) = notices.try_recv() {
        if let Notice::Core(Effect::RemoteError { conn: c, message }) = notice
            && c == conn
            && !warnings.contains(&message)
        {
            warnings.push(message);
        }
    }
}

fn dropped(url: &str) -> ClientError {
    ClientError::Unreachable {
        url: url.to_string(),
        detail: "the connection dropped".into(),
    }
}

/// Keeps the school's partnerships, as the relay listed them, in `meta`,
/// and every school's signing keys it named with those learned before.
async fn record_partnerships(
    sender: &EngineSender,
    partnerships: &BTreeMap<String, ListedPartnership>,
) {
    let listed: Vec<ListedPartnership> = partnerships.values().cloned().collect();
    let keys = sender
        .query(move |_, store| {
            let before = store
                .meta(crate::signatures::META_SIGNING_KEYS)
                .ok()
                .flatten();
            crate::signatures::with_listed(before.as_deref(), &listed)
        })
        .await
        .flatten();
    let mut list: Vec<&ListedPartnership> = partnerships.values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let known: Vec<KnownPartnership> = list
        .iter()
        .map(|p| KnownPartnership {
            id: p.id.clone(),
            name: p.name.clone(),
            role: p.role.as_str().to_string(),
            home: p.home,
            documents: p.documents.iter().map(|d| d.to_string()).collect(),
            shared: p.shared.iter().map(|d| d.to_string()).collect(),
        })
        .collect();
    let mut values = vec![(
        META_PARTNERSHIPS.to_string(),
        serde_json::to_string(&known).unwrap_or_else(|_| "[]".into()),
    )];
    if let Some(main) = list.iter().find(|p| p.home).or(list.first()) {
        values.push((META_PARTNERSHIP_NAME.to_string(), main.name.clone()));
        values.push((META_ROLE.to_string(), main.role.as_str().to_string()));
    }
    if let Some(keys) = keys {
        values.push((crate::signatures::META_SIGNING_KEYS.to_string(), keys));
    }
    let _ = sender.set_meta(values).await;
}

/// A document's progress with the relay, and the relay's words if it
/// refused this school's changes to it, with whether that refusal passes
/// (the changes then go again by themselves).
type Progress = (DocumentId, SyncProgress, Option<(String, bool)>);

/// A document whose changes the relay refused: its words, and whether
/// the refusal passes.
type Refusal = (DocumentId, String, bool);

/// Where every tracked document stands with the relay, and whether any
/// waits to start syncing.
async fn survey(sender: &EngineSender, conn: u64) -> Option<(bool, Vec<Progress>)> {
    sender
        .query(move |repo, store| {
            let tracked = store.tracked_after(0).unwrap_or_default();
            let progress = tracked
                .into_iter()
                .map(|(_, id)| {
                    let refusal = repo
                        .refusal(&id, conn)
                        .map(|reason| (reason.to_string(), repo.refusal_passes(&id, conn)));
                    (id, repo.progress(&id, conn), refusal)
                })
                .collect::<Vec<_>>();
            (repo.announcing() > 0, progress)
        })
        .await
}

/// Keeps the progress of the listed documents in `meta` when it moves,
/// and tells `on_receiving` (at most once a second, and at the end).
async fn tell_receiving(sender: &EngineSender, arrivals: &mut Arrivals, options: &SyncOptions) {
    if arrivals.listed.is_empty() {
        return;
    }
    let receiving = arrivals.receiving();
    if arrivals.kept == Some(receiving) {
        return;
    }
    let first = arrivals.kept.is_none();
    arrivals.kept = Some(receiving);
    // Kept even when complete at once: what an earlier run left is gone.
    let kept = if receiving.complete() {
        String::new()
    } else {
        receiving.to_meta()
    };
    set_status(sender, &[(StatusKey::Receiving, kept)]).await;
    // Nothing to tell of a sync that had every document at once.
    if first && receiving.complete() {
        return;
    }
    let due = arrivals
        .told
        .is_none_or(|told| told.elapsed() >= RECEIVING_EVERY);
    if let Some(on_receiving) = &options.on_receiving
        && (due || receiving.complete())
    {
        arrivals.told = Some(Instant::now());
        on_receiving(&receiving);
    }
}

/// A report when every tracked document is in sync with the relay (or
/// the relay does not have it either, or refused this school's changes
/// to it), and none waits to start syncing; and, either way, the
/// documents whose changes the relay refused, with its reasons.
fn in_sync(announcing: bool, progress: &[Progress]) -> (Option<SyncReport>, Vec<Refusal>) {
    let refused: Vec<Refusal> = progress
        .iter()
        .filter_map(|(id, _, refusal)| {
            let (reason, passes) = refusal.clone()?;
            Some((*id, reason, passes))
        })
        .collect();
    let mut unavailable = Vec::new();
    let mut read_only = Vec::new();
    let mut done = !announcing;
    for (id, progress, _) in progress {
        match progress {
            SyncProgress::InSync | SyncProgress::Refused => {}
            SyncProgress::Unavailable => unavailable.push(*id),
            SyncProgress::ReadOnly => read_only.push(*id),
            SyncProgress::Syncing | SyncProgress::NotSyncing => done = false,
        }
    }
    let report = done.then(|| SyncReport {
        documents: progress.len(),
        unavailable,
        read_only,
        warnings: Vec::new(),
        refused: refused
            .iter()
            .filter(|(_, _, passes)| !passes)
            .map(|(id, reason, _)| (*id, reason.clone()))
            .collect(),
        held: refused
            .iter()
            .filter(|(_, _, passes)| *passes)
            .map(|(id, reason, _)| (*id, reason.clone()))
            .collect(),
    });
    (report, refused)
}

/// Keeps the documents whose changes the relay refused in `meta`, for
/// `status` and the app.
async fn record_refusals(sender: &EngineSender, refused: &[Refusal]) {
    let value = if refused.is_empty() {
        String::new()
    } else {
        serde_json::Value::Array(
            refused
                .iter()
                .map(|(id, reason, passes)| {
                    serde_json::json!({ "url": id.url(), "reason": reason, "passes": passes })
                })
                .collect(),
        )
        .to_string()
    };
    set_status(sender, &[(StatusKey::Refused, value)]).await;
}

async fn waiting_for(sender: &EngineSender, conn: u64) -> String {
    let pending = sender
        .query(move |repo, store| {
            let tracked = store.tracked_after(0).unwrap_or_default();
            tracked
                .into_iter()
                .filter(|(_, id)| {
                    !matches!(
                        repo.progress(id, conn),
                        SyncProgress::InSync
                            | SyncProgress::Unavailable
                            | SyncProgress::ReadOnly
                            | SyncProgress::Refused
                    )
                })
                .map(|(_, id)| id.url())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
    if pending.is_empty() {
        "the relay".into()
    } else {
        pending.join(", ")
    }
}

async fn set_status(sender: &EngineSender, values: &[(StatusKey, String)]) {
    let values: Vec<(StatusKey, String)> = values.to_vec();
    let values = values
        .into_iter()
        .map(|(key, value)| (key.as_str().to_string(), value))
        .collect();
    let _ = sender.set_meta(values).await;
}

fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempt.min(6));
    let capped = base.min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.5..=1.0);
    capped.mul_f64(jitter)
}

fn describe_ws_error(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "nothing is listening there; is the relay running?".into()
            }
            _ => io.to_string(),
        },
        Error::Http(response) => format!("it answered with HTTP status {}", response.status()),
        Error::Url(url) => format!("the address is not valid: {url}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_passes_is_held_not_refused() {
        let (busy, over) = (DocumentId::random(), DocumentId::random());
        let progress = vec![
            (
                busy,
                SyncProgress::Refused,
                Some(("the relay is busy".to_string(), true)),
            ),
            (
                over,
                SyncProgress::Refused,
                Some(("over this relay's limit".to_string(), false)),
            ),
        ];
        let (report, recorded) = in_sync(false, &progress);
        let report = report.expect("every document is settled for now");
        assert_eq!(report.held, vec![(busy, "the relay is busy".to_string())]);
        assert_eq!(
            report.refused,
            vec![(over, "over this relay's limit".to_string())]
        );
        assert!(
            matches!(report.refusal(), Some(ClientError::ChangesRefused { documents, .. }) if documents == over.url()),
            "only the refusal for good is an error"
        );
        assert_eq!(
            recorded.len(),
            2,
            "both are recorded for status and the app"
        );
    }
}
