//! The driver that runs a [`Repo`] against a [`Store`]: one plain thread
//! that owns both, takes [`Input`]s from the network tasks and carries out
//! the core's effects.
//!
//! Each turn takes every input waiting (up to a batch), runs them through
//! the core, writes all resulting changes in one SQLite transaction, and
//! only then hands frames to the connections. So a change is confirmed to
//! its sender only once it is on disk, and a busy relay pays for one
//! commit per batch rather than one per message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::access::{Grant, Register};
use crate::document_id::DocumentId;
use crate::repo::{ConnId, Effect, Event, Repo, Work, Worked};
use crate::store::{Store, StoreError, ToCompact, Write};

/// The most frames queued for one connection before it counts as too slow
/// and is closed.
pub const OUTBOX_FRAMES: usize = 4096;

const BATCH: usize = 512;

/// How often a relay's engine looks at the register's version for the
/// admin commands' changes.
const REGISTER_POLL: Duration = Duration::from_millis(250);

/// Work to run on the engine thread, reading the core and the store. It
/// cannot write: every write goes through a turn, so it commits with the
/// writes it belongs with (see [`Input::SetMeta`]).
pub type Query = Box<dyn FnOnce(&Repo, &Store) + Send>;

/// Where the answer to a write goes once the turn has committed (or failed).
pub type Done = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// What the network side tells the engine.
pub enum Input {
    Open {
        conn: ConnId,
        initiate: bool,
        outbox: tokio::sync::mpsc::Sender<Outgoing>,
        /// What the connection authenticated as, for the access policy.
        grant: Option<Grant>,
    },
    Frame {
        conn: ConnId,
        bytes: Vec<u8>,
        /// Its place in the input's byte limit, given back once the frame
        /// is handled (see [`InputLimit`]).
        reserved: Option<Reserved>,
    },
    Closed {
        conn: ConnId,
    },
    /// The connection's writer has written this many bytes of the frames
    /// the engine queued for it (see `RepoConfig::outbox_bytes`).
    Written {
        conn: ConnId,
        bytes: usize,
    },
    /// Heavy work the engine handed its worker thread is done.
    Worked(Worked),
    /// A snapshot made on the worker thread to replace a document's
    /// chunks up to `upto_seq` (`None`: they could not be read).
    Compacted {
        document_id: DocumentId,
        upto_seq: i64,
        snapshot: Option<Vec<u8>>,
    },
    Track(DocumentId),
    /// Another part of this process (the app) just stored local changes:
    /// look at the store now rather than at the next tick, so they go to
    /// peers at once.
    Poke,
    /// Runs on the engine thread after the turn's writes.
    Query(Query),
    /// Keeps these values in the store's `meta` table, committed with the
    /// turn's other writes; `done` hears whether they were.
    SetMeta {
        values: Vec<(String, String)>,
        done: Option<Done>,
    },
    /// Look at the register now; `done` hears once any change is applied
    /// and published.
    RefreshRegister(tokio::sync::oneshot::Sender<()>),
    /// Caps the store's size, so tests can fill the "disk".
    #[cfg(test)]
    LimitPages(i64),
    Shutdown,
}

/// What the engine's worker thread does.
enum Job {
    Work(Work),
    Compact(ToCompact),
}

/// What the engine tells one connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Vec<u8>),
    /// Close the connection, saying why.
    Close(String),
}

/// What happened, for the program around the engine (status, logs).
#[derive(Debug, Clone)]
pub enum Notice {
    /// An effect of the core that only informs (`PeerJoined`,
    /// `Unavailable`, `RemoteError`, `Listed`), or a `Close`, passed on
    /// as the core gave it.
    Core(Effect),
    /// Changes that peers sent to these documents were committed.
    Saved {
        documents: Vec<DocumentId>,
    },
    /// Another process or part of this one stored changes to these
    /// documents (the command line, the app), found by watching the store.
    Stored {
        documents: Vec<DocumentId>,
    },
    StorageFailed(String),
    /// A turn that handled frames from connections is done: for each
    /// frame, how long it took from reaching the engine's queue to its
    /// writes committed and the answers handed to connections (the
    /// relay's sync latency).
    Turn {
        latencies: Vec<Duration>,
    },
}

#[derive(Debug)]
pub struct EngineConfig {
    /// How often the core hears the time (idle unloading).
    pub tick: Duration,
    /// Watch the store for changes written by other processes (the
    /// client's command line), and sync every document it tracks.
    pub watch_store: bool,
    /// Which side this engine serves, for the sentences it says itself.
    pub side: Side,
    /// On a relay: watch the register in the store for the admin
    /// commands' changes, hand each new one to the core (which cuts
    /// connections that lost rights) and publish it here, for the HTTP
    /// side to authenticate by. Holds the register the core started with.
    pub register: Option<tokio::sync::watch::Sender<Arc<Register>>>,
    /// Called on the engine thread after documents left memory, to hand
    /// what they used back to the system: the relay's allocator keeps
    /// freed memory for the thread that freed it otherwise, and an idle
    /// relay's engine thread may not allocate again for a long while.
    pub release_memory: Option<fn()>,
}

/// The relay and the client both run the engine; what it tells people
/// depends on which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Relay,
    School,
}

impl Side {
    /// Told to a peer whose message made the core fail.
    fn could_not_handle(self) -> &'static str {
        match self {
            Side::Relay => {
                "the relay could not handle the last message, so it closed this connection; the relay's operator has been told"
            }
            Side::School => {
                "this computer could not handle the last message from the relay, so it closed the connection; sync again, and if this keeps happening, report it"
            }
        }
    }

    /// Why a connection is closed when the turn's writes failed.
    fn could_not_save(self) -> &'static str {
        match self {
            Side::Relay => {
                "the relay could not save changes just now; yours are kept on your side and will be sent again"
            }
            Side::School => {
                "this computer could not save the changes it received just now (is its disk full?); nothing is lost, and they are fetched again on the next sync"
            }
        }
    }
}

/// Bounds, in bytes, the frames waiting in the engine's input: the
/// network side reserves room for each frame before handing it over and
/// the engine gives it back once the frame is handled, so while the engine
/// is busy, connections stop reading (their peers' sends wait in TCP)
/// instead of its queue growing. Each connection may have `per_connection`
/// bytes waiting, all together `total`; a frame larger than either takes
/// all of it. Counted in KiB.
#[derive(Clone)]
pub struct InputLimit {
    total: Arc<tokio::sync::Semaphore>,
    total_kib: u32,
    per_connection_kib: u32,
}

/// One connection's share of an [`InputLimit`].
pub struct ConnectionInput {
    own: Arc<tokio::sync::Semaphore>,
    limit: InputLimit,
}

/// Room reserved for one frame; given back when dropped.
pub struct Reserved {
    _own: tokio::sync::OwnedSemaphorePermit,
    _total: tokio::sync::OwnedSemaphorePermit,
}

impl InputLimit {
    pub fn new(total_bytes: usize, per_connection_bytes: usize) -> InputLimit {
        let kib = |bytes: usize| u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let total_kib = kib(total_bytes).min(tokio::sync::Semaphore::MAX_PERMITS as u32);
        InputLimit {
            total: Arc::new(tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
            per_connection_kib: kib(per_connection_bytes).min(total_kib),
        }
    }

    pub fn connection(&self) -> ConnectionInput {
        ConnectionInput {
            own: Arc::new(tokio::sync::Semaphore::new(
                self.per_connection_kib as usize,
            )),
            limit: self.clone(),
        }
    }
}

impl ConnectionInput {
    /// Waits until a frame of `len` bytes may join the engine's input.
    pub async fn reserve(&self, len: usize) -> Reserved {
        let kib = u32::try_from(len.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let own = self
            .own
            .clone()
            .acquire_many_owned(kib.min(self.limit.per_connection_kib))
            .await
            .expect("the semaphore is never closed");
        let total = self
            .limit
            .total
            .clone()
            .acquire_many_owned(kib.min(self.limit.total_kib))
            .await
            .expect("the semaphore is never closed");
        Reserved {
            _own: own,
            _total: total,
        }
    }
}

/// A handle to the engine thread. Cloning the sender is how network tasks
/// talk to it.
pub struct Engine {
    tx: mpsc::Sender<(Instant, Input)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
pub struct EngineSender(mpsc::Sender<(Instant, Input)>);

impl EngineSender {
    /// Hands an input to the engine; false once the engine has stopped.
    /// The time it was handed over goes with it, for [`Notice::Turn`].
    pub fn send(&self, input: Input) -> bool {
        self.0.send((Instant::now(), input)).is_ok()
    }

    /// Runs `f` on the engine thread and returns its answer.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Repo, &Store) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.send(Input::Query(Box::new(move |repo, store| {
            let _ = tx.send(f(repo, store));
        })));
        if !sent {
            return None;
        }
        rx.await.ok()
    }

    /// Keeps `values` in the store's `meta` table, in the next turn's
    /// transaction. `None` once the engine has stopped.
    pub async fn set_meta(&self, values: Vec<(String, String)>) -> Option<Result<(), StoreError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !self.send(Input::SetMeta {
            values,
            done: Some(tx),
        }) {
            return None;
        }
        rx.await.ok()
    }

    /// Makes the engine look at the register now, so what it publishes is
    /// the latest; returns once it has.
    pub async fn refresh_register(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.send(Input::RefreshRegister(tx)) {
            let _ = rx.await;
        }
    }

    /// Proves the store can be read and written, for health checks.
    pub async fn check_writable(&self) -> Option<Result<(), StoreError>> {
        let now = format!("{:?}", std::time::SystemTime::now());
        self.set_meta(vec![("last_health_check".into(), now)]).await
    }
}

/// The worker's niceness: on a two-core school computer a heavy job
/// keeps one core busy, and the engine, which answers every school, must
/// get the other whenever it has something to do.
const WORKER_NICENESS: i32 = 10;

/// Lowers the calling thread's scheduling priority to
/// [`WORKER_NICENESS`]. On Linux niceness belongs to each thread, so the
/// engine and the network threads keep theirs; elsewhere, and where the
/// system refuses, the worker runs at the usual priority.
fn yield_to_the_engine() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take and return plain integers and
    // touch no memory of ours.
    unsafe {
        let thread = libc::gettid() as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, thread, WORKER_NICENESS) != 0 {
            tracing::debug!("the worker thread keeps the usual priority");
        }
    }
}

impl Engine {
    pub fn spawn(
        repo: Repo,
        store: Store,
        config: EngineConfig,
        notify: Box<dyn FnMut(Notice) + Send>,
    ) -> Engine {
        let (tx, rx) = mpsc::channel::<(Instant, Input)>();
        // Heavy automerge work (applying a large message to one document)
        // runs here, so the engine keeps serving every other document.
        let (work_tx, work_rx) = mpsc::channel::<Job>();
        let worked = tx.clone();
        std::thread::Builder::new()
            .name("partnerplan-worker".into())
            .spawn(move || {
                yield_to_the_engine();
                for job in work_rx {
                    let done = match job {
                        Job::Work(work) => Input::Worked(work.run()),
                        Job::Compact(compact) => Input::Compacted {
                            document_id: compact.document_id,
                            upto_seq: compact.upto_seq,
                            snapshot: std::panic::catch_unwind(|| compact.snapshot())
                                .ok()
                                .flatten(),
                        },
                    };
                    if worked.send((Instant::now(), done)).is_err() {
                        return;
                    }
                }
            })
            .expect("the worker thread could not start");
        let thread = std::thread::Builder::new()
            .name("partnerplan-engine".into())
            .spawn(move || {
                let mut worker = Worker {
                    repo,
                    store,
                    config,
                    notify,
                    work: work_tx,
                    compacting: HashSet::new(),
                    outboxes: HashMap::new(),
                    last_tick: Instant::now(),
                    last_register_check: Instant::now(),
                    clock: (crate::clock::unix_millis(), Instant::now()),
                    own_seqs: HashSet::new(),
                    seen_chunk_seq: None,
                    seen_tracked_seq: 0,
                    pending: VecDeque::new(),
                };
                worker.run(rx);
            })
            .expect("the engine thread could not start");
        Engine {
            tx,
            thread: Some(thread),
        }
    }

    pub fn sender(&self) -> EngineSender {
        EngineSender(self.tx.clone())
    }

    /// Finishes the current turn (its writes are committed) and stops.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send((Instant::now(), Input::Shutdown));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    repo: Repo,
    store: Store,
    config: EngineConfig,
    notify: Box<dyn FnMut(Notice) + Send>,
    /// The worker thread's queue (see `Effect::Work`).
    work: mpsc::Sender<Job>,
    /// Documents whose snapshot the worker is making.
    compacting: HashSet<DocumentId>,
    outboxes: HashMap<ConnId, tokio::sync::mpsc::Sender<Outgoing>>,
    last_tick: Instant,
    last_register_check: Instant,
    /// The wall-clock time (ms since 1970) when the engine started, and
    /// that instant: the core's clock counts on from it, so it never goes
    /// back when the wall clock does (held messages would wait for it).
    clock: (u64, Instant),
    /// Chunks this engine wrote, so the store watcher skips them.
    own_seqs: HashSet<i64>,
    seen_chunk_seq: Option<i64>,
    seen_tracked_seq: i64,
    /// Inputs the engine gave itself (a slow connection to drop).
    pending: VecDeque<Input>,
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<(Instant, Input)>) {
        if self.config.watch_store {
            // From here on, what other processes write arrives as local
            // changes: a document loaded before the first tick (listed by
            // the relay as the connection opens) misses nothing.
            self.seen_chunk_seq = self.store.last_chunk_seq().ok();
        }
        // The core knows the time before the first connection opens.
        let now_ms = self.now_ms();
        let effects = self.repo.handle(Event::Tick { now_ms }).into();
        let _ = self.carry_out(effects, Vec::new(), HashSet::new());
        loop {
            let mut inputs: Vec<Input> = self.pending.drain(..).collect();
            let mut arrived = Vec::new();
            let mut take = |(at, input): (Instant, Input), inputs: &mut Vec<Input>| {
                if matches!(input, Input::Frame { .. }) {
                    arrived.push(at);
                }
                inputs.push(input);
            };
            if inputs.is_empty() {
                let mut wait = match self.config.register {
                    Some(_) => self.config.tick.min(REGISTER_POLL),
                    None => self.config.tick,
                };
                // Messages the core holds back for a while go out on time.
                if let Some(at) = self.repo.next_wakeup() {
                    wait = wait.min(Duration::from_millis(at.saturating_sub(self.now_ms())));
                }
                match rx.recv_timeout(wait) {
                    Ok(input) => take(input, &mut inputs),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            while inputs.len() < BATCH {
                match rx.try_recv() {
                    Ok(input) => take(input, &mut inputs),
                    Err(_) => break,
                }
            }
            let keep_running = self.turn(inputs);
            if !arrived.is_empty() {
                let latencies = arrived.iter().map(Instant::elapsed).collect();
                (self.notify)(Notice::Turn { latencies });
            }
            if !keep_running {
                return;
            }
        }
    }

    /// One turn: returns false when asked to stop.
    fn turn(&mut self, inputs: Vec<Input>) -> bool {
        let mut effects = VecDeque::new();
        let mut queries = Vec::new();
        let mut meta = Vec::new();
        let mut waiting = Vec::new();
        let mut senders = HashSet::new();
        let mut keep_running = true;
        // The register is looked at before this turn's connections open,
        // so they are judged by the latest.
        let asked = inputs
            .iter()
            .any(|input| matches!(input, Input::RefreshRegister(_)));
        if asked || self.last_register_check.elapsed() >= REGISTER_POLL {
            self.last_register_check = Instant::now();
            self.watch_register(&mut effects);
        }
        let poked = inputs.iter().any(|input| matches!(input, Input::Poke));
        let now_ms = self.now_ms();
        effects.extend(self.repo.handle(Event::Time { now_ms }));
        if self.last_tick.elapsed() >= self.config.tick {
            self.last_tick = Instant::now();
            let loaded = self.repo.loaded_documents();
            effects.extend(self.repo.handle(Event::Tick { now_ms }));
            if let Some(release) = self.config.release_memory
                && self.repo.loaded_documents() < loaded
            {
                release();
            }
            if self.config.watch_store {
                self.watch_store(&mut effects);
            }
        } else if poked && self.config.watch_store {
            self.watch_store(&mut effects);
        }
        for input in inputs {
            match input {
                Input::Open {
                    conn,
                    initiate,
                    outbox,
                    grant,
                } => {
                    self.outboxes.insert(conn, outbox);
                    effects.extend(self.repo.handle(Event::Connected {
                        conn,
                        initiate,
                        grant,
                    }));
                }
                Input::RefreshRegister(done) => {
                    // Answered now: the register was looked at above, and
                    // what changed is published.
                    let _ = done.send(());
                }
                Input::Frame {
                    conn,
                    bytes,
                    reserved,
                } => {
                    senders.insert(conn);
                    effects.extend(self.handle_frame(conn, bytes));
                    drop(reserved);
                }
                Input::Closed { conn } => {
                    self.outboxes.remove(&conn);
                    effects.extend(self.repo.handle(Event::Disconnected { conn }));
                }
                Input::Written { conn, bytes } => {
                    effects.extend(self.repo.handle(Event::Written { conn, bytes }))
                }
                Input::Worked(worked) => effects.extend(self.repo.handle(Event::Worked(worked))),
                Input::Compacted {
                    document_id,
                    upto_seq,
                    snapshot,
                } => {
                    self.compacting.remove(&document_id);
                    if let Some(data) = snapshot {
                        meta.push(Write::Compacted {
                            document_id,
                            upto_seq,
                            data,
                        });
                    }
                }
                Input::Track(document_id) => {
                    effects.extend(self.repo.handle(Event::Track { document_id }))
                }
                Input::Poke => {}
                Input::Query(f) => queries.push(f),
                Input::SetMeta { values, done } => {
                    meta.extend(
                        values
                            .into_iter()
                            .map(|(key, value)| Write::Meta { key, value }),
                    );
                    waiting.extend(done);
                }
                #[cfg(test)]
                Input::LimitPages(extra) => self.store.limit_pages(extra),
                Input::Shutdown => keep_running = false,
            }
        }
        let saved = self.carry_out(effects, meta, senders);
        for done in waiting {
            let _ = done.send(saved.clone());
        }
        for query in queries {
            query(&self.repo, &self.store);
        }
        keep_running
    }

    /// The core's clock: the wall-clock time in ms since 1970, so what the
    /// policy keeps across restarts compares with the time after one,
    /// counted on from the engine's start with a monotonic clock.
    fn now_ms(&self) -> u64 {
        let (origin_ms, origin) = self.clock;
        origin_ms + origin.elapsed().as_millis() as u64
    }

    /// Runs one frame through the core. A frame that makes the core panic
    /// (a bug, or input automerge chokes on) costs its own connection,
    /// never the engine that serves everyone.
    fn handle_frame(&mut self, conn: ConnId, bytes: Vec<u8>) -> Vec<Effect> {
        let repo = &mut self.repo;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            repo.handle(Event::Frame { conn, bytes })
        })) {
            Ok(effects) => effects,
            Err(_) => {
                tracing::error!(
                    conn,
                    "a message from this connection could not be handled; closing it"
                );
                let reason = self.config.side.could_not_handle().to_string();
                let repo = &mut self.repo;
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    repo.handle(Event::Refuse {
                        conn,
                        reason: reason.clone(),
                    })
                }))
                .unwrap_or_else(|_| vec![Effect::Close { conn, reason }])
            }
        }
    }

    /// Carries out the effects, committing their writes (and `writes`) in
    /// one transaction before any frame goes out. Returns how the commit
    /// went. `senders`: the connections whose frames made this turn's
    /// writes.
    fn carry_out(
        &mut self,
        mut effects: VecDeque<Effect>,
        mut writes: Vec<Write>,
        senders: HashSet<ConnId>,
    ) -> Result<(), StoreError> {
        let mut sends: Vec<(ConnId, Outgoing)> = Vec::new();
        while let Some(effect) = effects.pop_front() {
            match effect {
                Effect::Load { document_id } => {
                    let event = match self.store.load(&document_id) {
                        Ok((chunks, sync_states)) => Event::Loaded {
                            document_id,
                            chunks,
                            sync_states,
                        },
                        Err(error) => Event::LoadFailed {
                            document_id,
                            reason: error.to_string(),
                        },
                    };
                    effects.extend(self.repo.handle(event));
                }
                Effect::Persist { document_id, chunk } => writes.push(Write::Chunk {
                    document_id,
                    data: chunk,
                }),
                Effect::PersistOwner { document_id, owner } => {
                    writes.push(Write::Owner { document_id, owner })
                }
                Effect::PersistSigningKey { key } => writes.push(Write::SigningKey { key }),
                Effect::PersistSyncState {
                    document_id,
                    storage_id,
                    state,
                } => writes.push(Write::SyncState {
                    document_id,
                    storage_id,
                    state,
                }),
                Effect::Send { conn, bytes } => sends.push((conn, Outgoing::Frame(bytes))),
                Effect::Close { conn, ref reason } => {
                    tracing::info!(conn, %reason, "closing a connection");
                    sends.push((conn, Outgoing::Close(reason.clone())));
                    (self.notify)(Notice::Core(effect));
                }
                Effect::PersistTracked { document_id } => writes.push(Write::Track { document_id }),
                Effect::Work(work) => {
                    // The worker runs as long as the engine does.
                    let _ = self.work.send(Job::Work(work));
                }
                Effect::PersistAccess { record } => writes.push(Write::Access(record)),
                Effect::ActorsNamed { actors } => writes.push(Write::ActorNames(actors)),
                Effect::PeerJoined { .. }
                | Effect::RemoteError { .. }
                | Effect::Unavailable { .. }
                | Effect::Listed { .. } => (self.notify)(Notice::Core(effect)),
                Effect::StorageUnreadable {
                    document_id,
                    reason,
                } => {
                    tracing::error!(document = %document_id, %reason, "a stored document could not be read; it was left as it is");
                    (self.notify)(Notice::StorageFailed(format!(
                        "document {document_id} could not be read from {}: {reason}",
                        self.store.path().display()
                    )));
                }
            }
        }
        if let Err(error) = self.write(&writes) {
            // Nothing of this turn was saved, so nothing may be confirmed:
            // drop its frames and close the connections involved (whose
            // frames made the writes, or that were to hear of them), which
            // keep their changes and send them again.
            let mut conns = senders;
            conns.extend(sends.iter().map(|(conn, _)| *conn));
            for conn in conns {
                if let Some(outbox) = self.outboxes.remove(&conn) {
                    let _ =
                        outbox.try_send(Outgoing::Close(self.config.side.could_not_save().into()));
                }
                self.pending.push_back(Input::Closed { conn });
            }
            return Err(error);
        }
        for (conn, outgoing) in sends {
            let Some(outbox) = self.outboxes.get(&conn) else {
                continue;
            };
            let closing = matches!(outgoing, Outgoing::Close(_));
            if outbox.try_send(outgoing).is_err() || closing {
                // A connection that cannot keep up is dropped rather than
                // letting its queue grow without bound; it reconnects.
                if !closing {
                    tracing::warn!(conn, "a connection could not keep up and was closed");
                }
                self.outboxes.remove(&conn);
                if !closing {
                    self.pending.push_back(Input::Closed { conn });
                }
            }
        }
        Ok(())
    }

    /// Commits the writes; on failure tells the core to forget the
    /// documents involved.
    fn write(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        match self.store.write(writes) {
            Ok(seqs) => {
                let documents: HashSet<DocumentId> = writes
                    .iter()
                    .filter_map(|w| match w {
                        Write::Chunk { document_id, .. } => Some(*document_id),
                        _ => None,
                    })
                    .collect();
                if self.config.watch_store {
                    self.own_seqs.extend(seqs);
                }
                if self.store.compacts_later() {
                    self.compact(&documents);
                }
                if !documents.is_empty() {
                    (self.notify)(Notice::Saved {
                        documents: documents.into_iter().collect(),
                    });
                }
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "saving changes failed");
                (self.notify)(Notice::StorageFailed(error.to_string()));
                let mut document_ids: Vec<DocumentId> = writes
                    .iter()
                    .filter_map(|w| match w {
                        Write::Chunk { document_id, .. }
                        | Write::SyncState { document_id, .. }
                        | Write::Owner { document_id, .. }
                        | Write::Track { document_id }
                        | Write::Claim { document_id, .. } => Some(*document_id),
                        Write::Meta { .. }
                        | Write::Access(_)
                        | Write::ActorNames(_)
                        | Write::SigningKey { .. }
                        | Write::Compacted { .. } => None,
                    })
                    .collect();
                document_ids.sort();
                document_ids.dedup();
                let unowned = writes
                    .iter()
                    .filter_map(|w| match w {
                        Write::Owner { document_id, .. } => Some(*document_id),
                        _ => None,
                    })
                    .collect();
                let forgotten = writes
                    .iter()
                    .filter_map(|w| match w {
                        Write::Access(record) => Some(record.clone()),
                        _ => None,
                    })
                    .collect();
                let _ = self.repo.handle(Event::WriteFailed {
                    document_ids,
                    unowned,
                    forgotten,
                });
                Err(error)
            }
        }
    }

    /// Hands the worker the documents that have gathered many chunks, to
    /// make each one snapshot off this thread.
    fn compact(&mut self, documents: &HashSet<DocumentId>) {
        for document_id in documents {
            if self.compacting.contains(document_id) {
                continue;
            }
            match self.store.to_compact(document_id) {
                Ok(Some(job)) => {
                    self.compacting.insert(*document_id);
                    let _ = self.work.send(Job::Compact(job));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not read chunks to compact"),
            }
        }
    }

    /// Hands the core the register when an admin command changed it, and
    /// publishes it for the HTTP side.
    fn watch_register(&mut self, effects: &mut VecDeque<Effect>) {
        let Some(published) = &self.config.register else {
            return;
        };
        let seen = published.borrow().version;
        let register = match self.store.register_version() {
            Ok(version) if version > seen => self.store.register(),
            Ok(_) => return,
            Err(error) => Err(error),
        };
        match register {
            Ok(register) => {
                tracing::info!("the register changed; applying it");
                let register = Arc::new(register);
                published.send_replace(register.clone());
                effects.extend(self.repo.handle(Event::RegisterChanged { register }));
            }
            Err(error) => tracing::warn!(%error, "could not read the register"),
        }
    }

    /// Picks up documents and changes other processes wrote to the store.
    fn watch_store(&mut self, effects: &mut VecDeque<Effect>) {
        let Some(seen) = self.seen_chunk_seq else {
            // (Only when the start-up read failed.) Everything stored
            // before now arrives through loading the tracked documents.
            self.seen_chunk_seq = self.store.last_chunk_seq().ok();
            return self.watch_tracked(effects);
        };
        self.watch_tracked(effects);
        match self.store.chunks_after(seen) {
            Ok(chunks) => {
                let mut stored = Vec::new();
                for chunk in chunks {
                    self.seen_chunk_seq = Some(chunk.seq);
                    if self.own_seqs.remove(&chunk.seq) {
                        continue;
                    }
                    if !stored.contains(&chunk.document_id) {
                        stored.push(chunk.document_id);
                    }
                    effects.extend(self.repo.handle(Event::LocalChanges {
                        document_id: chunk.document_id,
                        chunk: chunk.data,
                    }));
                }
                if !stored.is_empty() {
                    (self.notify)(Notice::Stored { documents: stored });
                }
            }
            Err(error) => (self.notify)(Notice::StorageFailed(error.to_string())),
        }
    }

    fn watch_tracked(&mut self, effects: &mut VecDeque<Effect>) {
        match self.store.tracked_after(self.seen_tracked_seq) {
            Ok(tracked) => {
                // A document made for another partnership is tracked in
                // the same transaction as its claim is kept.
                let mut claims: HashMap<DocumentId, String> = if tracked.is_empty() {
                    HashMap::new()
                } else {
                    match self.store.claims() {
                        Ok(claims) => claims.into_iter().collect(),
                        Err(error) => {
                            return (self.notify)(Notice::StorageFailed(error.to_string()));
                        }
                    }
                };
                for (seq, document_id) in tracked {
                    self.seen_tracked_seq = seq;
                    if let Some(partnership) = claims.remove(&document_id) {
                        effects.extend(self.repo.handle(Event::Claim {
                            document_id,
                            partnership,
                        }));
                    }
                    effects.extend(self.repo.handle(Event::Track { document_id }));
                }
            }
            Err(error) => (self.notify)(Notice::StorageFailed(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ROOT};

    use super::*;
    use crate::repo::{AllowAll, RepoConfig, SyncProgress};

    /// A client core wired by hand to a relay engine over channels.
    struct Client {
        repo: Repo,
        inbox: tokio::sync::mpsc::Receiver<Outgoing>,
        engine: EngineSender,
        conn: ConnId,
        closed: Option<String>,
    }

    impl Client {
        fn connect(engine: &EngineSender, conn: ConnId, repo: Repo) -> Client {
            Client::connect_as(engine, conn, repo, None)
        }

        fn connect_as(
            engine: &EngineSender,
            conn: ConnId,
            repo: Repo,
            grant: Option<Grant>,
        ) -> Client {
            let (outbox, inbox) = tokio::sync::mpsc::channel(OUTBOX_FRAMES);
            engine.send(Input::Open {
                conn,
                initiate: false,
                outbox,
                grant,
            });
            let mut client = Client {
                repo,
                inbox,
                engine: engine.clone(),
                conn,
                closed: None,
            };
            let effects = client.repo.handle(Event::Connected {
                conn: 0,
                initiate: true,
                grant: None,
            });
            client.apply(effects);
            client
        }

        fn apply(&mut self, effects: Vec<Effect>) {
            for effect in effects {
                if let Effect::Send { bytes, .. } = effect {
                    self.engine.send(Input::Frame {
                        conn: self.conn,
                        bytes,
                        reserved: None,
                    });
                }
            }
        }

        /// Exchanges frames until `done` holds or the connection closes.
        fn pump_until(&mut self, limit: Duration, mut done: impl FnMut(&Repo) -> bool) {
            let start = Instant::now();
            while !done(&self.repo) && self.closed.is_none() {
                assert!(start.elapsed() < limit, "gave up waiting");
                match self.inbox.try_recv() {
                    Ok(Outgoing::Frame(bytes)) => {
                        let effects = self.repo.handle(Event::Frame { conn: 0, bytes });
                        self.apply(effects);
                    }
                    Ok(Outgoing::Close(reason)) => self.closed = Some(reason),
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        self.closed = Some("dropped".into())
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
    }

    /// A school's repo holding one document larger than a few pages.
    fn school_with_large_document() -> (Repo, DocumentId, AutoCommit) {
        let id = DocumentId::random();
        let mut doc = AutoCommit::new();
        let text = doc.put_object(ROOT, "notes", ObjType::Text).unwrap();
        let words: String = (0..20_000).map(|i| format!("w{i} ")).collect();
        doc.splice_text(&text, 0, 0, &words).unwrap();
        let mut school = Repo::new(
            RepoConfig::new("school", Some("school-storage".into())),
            Box::new(AllowAll),
        );
        school.handle(Event::Track { document_id: id });
        school.handle(Event::Loaded {
            document_id: id,
            chunks: vec![doc.save()],
            sync_states: vec![],
        });
        (school, id, doc)
    }

    fn ask<T: Send + 'static>(
        sender: &EngineSender,
        f: impl FnOnce(&Repo, &Store) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        sender.send(Input::Query(Box::new(move |repo, store| {
            let _ = tx.send(f(repo, store));
        })));
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn a_new_documents_owner_and_first_chunk_are_saved_together_or_not_at_all() {
        use crate::access::{PartnershipPolicy, Register, Role, School};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        // The partnership is in the register on disk, as the admin
        // commands put it there.
        Store::open(&path)
            .unwrap()
            .into_connection()
            .execute(
                "INSERT INTO partnerships (id, name, created_at) VALUES ('north', 'North', 0)",
                [],
            )
            .unwrap();
        let mut store = Store::open(&path).unwrap();
        store.limit_pages(4);
        let mut register = Register::default();
        register.partnerships.insert("north".into(), "North".into());
        register.schools.insert(
            "hilltop".into(),
            School {
                name: "Hilltop".into(),
                credential: [1; 32],
                memberships: [("north".to_string(), Role::Member)].into(),
            },
        );
        let register = Arc::new(register);
        let grant = register.authenticate(&[1; 32], None).unwrap();
        let (notices_tx, notices) = std::sync::mpsc::channel();
        let engine = Engine::spawn(
            Repo::new(
                RepoConfig::new("relay", Some("relay-storage".into())),
                Box::new(PartnershipPolicy::new(register, HashMap::new(), 4)),
            ),
            store,
            EngineConfig {
                tick: Duration::from_millis(50),
                watch_store: false,
                side: Side::Relay,
                register: None,
                release_memory: None,
            },
            Box::new(move |notice| {
                let _ = notices_tx.send(notice);
            }),
        );
        let sender = engine.sender();
        let (school, id, mut doc) = school_with_large_document();

        // The disk fills as the document arrives: neither it nor its
        // owner is kept, so no content can be left without an owner.
        let mut client = Client::connect_as(&sender, 1, school, Some(grant.clone()));
        client.pump_until(Duration::from_secs(10), |_| false);
        assert!(client.closed.clone().unwrap().contains("could not save"));
        let full = notices
            .try_iter()
            .any(|n| matches!(n, Notice::StorageFailed(ref m) if m.contains("full")));
        assert!(full, "the disk was full");
        let (owners, stored) = ask(&sender, move |_, store| {
            (store.owners().unwrap(), store.load_document(&id).unwrap())
        });
        assert!(owners.is_empty() && stored.is_none());

        // Space is freed: the document is claimed again, and both are kept.
        sender.send(Input::LimitPages(100_000));
        let mut school = client.repo;
        school.handle(Event::Disconnected { conn: 0 });
        let mut client = Client::connect_as(&sender, 2, school, Some(grant));
        client.pump_until(Duration::from_secs(10), |repo| {
            repo.progress(&id, 0) == SyncProgress::InSync
        });
        assert!(client.closed.is_none(), "{:?}", client.closed);
        let (owners, heads) = ask(&sender, move |_, store| {
            let heads = store.load_document(&id).unwrap().map(|d| d.get_heads());
            (store.owners().unwrap(), heads)
        });
        assert_eq!(owners.get(&id).map(String::as_str), Some("north"));
        assert_eq!(heads, Some(doc.get_heads()));
    }

    /// While the engine is busy, what waits for it is bounded in bytes:
    /// each connection's share, and everyone's together, and the room
    /// comes back as the engine handles the frames.
    #[test]
    fn frames_waiting_for_a_busy_engine_are_bounded_in_bytes() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        fn ready<F: Future>(future: &mut std::pin::Pin<Box<F>>) -> Option<F::Output> {
            match future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(output) => Some(output),
                Poll::Pending => None,
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::spawn(
            Repo::new(RepoConfig::new("relay", None), Box::new(AllowAll)),
            Store::open(dir.path().join("relay.sqlite")).unwrap(),
            EngineConfig {
                tick: Duration::from_millis(50),
                watch_store: false,
                side: Side::Relay,
                register: None,
                release_memory: None,
            },
            Box::new(|_| {}),
        );
        let sender = engine.sender();
        // The engine is busy for a while.
        sender.send(Input::Query(Box::new(|_, _| {
            std::thread::sleep(Duration::from_millis(800))
        })));
        let limit = InputLimit::new(64 * 1024, 16 * 1024);
        let frame = vec![0u8; 4 * 1024];
        let send = |conn, reserved| {
            sender.send(Input::Frame {
                conn,
                bytes: frame.clone(),
                reserved: Some(reserved),
            })
        };
        let first = limit.connection();
        for _ in 0..4 {
            let reserved = ready(&mut Box::pin(first.reserve(frame.len()))).expect("room");
            send(1, reserved);
        }
        let mut fifth = Box::pin(first.reserve(frame.len()));
        assert!(
            ready(&mut fifth).is_none(),
            "one connection's share is full"
        );
        for conn in 2..=4 {
            let other = limit.connection();
            let reserved = ready(&mut Box::pin(other.reserve(16 * 1024))).expect("room");
            send(conn, reserved);
        }
        let last = limit.connection();
        let mut waiting = Box::pin(last.reserve(1));
        assert!(ready(&mut waiting).is_none(), "everyone's share is full");
        // Once the engine has handled them, there is room again.
        let start = Instant::now();
        while ready(&mut waiting).is_none() || ready(&mut fifth).is_none() {
            assert!(start.elapsed() < Duration::from_secs(10), "room came back");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The worker runs heavy jobs at a lower priority than the engine and
    /// the network threads, which keep the usual one.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_worker_gives_way_to_the_engine() {
        /// (thread name, niceness) of each of this process's threads.
        fn threads() -> Vec<(String, i64)> {
            let mut out = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                // pid (comm) state ppid ...: the niceness is the 19th field,
                // the 17th after the name's closing parenthesis.
                let (name, rest) = stat.split_once(" (").unwrap().1.rsplit_once(") ").unwrap();
                let nice = rest.split(' ').nth(16).unwrap().parse().unwrap();
                out.push((name.to_string(), nice));
            }
            out
        }
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::spawn(
            Repo::new(RepoConfig::new("relay", None), Box::new(AllowAll)),
            Store::open(dir.path().join("relay.sqlite")).unwrap(),
            EngineConfig {
                tick: Duration::from_millis(50),
                watch_store: false,
                side: Side::Relay,
                register: None,
                release_memory: None,
            },
            Box::new(|_| {}),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        // Thread names are cut to 15 bytes. The worker lowers its own
        // priority as it starts: wait for that, up to the deadline.
        let worker_niceness = loop {
            let found = threads()
                .into_iter()
                .find(|(name, _)| name == "partnerplan-wor");
            match found {
                Some((_, nice)) if nice != 0 || Instant::now() > deadline => break nice,
                _ => {
                    assert!(Instant::now() < deadline, "no worker thread started");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        assert_eq!(worker_niceness, i64::from(WORKER_NICENESS));
        // A new thread takes its name as it starts: wait for that too.
        let engine_niceness = loop {
            let found = threads()
                .into_iter()
                .find(|(name, _)| name == "partnerplan-eng");
            match found {
                Some((_, nice)) => break nice,
                None => {
                    assert!(Instant::now() < deadline, "no engine thread started");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        assert_eq!(engine_niceness, 0, "the engine keeps the usual priority");
        drop(engine);
    }

    #[test]
    fn a_full_disk_confirms_nothing_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("relay.sqlite")).unwrap();
        store.limit_pages(4);
        let (notices_tx, notices) = std::sync::mpsc::channel();
        let engine = Engine::spawn(
            Repo::new(
                RepoConfig::new("relay", Some("relay-storage".into())),
                Box::new(AllowAll),
            ),
            store,
            EngineConfig {
                tick: Duration::from_millis(50),
                watch_store: false,
                side: Side::Relay,
                register: None,
                release_memory: None,
            },
            Box::new(move |notice| {
                let _ = notices_tx.send(notice);
            }),
        );
        let sender = engine.sender();

        // A school's document, larger than the space left.
        let id = DocumentId::random();
        let mut doc = AutoCommit::new();
        let text = doc.put_object(ROOT, "notes", ObjType::Text).unwrap();
        let words: String = (0..20_000).map(|i| format!("w{i} ")).collect();
        doc.splice_text(&text, 0, 0, &words).unwrap();
        let mut school = Repo::new(
            RepoConfig::new("school", Some("school-storage".into())),
            Box::new(AllowAll),
        );
        school.handle(Event::Track { document_id: id });
        school.handle(Event::Loaded {
            document_id: id,
            chunks: vec![doc.save()],
            sync_states: vec![],
        });

        let mut client = Client::connect(&sender, 1, school);
        client.pump_until(Duration::from_secs(10), |_| false);
        let reason = client.closed.clone().unwrap();
        assert!(reason.contains("could not save"), "{reason}");
        assert_ne!(
            client.repo.progress(&id, 0),
            SyncProgress::InSync,
            "nothing was confirmed"
        );
        let full = notices
            .try_iter()
            .any(|n| matches!(n, Notice::StorageFailed(ref m) if m.contains("full")));
        assert!(full, "the operator is told the disk is full");

        // Space is freed; the school connects again and everything arrives.
        sender.send(Input::LimitPages(100_000));
        let school = client.repo;
        let mut school = {
            let mut repo = school;
            repo.handle(Event::Disconnected { conn: 0 });
            repo
        };
        school.handle(Event::Tick { now_ms: 0 });
        let mut client = Client::connect(&sender, 2, school);
        client.pump_until(Duration::from_secs(10), |repo| {
            repo.progress(&id, 0) == SyncProgress::InSync
        });
        assert!(client.closed.is_none());
        let stored = sender.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        stored.send(Input::Query(Box::new(move |_, store| {
            let _ = tx.send(store.load_document(&id).unwrap().map(|d| d.get_heads()));
        })));
        let heads = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            heads,
            Some(doc.get_heads()),
            "the relay holds the whole document"
        );
    }
}
