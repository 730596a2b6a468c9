//! `partnerplan-load`: a load generator for automerge-repo sync servers
//! (our relay, or the Node reference server).
//!
//! It opens `--clients` WebSocket connections to a server on 127.0.0.1 and
//! speaks the automerge-repo protocol on each, with `automerge::sync` and
//! our wire [`Message`]s. Document `i` is shared by `--subscribers` (k)
//! clients: `i % N`, `(i + 1) % N`, ... Three timed phases:
//!
//! 1. seed: each document's first client creates it (an action plan of a
//!    few KB) and syncs it until the server's own sync messages report
//!    every head;
//! 2. fetch: the document's other clients ask the server for it (`request`)
//!    until they hold what the server holds (with `--skip-seed`, every
//!    subscriber fetches documents listed in `--ids-file`);
//! 3. edit fan-out: every client makes `--edits` edits on its documents,
//!    `--in-flight` at a time (closed loop). An edit's latency runs from the
//!    local change until every other subscriber of that document has
//!    received it.
//!
//! Every phase is bounded by `--timeout-secs`. Progress goes to stderr;
//! the report to stdout (one JSON object with `--json`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc};
use clap::Parser;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use partnerplan_sync::DocumentId;
use partnerplan_sync::message::{Message, PROTOCOL_VERSION, PeerMetadata, SyncFrame};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "partnerplan-load",
    about = "Load benchmark for automerge-repo sync servers on 127.0.0.1: seeds documents, then measures edit fan-out latency and throughput."
)]
struct Args {
    /// The server's WebSocket URL; only 127.0.0.1 or localhost.
    #[arg(long, default_value = "ws://127.0.0.1:7171")]
    url: String,
    /// Concurrent synthetic clients (one WebSocket each).
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Documents to seed (with --skip-seed: at most this many ids are read).
    #[arg(long, default_value_t = 1000)]
    documents: usize,
    /// Edits each client makes in the fan-out phase.
    #[arg(long, default_value_t = 20)]
    edits: usize,
    /// Clients sharing each document (default: min(clients, 3)).
    #[arg(long)]
    subscribers: Option<usize>,
    /// Edits each client keeps outstanding at once.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Fetch and edit only the first M documents (default: all).
    #[arg(long)]
    edit_documents: Option<usize>,
    /// Rows in each seeded action plan.
    #[arg(long, default_value_t = 30)]
    rows: usize,
    /// Distinct plans to build; every document is a fork of one of them
    /// with its own title. With `--tokens`, at least one per school (a
    /// relay takes a change only from the school that first sent its
    /// Automerge actor, so each school seeds from templates of its own).
    #[arg(long, default_value_t = 32)]
    templates: usize,
    /// Documents each client seeds or fetches at once.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Only seed (and write --ids-out); no fetch or edit phase.
    #[arg(long)]
    seed_only: bool,
    /// Do not seed: read document ids, one a line, from --ids-file.
    #[arg(long, requires = "ids_file")]
    skip_seed: bool,
    /// The ids to use with --skip-seed.
    #[arg(long)]
    ids_file: Option<PathBuf>,
    /// Write the seeded document ids here, one a line.
    #[arg(long)]
    ids_out: Option<PathBuf>,
    /// Access tokens, one a line: client i connects with token i (wrapping
    /// round), added to the URL as `?token=` (for a relay that needs one).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Clients announce no storageId (like a browser without storage);
    /// by default each advertises one, as the partnerplan client does.
    #[arg(long)]
    ephemeral: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// The server's process id: report its VmHWM and VmRSS at the end
    /// (and around --idle-secs).
    #[arg(long)]
    pid: Option<u32>,
    /// After fetching, every client stays connected and does nothing for
    /// this long before the edit phase (the edits then wake documents a
    /// relay let go of): the server's memory is read before and after.
    #[arg(long, default_value_t = 0)]
    idle_secs: u64,
    /// The longest any one phase may take.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// A name for this run in the report.
    #[arg(long)]
    label: Option<String>,
}

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<WsStream, WsMessage>;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("partnerplan-load: could not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args.clone())) {
        Ok(report) => {
            let ok = report["ok"].as_bool().unwrap_or(false);
            if args.json {
                println!("{report}");
            } else {
                print_text(&report);
            }
            // Client tasks may still be closing their sockets.
            runtime.shutdown_timeout(Duration::from_secs(2));
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("partnerplan-load: {error}");
            runtime.shutdown_timeout(Duration::from_secs(2));
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Shared state between the coordinator and the clients.

/// One document of the run.
struct DocInfo {
    id: DocumentId,
    /// The clients that share it; the first one seeds it.
    subscribers: Vec<usize>,
}

/// An edit waiting until every other subscriber has it.
struct PendingEdit {
    hash: ChangeHash,
    started: Instant,
    editor: usize,
    waiting: Vec<usize>,
}

#[derive(Default)]
struct Counters {
    seeded: AtomicUsize,
    fetched: AtomicUsize,
    fetch_failed: AtomicUsize,
    edits_done: AtomicUsize,
    frames_in: AtomicUsize,
    frames_out: AtomicUsize,
    bytes_in: AtomicUsize,
    bytes_out: AtomicUsize,
}

struct Shared {
    docs: Vec<DocInfo>,
    counters: Counters,
    /// Pending edits by document index.
    pending: Mutex<HashMap<usize, Vec<PendingEdit>>>,
    latencies_us: Mutex<Vec<u64>>,
    /// When the latest item of the current phase finished.
    last_done: Mutex<Instant>,
    /// Tells each editor that one of its edits reached everyone.
    completions: Vec<mpsc::UnboundedSender<()>>,
    errors: Mutex<Vec<String>>,
    edit_docs: usize,
}

impl Shared {
    fn mark_done(&self) {
        *self.last_done.lock().unwrap() = Instant::now();
    }

    fn error(&self, error: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(error);
        }
    }

    /// After `client` applied a message for document `idx`: which pending
    /// edits has it now received?
    fn check_received(&self, idx: usize, client: usize, doc: &Automerge) {
        let mut pending = self.pending.lock().unwrap();
        let Some(edits) = pending.get_mut(&idx) else {
            return;
        };
        let now = Instant::now();
        edits.retain_mut(|edit| {
            if let Some(pos) = edit.waiting.iter().position(|&c| c == client)
                && doc
                    .get_missing_deps(std::slice::from_ref(&edit.hash))
                    .is_empty()
            {
                edit.waiting.swap_remove(pos);
            }
            if edit.waiting.is_empty() {
                self.finish_edit(edit, now);
                false
            } else {
                true
            }
        });
        if edits.is_empty() {
            pending.remove(&idx);
        }
    }

    fn finish_edit(&self, edit: &PendingEdit, now: Instant) {
        let micros = now.duration_since(edit.started).as_micros() as u64;
        self.latencies_us.lock().unwrap().push(micros);
        self.counters.edits_done.fetch_add(1, Ordering::Relaxed);
        self.mark_done();
        let _ = self.completions[edit.editor].send(());
    }
}

// ---------------------------------------------------------------------------
// One synthetic client.

enum Cmd {
    /// Build the documents this client seeds from the templates; answers
    /// how many it built, and how many of them it measured and their total
    /// saved size.
    Prepare(Arc<Vec<Automerge>>, oneshot::Sender<(usize, usize, usize)>),
    Seed,
    Fetch,
    Edit,
    Stop,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Seed,
    Fetch,
    Edit,
}

struct Local {
    idx: usize,
    doc: Automerge,
    sync: sync::State,
}

struct Client {
    idx: usize,
    /// Which of the schools (tokens) it connects as, and how many there
    /// are: it seeds only from its own school's templates.
    school: usize,
    schools: usize,
    peer_id: String,
    server_id: String,
    shared: Arc<Shared>,
    sink: Sink,
    docs: HashMap<DocumentId, Local>,
    phase: Phase,
    window: usize,
    queue: VecDeque<DocumentId>,
    active: HashSet<DocumentId>,
    /// Edit phase.
    edits_target: usize,
    in_flight: usize,
    edits_issued: usize,
    edit_docs: Vec<DocumentId>,
    /// Own edits with nobody else to reach: done once the server has them.
    unshared: HashMap<DocumentId, Vec<(ChangeHash, Instant)>>,
}

/// Opens the connection and finishes the handshake.
async fn connect(
    url: &str,
    peer_id: &str,
    storage_id: Option<String>,
) -> Result<(Sink, SplitStream<WsStream>, String), String> {
    // Nagle off, as browsers and the `ws` package do for WebSockets.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map_err(|e| format!("could not connect to {url}: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let join = Message::Join {
        sender_id: peer_id.to_string(),
        supported_protocol_versions: vec![PROTOCOL_VERSION.to_string()],
        metadata: PeerMetadata {
            is_ephemeral: storage_id.is_none(),
            storage_id,
            listing: false,
            compact: 0,
            signing_key: None,
            client: None,
        },
    };
    sink.send(WsMessage::Binary(join.encode().into()))
        .await
        .map_err(|e| format!("could not send join: {e}"))?;
    while let Some(frame) = stream.next().await {
        match frame.map_err(|e| format!("connection failed during the handshake: {e}"))? {
            WsMessage::Binary(bytes) => match Message::decode(&bytes, usize::MAX) {
                Ok(Message::Peer { sender_id, .. }) => return Ok((sink, stream, sender_id)),
                Ok(Message::Error { message, .. }) => {
                    return Err(format!("the server refused the join: {message}"));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("unreadable handshake frame: {e}")),
            },
            WsMessage::Close(_) => break,
            _ => {}
        }
    }
    Err("the server closed the connection during the handshake".into())
}

impl Client {
    async fn run(
        mut self,
        mut stream: SplitStream<WsStream>,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut completions: mpsc::UnboundedReceiver<()>,
    ) {
        loop {
            let result = tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Stop) | None => break,
                    Some(cmd) => self.on_cmd(cmd).await,
                },
                frame = stream.next() => match frame {
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        self.shared.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                        self.shared.counters.bytes_in.fetch_add(bytes.len(), Ordering::Relaxed);
                        self.on_frame(&bytes).await
                    }
                    Some(Ok(WsMessage::Close(_))) | None => {
                        Err("the server closed the connection".to_string())
                    }
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(format!("the connection failed: {e}")),
                },
                Some(()) = completions.recv() => self.on_edit_completed().await,
            };
            if let Err(error) = result {
                self.shared.error(format!("client {}: {error}", self.idx));
                return;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.sink.close()).await;
    }

    async fn on_cmd(&mut self, cmd: Cmd) -> Result<(), String> {
        match cmd {
            Cmd::Prepare(templates, answer) => {
                let mut bytes = 0;
                let mut measured = 0;
                let mut count = 0;
                for (idx, info) in self.shared.docs.iter().enumerate() {
                    if info.subscribers[0] == self.idx {
                        // Templates school, school + schools, ... are
                        // this school's (their changes share its actors).
                        let own = (templates.len() / self.schools).max(1);
                        let template = self.school + (idx % own) * self.schools;
                        let doc = personalise(&templates[template % templates.len()], idx);
                        if count % 10 == 0 {
                            bytes += doc.save().len();
                            measured += 1;
                        }
                        count += 1;
                        self.docs.insert(
                            info.id,
                            Local {
                                idx,
                                doc,
                                sync: sync::State::new(),
                            },
                        );
                        self.queue.push_back(info.id);
                    }
                }
                let _ = answer.send((count, measured, bytes));
                Ok(())
            }
            Cmd::Seed => {
                self.phase = Phase::Seed;
                self.start_more().await
            }
            Cmd::Fetch => {
                self.phase = Phase::Fetch;
                self.queue.clear();
                let shared = self.shared.clone();
                for (idx, info) in shared.docs.iter().enumerate().take(shared.edit_docs) {
                    if info.subscribers.contains(&self.idx) && !self.docs.contains_key(&info.id) {
                        self.docs.insert(
                            info.id,
                            Local {
                                idx,
                                doc: Automerge::new(),
                                sync: sync::State::new(),
                            },
                        );
                        self.queue.push_back(info.id);
                    }
                }
                self.start_more().await
            }
            Cmd::Edit => {
                self.phase = Phase::Edit;
                let shared = self.shared.clone();
                self.edit_docs = shared
                    .docs
                    .iter()
                    .take(shared.edit_docs)
                    .filter(|info| {
                        info.subscribers.contains(&self.idx) && self.docs.contains_key(&info.id)
                    })
                    .map(|info| info.id)
                    .collect();
                if self.edit_docs.is_empty() {
                    return Ok(());
                }
                for _ in 0..self.in_flight.min(self.edits_target) {
                    self.edit().await?;
                }
                Ok(())
            }
            Cmd::Stop => Ok(()),
        }
    }

    /// Starts seeding or fetching queued documents, up to the window.
    async fn start_more(&mut self) -> Result<(), String> {
        while self.active.len() < self.window {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let local = self.docs.get_mut(&id).expect("queued documents are held");
            let empty = local.doc.get_heads().is_empty();
            let Some(message) = local.doc.generate_sync_message(&mut local.sync) else {
                continue;
            };
            self.active.insert(id);
            let frame = SyncFrame {
                sender_id: self.peer_id.clone(),
                target_id: self.server_id.clone(),
                document_id: id,
                data: message.encode(),
            };
            let message = if empty {
                Message::Request(frame)
            } else {
                Message::Sync(frame)
            };
            self.send(message.encode()).await?;
        }
        Ok(())
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.shared
            .counters
            .frames_out
            .fetch_add(1, Ordering::Relaxed);
        self.shared
            .counters
            .bytes_out
            .fetch_add(bytes.len(), Ordering::Relaxed);
        self.sink
            .send(WsMessage::Binary(bytes.into()))
            .await
            .map_err(|e| format!("could not send: {e}"))
    }

    async fn on_frame(&mut self, bytes: &[u8]) -> Result<(), String> {
        let message = Message::decode(bytes, usize::MAX)
            .map_err(|e| format!("unreadable frame from the server: {e}"))?;
        match message {
            Message::Sync(frame) | Message::Request(frame) => self.on_sync(frame).await,
            Message::DocUnavailable { document_id, .. } => {
                if self.phase == Phase::Fetch && self.active.remove(&document_id) {
                    self.shared
                        .counters
                        .fetch_failed
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared.mark_done();
                    self.docs.remove(&document_id);
                    self.start_more().await?;
                }
                Ok(())
            }
            Message::Error { message, .. } => Err(format!("the server sent an error: {message}")),
            _ => Ok(()),
        }
    }

    async fn on_sync(&mut self, frame: SyncFrame) -> Result<(), String> {
        let id = frame.document_id;
        let Some(local) = self.docs.get_mut(&id) else {
            return Ok(());
        };
        let message = sync::Message::decode(&frame.data)
            .map_err(|e| format!("unreadable sync message for {id}: {e}"))?;
        local
            .doc
            .receive_sync_message(&mut local.sync, message)
            .map_err(|e| format!("could not apply the server's changes to {id}: {e}"))?;
        let reply = local.doc.generate_sync_message(&mut local.sync);
        let idx = local.idx;
        let heads = local.doc.get_heads();
        let server_has_ours = match &local.sync.their_heads {
            Some(theirs) if !theirs.is_empty() => {
                let mut theirs = theirs.clone();
                theirs.sort();
                theirs == heads
            }
            _ => false,
        };
        match self.phase {
            Phase::Edit => {
                if self.shared.edit_docs > idx {
                    self.shared.check_received(idx, self.idx, &local.doc);
                }
                if server_has_ours && let Some(own) = self.unshared.remove(&id) {
                    let now = Instant::now();
                    for (hash, started) in own {
                        self.shared.finish_edit(
                            &PendingEdit {
                                hash,
                                started,
                                editor: self.idx,
                                waiting: Vec::new(),
                            },
                            now,
                        );
                    }
                }
            }
            Phase::Seed | Phase::Fetch => {
                if server_has_ours && self.active.remove(&id) {
                    let counter = if self.phase == Phase::Seed {
                        &self.shared.counters.seeded
                    } else {
                        &self.shared.counters.fetched
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    self.shared.mark_done();
                }
            }
            Phase::Idle => {}
        }
        if let Some(reply) = reply {
            let message = Message::Sync(SyncFrame {
                sender_id: self.peer_id.clone(),
                target_id: self.server_id.clone(),
                document_id: id,
                data: reply.encode(),
            });
            self.send(message.encode()).await?;
        }
        if matches!(self.phase, Phase::Seed | Phase::Fetch) {
            self.start_more().await?;
        }
        Ok(())
    }

    async fn on_edit_completed(&mut self) -> Result<(), String> {
        if self.phase == Phase::Edit && self.edits_issued < self.edits_target {
            self.edit().await?;
        }
        Ok(())
    }

    /// Makes one edit on the next of this client's documents and sends it.
    async fn edit(&mut self) -> Result<(), String> {
        let n = self.edits_issued;
        self.edits_issued += 1;
        let id = self.edit_docs[n % self.edit_docs.len()];
        let client = self.idx;
        let local = self.docs.get_mut(&id).expect("edited documents are held");
        let started = Instant::now();
        let hash = edit_plan(&mut local.doc, client, n)
            .map_err(|e| format!("could not edit {id}: {e}"))?;
        let waiting: Vec<usize> = self.shared.docs[local.idx]
            .subscribers
            .iter()
            .copied()
            .filter(|&c| c != client)
            .collect();
        if waiting.is_empty() {
            self.unshared.entry(id).or_default().push((hash, started));
        } else {
            self.shared
                .pending
                .lock()
                .unwrap()
                .entry(local.idx)
                .or_default()
                .push(PendingEdit {
                    hash,
                    started,
                    editor: client,
                    waiting,
                });
        }
        if let Some(message) = local.doc.generate_sync_message(&mut local.sync) {
            let message = Message::Sync(SyncFrame {
                sender_id: self.peer_id.clone(),
                target_id: self.server_id.clone(),
                document_id: id,
                data: message.encode(),
            });
            self.send(message.encode()).await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Realistic content: a partnership's action plan.

const TOPICS: &[&str] = &[
    "Reading together across borders",
    "Our rivers and the climate",
    "Digital citizenship for year 8",
    "Exchange week in spring",
    "A shared science fair",
    "Language tandem in pairs",
    "Cooking traditions of our regions",
    "Sports day by video link",
];
const SCHOOLS: &[&str] = &[
    "Lycée Jean Moulin, Lyon",
    "Gymnasium am Markt, Leipzig",
    "IES Miguel de Cervantes, Sevilla",
    "Liceo Galileo Galilei, Pisa",
    "Szkoła Podstawowa nr 12, Kraków",
    "Escola Secundária de Camões, Lisboa",
];
const VERBS: &[&str] = &[
    "Prepare",
    "Translate",
    "Collect",
    "Schedule",
    "Review",
    "Share",
    "Record",
    "Agree on",
    "Book",
    "Draft",
];
const OBJECTS: &[&str] = &[
    "the welcome pack for visiting pupils",
    "a bilingual glossary of science terms",
    "parental consent forms for the trip",
    "the video call timetable for both classes",
    "photos and short films from the workshop",
    "the evaluation questionnaire for teachers",
    "coach and hostel bookings for the visit",
    "a reading list in both languages",
    "the budget report for the Erasmus+ grant",
    "pupil pairs for the tandem letters",
];
const OWNERS: &[&str] = &[
    "Mme Laurent",
    "Herr Becker",
    "Sra. Ortega",
    "Prof. Rossi",
    "Pani Nowak",
    "Prof.ª Sousa",
];
const STATUSES: &[&str] = &["planned", "in progress", "done", "blocked"];
const NOTES: &[&str] = &[
    "Discussed at the last video call; both schools agree on the outline.",
    "Waiting for the head teacher to sign before we can go ahead.",
    "Pupils asked for more time, so the deadline moved by a week.",
    "The partner school will send their half by email on Friday.",
    "Needs a translation check by a colleague from the language department.",
    "Costs are within the grant; receipts go into the shared folder.",
    "Parents were informed at the evening meeting in September.",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn build_plan(idx: usize, rows: usize) -> Automerge {
    let mut rng = Rng(idx as u64 ^ 0x5050_4C4E);
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    let header = (|| -> Result<ObjId, automerge::AutomergeError> {
        tx.put(ROOT, "kind", "action-plan")?;
        let title = tx.put_object(ROOT, "title", ObjType::Text)?;
        let heading = format!("{} (plan {idx})", rng.pick(TOPICS));
        tx.splice_text(&title, 0, 0, &heading)?;
        let schools = tx.put_object(ROOT, "schools", ObjType::List)?;
        let lead = rng.pick(SCHOOLS);
        tx.insert(&schools, 0, lead)?;
        let mut partner = rng.pick(SCHOOLS);
        if partner == lead {
            partner =
                SCHOOLS[(SCHOOLS.iter().position(|s| *s == lead).unwrap() + 1) % SCHOOLS.len()];
        }
        tx.insert(&schools, 1, partner)?;
        tx.put(ROOT, "school_year", "2025/26")?;
        tx.put(ROOT, "revision", 1_i64)?;
        tx.put_object(ROOT, "rows", ObjType::List)
    })();
    let rows_id = header.expect("building a plan in memory cannot fail");
    tx.commit();
    // Rows arrive in a few changes, as a plan is filled in over meetings.
    for start in (0..rows).step_by(4) {
        let mut tx = doc.transaction();
        for i in start..(start + 4).min(rows) {
            add_row(&mut tx, &rows_id, i, &mut rng).expect("building a plan in memory cannot fail");
        }
        tx.commit();
    }
    doc
}

/// A document of its own from a template: a fork (new actor) with its own
/// title and plan number in one more change.
fn personalise(template: &Automerge, idx: usize) -> Automerge {
    let mut doc = template.fork();
    let mut tx = doc.transaction();
    let result = (|| -> Result<(), automerge::AutomergeError> {
        tx.put(ROOT, "plan_no", idx as i64)?;
        if let Some((_, title)) = tx.get(ROOT, "title")? {
            let len = tx.length(&title);
            let mut rng = Rng(idx as u64 ^ 0x0074_6974_6C65);
            let heading = format!("{} (plan {idx})", rng.pick(TOPICS));
            tx.splice_text(&title, 0, len as isize, &heading)?;
        }
        Ok(())
    })();
    result.expect("editing a plan in memory cannot fail");
    tx.commit();
    doc
}

fn add_row(
    tx: &mut impl Transactable,
    rows: &ObjId,
    at: usize,
    rng: &mut Rng,
) -> Result<(), automerge::AutomergeError> {
    let row = tx.insert_object(rows, at, ObjType::Map)?;
    let action = tx.put_object(&row, "action", ObjType::Text)?;
    let text = format!("{} {}", rng.pick(VERBS), rng.pick(OBJECTS));
    tx.splice_text(&action, 0, 0, &text)?;
    tx.put(&row, "owner", rng.pick(OWNERS))?;
    let month = 1 + rng.next() % 12;
    let day = 1 + rng.next() % 28;
    tx.put(&row, "due", format!("2026-{month:02}-{day:02}"))?;
    tx.put(&row, "status", rng.pick(STATUSES))?;
    let notes = tx.put_object(&row, "notes", ObjType::Text)?;
    let text = format!("{} {}", rng.pick(NOTES), rng.pick(NOTES));
    tx.splice_text(&notes, 0, 0, &text)?;
    Ok(())
}

/// One realistic edit: a row's status changes and its notes grow; every
/// tenth edit adds a row.
fn edit_plan(
    doc: &mut Automerge,
    client: usize,
    n: usize,
) -> Result<ChangeHash, automerge::AutomergeError> {
    let missing = || automerge::AutomergeError::Fail;
    let (_, rows) = doc.get(ROOT, "rows")?.ok_or_else(missing)?;
    let len = doc.length(&rows);
    let mut rng = Rng(((client as u64) << 32) ^ n as u64);
    let mut tx = doc.transaction();
    if n % 10 == 9 || len == 0 {
        add_row(&mut tx, &rows, len, &mut rng)?;
    } else {
        let r = (n * 7 + client) % len;
        let (_, row) = tx.get(&rows, r)?.ok_or_else(missing)?;
        tx.put(&row, "status", STATUSES[(n + client) % STATUSES.len()])?;
        tx.put(&row, "updated_by", format!("school-{client}"))?;
        if let Some((_, notes)) = tx.get(&row, "notes")? {
            let at = tx.length(&notes);
            let text = format!(" [{client}/{n}] {}", rng.pick(NOTES));
            tx.splice_text(&notes, at, 0, &text)?;
        }
    }
    let (hash, _) = tx.commit();
    hash.ok_or_else(missing)
}

// ---------------------------------------------------------------------------
// The coordinator.

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    if host == "127.0.0.1" || host == "localhost" {
        Ok(())
    } else {
        Err(format!(
            "{url}: this benchmark only connects to 127.0.0.1 or localhost"
        ))
    }
}

/// The URL with `token=` added to its query (and a `/` path if it had
/// none).
fn with_token(url: &str, token: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_string(), format!("{query}&")),
        None => (url.to_string(), String::new()),
    };
    let after_scheme = base
        .split_once("://")
        .map_or(base.as_str(), |(_, rest)| rest);
    let base = if after_scheme.contains('/') {
        base.clone()
    } else {
        format!("{base}/")
    };
    format!("{base}?{query}token={token}")
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        for b in DocumentId::random().as_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out.truncate(bytes * 2);
    out
}

fn uuid_text() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn run(args: Args) -> Result<Value, String> {
    check_url(&args.url)?;
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let k = args.subscribers.unwrap_or(3).clamp(1, args.clients);
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let ids: Vec<DocumentId> = if args.skip_seed {
        let path = args.ids_file.as_ref().expect("clap requires --ids-file");
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("could not read {}: {e}", path.display()))?;
        let ids = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(args.documents)
            .map(|l| DocumentId::parse_url_or_id(l).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err(format!("{} lists no document ids", path.display()));
        }
        ids
    } else {
        (0..args.documents).map(|_| DocumentId::random()).collect()
    };
    let documents = ids.len();
    let edit_docs = args.edit_documents.unwrap_or(documents).min(documents);
    let docs: Vec<DocInfo> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| DocInfo {
            id,
            subscribers: (0..k).map(|j| (i + j) % args.clients).collect(),
        })
        .collect();
    let mut completion_rxs = Vec::new();
    let mut completions = Vec::new();
    for _ in 0..args.clients {
        let (tx, rx) = mpsc::unbounded_channel();
        completions.push(tx);
        completion_rxs.push(rx);
    }
    let shared = Arc::new(Shared {
        docs,
        counters: Counters::default(),
        pending: Mutex::new(HashMap::new()),
        latencies_us: Mutex::new(Vec::new()),
        last_done: Mutex::new(Instant::now()),
        completions,
        errors: Mutex::new(Vec::new()),
        edit_docs,
    });

    let label = args.label.clone().unwrap_or_default();
    let tag = if label.is_empty() {
        String::new()
    } else {
        format!("[{label}] ")
    };
    eprintln!(
        "{tag}connecting {} clients to {} ({} documents, {} shared by {} clients each)",
        args.clients, args.url, documents, edit_docs, k
    );
    let tokens: Vec<String> = match &args.tokens {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("could not read {}: {e}", path.display()))?;
            let tokens: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if tokens.is_empty() {
                return Err(format!("{} lists no tokens", path.display()));
            }
            tokens
        }
        None => Vec::new(),
    };
    let schools = tokens.len().max(1);
    let run_id = random_hex(4);
    let connect_started = Instant::now();
    let mut handshakes = Vec::new();
    for c in 0..args.clients {
        let url = if tokens.is_empty() {
            args.url.clone()
        } else {
            with_token(&args.url, &tokens[c % tokens.len()])
        };
        let peer_id = format!("load-{run_id}-{c}");
        let storage_id = (!args.ephemeral).then(uuid_text);
        handshakes.push(tokio::spawn(async move {
            let result = connect(&url, &peer_id, storage_id).await;
            (peer_id, result)
        }));
    }
    let mut cmd_txs = Vec::new();
    let mut tasks = Vec::new();
    for (c, (handshake, completions)) in handshakes.into_iter().zip(completion_rxs).enumerate() {
        let (peer_id, result) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| format!("client {c} could not connect within {timeout:?}"))?
            .map_err(|e| format!("client {c}: {e}"))?;
        let (sink, stream, server_id) = result.map_err(|e| format!("client {c}: {e}"))?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let client = Client {
            idx: c,
            school: c % schools,
            schools,
            peer_id,
            server_id,
            shared: shared.clone(),
            sink,
            docs: HashMap::new(),
            phase: Phase::Idle,
            window: args.window.max(1),
            queue: VecDeque::new(),
            active: HashSet::new(),
            edits_target: args.edits,
            in_flight: args.in_flight.max(1),
            edits_issued: 0,
            edit_docs: Vec::new(),
            unshared: HashMap::new(),
        };
        cmd_txs.push(cmd_tx);
        tasks.push(tokio::spawn(client.run(stream, cmd_rx, completions)));
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let mut report = json!({
        "label": label,
        "url": args.url,
        "clients": args.clients,
        "documents": documents,
        "edit_documents": edit_docs,
        "subscribers": k,
        "edits_per_client": args.edits,
        "in_flight": args.in_flight.max(1),
        "ephemeral_clients": args.ephemeral,
        "connect_secs": connect_secs,
    });
    let mut ok = true;
    let broadcast = |make: &dyn Fn() -> Cmd| {
        for tx in &cmd_txs {
            let _ = tx.send(make());
        }
    };

    if !args.skip_seed {
        // Build every plan first (not timed). Writing a plan's text is
        // slow (one operation per character), so plans are forks of a few
        // distinct templates, each with its own title in one more change.
        let started = Instant::now();
        // A whole number of templates per school, one at least.
        let count = args.templates.clamp(1, documents.max(1)).div_ceil(schools) * schools;
        let rows = args.rows.max(1);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut builders = Vec::new();
        for t in 0..threads {
            builders.push(tokio::task::spawn_blocking(move || {
                (t..count)
                    .step_by(threads)
                    .map(|i| (i, build_plan(i, rows)))
                    .collect::<Vec<_>>()
            }));
        }
        let mut templates: Vec<(usize, Automerge)> = Vec::new();
        for builder in builders {
            templates.extend(
                builder
                    .await
                    .map_err(|e| format!("building templates failed: {e}"))?,
            );
        }
        templates.sort_by_key(|(i, _)| *i);
        let templates = Arc::new(templates.into_iter().map(|(_, d)| d).collect::<Vec<_>>());
        let mut answers = Vec::new();
        for tx in &cmd_txs {
            let (answer, rx) = oneshot::channel();
            let _ = tx.send(Cmd::Prepare(templates.clone(), answer));
            answers.push(rx);
        }
        let mut total_bytes = 0;
        let mut total_measured = 0;
        let mut total_docs = 0;
        for rx in answers {
            let (count, measured, bytes) = tokio::time::timeout(timeout, rx)
                .await
                .map_err(|_| "building documents took too long".to_string())?
                .map_err(|_| "a client stopped while building documents".to_string())?;
            total_docs += count;
            total_measured += measured;
            total_bytes += bytes;
        }
        let avg = total_bytes / total_measured.max(1);
        eprintln!(
            "{tag}built {total_docs} plans from {count} templates in {:.1}s, {avg} bytes each on average",
            started.elapsed().as_secs_f64(),
        );
        report["doc_bytes_avg"] = json!(avg);
        report["templates"] = json!(count);

        let started = Instant::now();
        *shared.last_done.lock().unwrap() = started;
        broadcast(&|| Cmd::Seed);
        let done = wait_phase(&shared, "seed", &tag, documents, timeout, |s| {
            s.counters.seeded.load(Ordering::Relaxed)
        })
        .await;
        let secs = phase_secs(&shared, started, done == documents);
        ok &= done == documents;
        report["seed"] = json!({
            "documents": done,
            "complete": done == documents,
            "secs": secs,
            "docs_per_sec": done as f64 / secs.max(1e-9),
        });
        if let Some(path) = &args.ids_out {
            let text: String = shared.docs.iter().map(|d| format!("{}\n", d.id)).collect();
            std::fs::write(path, text)
                .map_err(|e| format!("could not write {}: {e}", path.display()))?;
        }
    }

    if !args.seed_only && ok {
        // Everyone who shares a document but does not hold it fetches it.
        let expected: usize = shared
            .docs
            .iter()
            .take(edit_docs)
            .map(|d| d.subscribers.len() - usize::from(!args.skip_seed))
            .sum();
        let started = Instant::now();
        *shared.last_done.lock().unwrap() = started;
        broadcast(&|| Cmd::Fetch);
        let done = wait_phase(&shared, "fetch", &tag, expected, timeout, |s| {
            s.counters.fetched.load(Ordering::Relaxed)
                + s.counters.fetch_failed.load(Ordering::Relaxed)
        })
        .await;
        let failed = shared.counters.fetch_failed.load(Ordering::Relaxed);
        let fetched = done - failed.min(done);
        let secs = phase_secs(&shared, started, done == expected);
        ok &= fetched == expected;
        report["fetch"] = json!({
            "fetches": fetched,
            "unavailable": failed,
            "expected": expected,
            "complete": fetched == expected,
            "secs": secs,
            "fetches_per_sec": fetched as f64 / secs.max(1e-9),
        });

        if ok && args.idle_secs > 0 {
            if let Some(pid) = args.pid {
                report["server_memory_before_idle"] = server_memory(pid);
            }
            eprintln!(
                "{tag}idle: every client stays connected for {}s",
                args.idle_secs
            );
            tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
            if let Some(pid) = args.pid {
                report["server_memory_after_idle"] = server_memory(pid);
            }
            report["idle_secs"] = json!(args.idle_secs);
        }

        if ok {
            // Clients that share no edited document make no edits.
            let editors = (0..args.clients)
                .filter(|c| {
                    shared
                        .docs
                        .iter()
                        .take(edit_docs)
                        .any(|d| d.subscribers.contains(c))
                })
                .count();
            let expected = editors * args.edits;
            let started = Instant::now();
            *shared.last_done.lock().unwrap() = started;
            broadcast(&|| Cmd::Edit);
            let done = wait_phase(&shared, "edit", &tag, expected, timeout, |s| {
                s.counters.edits_done.load(Ordering::Relaxed)
            })
            .await;
            let secs = phase_secs(&shared, started, done == expected);
            ok &= done == expected;
            let mut latencies = shared.latencies_us.lock().unwrap().clone();
            latencies.sort_unstable();
            report["edit"] = json!({
                "edits": done,
                "expected": expected,
                "complete": done == expected,
                "secs": secs,
                "edits_per_sec": done as f64 / secs.max(1e-9),
                "latency_ms": latency_summary(&latencies),
            });
        }
    }

    broadcast(&|| Cmd::Stop);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let c = &shared.counters;
    report["traffic"] = json!({
        "frames_out": c.frames_out.load(Ordering::Relaxed),
        "frames_in": c.frames_in.load(Ordering::Relaxed),
        "bytes_out": c.bytes_out.load(Ordering::Relaxed),
        "bytes_in": c.bytes_in.load(Ordering::Relaxed),
    });
    if let Some(pid) = args.pid {
        report["server_memory"] = server_memory(pid);
    }
    let errors = shared.errors.lock().unwrap().clone();
    ok &= errors.is_empty();
    report["errors"] = json!(errors);
    report["ok"] = json!(ok);
    Ok(report)
}

/// Waits until `count` reaches `target` or the phase times out; prints
/// progress to stderr every two seconds. Returns the final count.
async fn wait_phase(
    shared: &Shared,
    name: &str,
    tag: &str,
    target: usize,
    timeout: Duration,
    count: impl Fn(&Shared) -> usize,
) -> usize {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let done = count(shared);
        if done >= target {
            eprintln!(
                "{tag}{name}: {done}/{target} in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            return done;
        }
        if !shared.errors.lock().unwrap().is_empty() && started.elapsed() > Duration::from_secs(1) {
            let errors = shared.errors.lock().unwrap().clone();
            eprintln!("{tag}{name}: stopping early after errors: {errors:?}");
            return done;
        }
        if started.elapsed() > timeout {
            eprintln!("{tag}{name}: gave up after {timeout:?} with {done}/{target} done");
            return done;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "{tag}{name}: {done}/{target} after {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A phase lasts until its last item finished (not until the coordinator
/// noticed), or until now when it did not finish.
fn phase_secs(shared: &Shared, started: Instant, complete: bool) -> f64 {
    let end = if complete {
        *shared.last_done.lock().unwrap()
    } else {
        Instant::now()
    };
    end.saturating_duration_since(started).as_secs_f64()
}

fn latency_summary(sorted_us: &[u64]) -> Value {
    if sorted_us.is_empty() {
        return Value::Null;
    }
    let at = |q: f64| {
        let i = ((sorted_us.len() - 1) as f64 * q).round() as usize;
        sorted_us[i] as f64 / 1000.0
    };
    let mean = sorted_us.iter().sum::<u64>() as f64 / sorted_us.len() as f64 / 1000.0;
    json!({
        "count": sorted_us.len(),
        "min": at(0.0),
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": at(1.0),
        "mean": mean,
    })
}

fn server_memory(pid: u32) -> Value {
    let path = format!("/proc/{pid}/status");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return json!({ "pid": pid, "error": format!("could not read {path}") });
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    json!({
        "pid": pid,
        "vm_hwm_kb": field("VmHWM:"),
        "vm_rss_kb": field("VmRSS:"),
    })
}

fn print_text(report: &Value) {
    println!(
        "partnerplan-load {}: {} clients, {} documents ({} edited, {} subscribers each)",
        report["url"].as_str().unwrap_or(""),
        report["clients"],
        report["documents"],
        report["edit_documents"],
        report["subscribers"]
    );
    if let Some(bytes) = report["doc_bytes_avg"].as_u64() {
        println!("  plan size        {bytes} bytes saved, on average");
    }
    if report["seed"].is_object() {
        let s = &report["seed"];
        println!(
            "  seed             {} documents in {:.2}s ({:.0} docs/s){}",
            s["documents"],
            s["secs"].as_f64().unwrap_or(0.0),
            s["docs_per_sec"].as_f64().unwrap_or(0.0),
            if s["complete"] == json!(true) {
                ""
            } else {
                "  INCOMPLETE"
            }
        );
    }
    if report["fetch"].is_object() {
        let f = &report["fetch"];
        println!(
            "  fetch            {}/{} in {:.2}s ({:.0}/s), {} unavailable",
            f["fetches"],
            f["expected"],
            f["secs"].as_f64().unwrap_or(0.0),
            f["fetches_per_sec"].as_f64().unwrap_or(0.0),
            f["unavailable"]
        );
    }
    if report["edit"].is_object() {
        let e = &report["edit"];
        let l = &e["latency_ms"];
        println!(
            "  edit fan-out     {}/{} edits in {:.2}s = {:.0} edits/s",
            e["edits"],
            e["expected"],
            e["secs"].as_f64().unwrap_or(0.0),
            e["edits_per_sec"].as_f64().unwrap_or(0.0)
        );
        if l.is_object() {
            println!(
                "  latency (ms)     p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
                l["p50"].as_f64().unwrap_or(0.0),
                l["p95"].as_f64().unwrap_or(0.0),
                l["p99"].as_f64().unwrap_or(0.0),
                l["max"].as_f64().unwrap_or(0.0),
                l["mean"].as_f64().unwrap_or(0.0)
            );
        }
    }
    for (key, what) in [
        ("server_memory_before_idle", "before idle"),
        ("server_memory_after_idle", "after idle"),
        ("server_memory", "at the end"),
    ] {
        if let Some(m) = report.get(key) {
            println!(
                "  server memory    VmHWM {} kB, VmRSS {} kB {what} (pid {})",
                m["vm_hwm_kb"], m["vm_rss_kb"], m["pid"]
            );
        }
    }
    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    for error in &errors {
        println!("  error: {}", error.as_str().unwrap_or(""));
    }
    println!(
        "  result           {}",
        if report["ok"] == json!(true) {
            "ok"
        } else {
            "FAILED"
        }
    );
}
