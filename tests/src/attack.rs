//! What the attack tests share: a raw automerge-repo socket, an honest
//! school that keeps timing the relay while an attack runs, and the
//! relay process's peak memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ROOT};
use futures_util::{SinkExt, StreamExt};
use partnerplan_sync::DocumentId;
use partnerplan_sync::message::{Message, PeerMetadata, SyncFrame};
use tokio_tungstenite::tungstenite::Message as Ws;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one step of a test waits for the relay.
pub const STEP: Duration = Duration::from_secs(10);

/// Connects to `url` (an invite) and completes the handshake as
/// `peer_id`; `Err` is what the relay said instead.
pub async fn join(url: &str, peer_id: &str) -> Result<Socket, String> {
    let (mut socket, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "no connection within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    handshake(&mut socket, peer_id).await?;
    Ok(socket)
}

/// Sends `join` as `peer_id` and reads the relay's `peer`.
async fn handshake(socket: &mut Socket, peer_id: &str) -> Result<(), String> {
    let join = Message::Join {
        sender_id: peer_id.into(),
        supported_protocol_versions: vec!["1".into()],
        metadata: PeerMetadata::default(),
    };
    socket
        .send(Ws::Binary(join.encode().into()))
        .await
        .map_err(|e| e.to_string())?;
    match next_message(socket).await {
        Some(Message::Peer { .. }) => Ok(()),
        Some(Message::Error { message, .. }) => Err(message),
        other => Err(format!("expected peer, got {other:?}")),
    }
}

/// [`join`], over a socket whose receive buffer is kept small (64 KiB),
/// so that a peer that stops reading stops taking data at once, as a slow
/// link would, rather than after the kernel has taken megabytes for it.
pub async fn join_small_buffer(url: &str, peer_id: &str) -> Result<Socket, String> {
    let addr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split(['/', '?']).next())
        .ok_or("a ws:// address")?;
    let addr: std::net::SocketAddr = addr.parse().map_err(|_| "an address".to_string())?;
    let tcp = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    tcp.set_recv_buffer_size(64 * 1024)
        .map_err(|e| e.to_string())?;
    let stream = tcp.connect(addr).await.map_err(|e| e.to_string())?;
    let (mut socket, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .map_err(|e| e.to_string())?;
    handshake(&mut socket, peer_id).await?;
    Ok(socket)
}

/// The next protocol message, or None once the connection is closed or
/// silent for [`STEP`].
pub async fn next_message(socket: &mut Socket) -> Option<Message> {
    loop {
        let frame = tokio::time::timeout(STEP, socket.next()).await.ok()?;
        match frame {
            Some(Ok(Ws::Binary(bytes))) => {
                return Some(
                    Message::decode(&bytes, usize::MAX).expect("the relay sends valid messages"),
                );
            }
            Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Reads until the relay sends an `error`, and returns it; None if the
/// connection closes (or goes silent) without one.
pub async fn error_message(socket: &mut Socket) -> Option<String> {
    loop {
        match next_message(socket).await? {
            Message::Error { message, .. } => return Some(message),
            _ => continue,
        }
    }
}

/// A `sync` (or `request`) frame carrying `message` for `document_id`.
pub fn sync_frame(
    sender: &str,
    document_id: DocumentId,
    message: sync::Message,
    request: bool,
) -> Ws {
    let frame = SyncFrame {
        sender_id: sender.into(),
        target_id: "relay".into(),
        document_id,
        data: message.encode(),
    };
    let message = if request {
        Message::Request(frame)
    } else {
        Message::Sync(frame)
    };
    Ws::Binary(message.encode().into())
}

/// Syncs `doc` to the relay as `document_id` until the relay holds its
/// heads. Panics if it does not within [`STEP`].
pub async fn push(socket: &mut Socket, sender: &str, document_id: DocumentId, doc: &mut Automerge) {
    let mut state = sync::State::new();
    push_with(socket, sender, document_id, doc, &mut state).await;
}

async fn push_with(
    socket: &mut Socket,
    sender: &str,
    document_id: DocumentId,
    doc: &mut Automerge,
    state: &mut sync::State,
) {
    let heads = doc.get_heads();
    exchange_until(
        socket,
        sender,
        document_id,
        doc,
        state,
        "the relay took the document",
        |_, state| state.their_heads.as_ref() == Some(&heads),
    )
    .await;
}

/// Syncs `doc` from the relay until it holds `heads` (the relay sends
/// what it has as the sync goes). Panics if that takes over [`STEP`].
pub async fn pull(
    socket: &mut Socket,
    sender: &str,
    document_id: DocumentId,
    doc: &mut Automerge,
    state: &mut sync::State,
    heads: &[automerge::ChangeHash],
) {
    let mut wanted = heads.to_vec();
    wanted.sort();
    exchange_until(
        socket,
        sender,
        document_id,
        doc,
        state,
        "the document arrived in time",
        |doc, _| {
            let mut ours = doc.get_heads();
            ours.sort();
            ours == wanted
        },
    )
    .await;
}

/// Runs the sync exchange for one document with the relay until `done`
/// holds, panicking with `what` if it does not within [`STEP`], or if the
/// relay refuses or closes.
async fn exchange_until(
    socket: &mut Socket,
    sender: &str,
    document_id: DocumentId,
    doc: &mut Automerge,
    state: &mut sync::State,
    what: &str,
    done: impl Fn(&Automerge, &sync::State) -> bool,
) {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(message) = doc.generate_sync_message(state) {
            socket
                .send(sync_frame(sender, document_id, message, false))
                .await
                .expect("the relay takes the message");
        }
        if done(doc, state) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}");
        match next_message(socket).await {
            Some(Message::Sync(frame)) if frame.document_id == document_id => {
                let message = sync::Message::decode(&frame.data).unwrap();
                doc.receive_sync_message(state, message).unwrap();
            }
            Some(Message::Error { message, .. }) => panic!("the relay refused: {message}"),
            Some(_) => {}
            None => panic!("the relay closed the connection"),
        }
    }
}

/// A document with `changes` small changes, one after another.
pub fn document_with_changes(changes: usize) -> Automerge {
    let mut doc = AutoCommit::new();
    for i in 0..changes {
        doc.put(ROOT, "count", i as i64).unwrap();
        doc.commit();
    }
    doc.document().clone()
}

/// An honest school editing its own document over and over while an
/// attack runs, timing each edit from sending it to the relay's answer
/// that it holds it. The relay is "answering" if the 95th percentile
/// stays under [`HonestSchool::RESPONSIVE`].
pub struct HonestSchool {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Duration>>,
}

impl HonestSchool {
    /// What the relay must keep to, at the 95th percentile.
    pub const RESPONSIVE: Duration = Duration::from_millis(250);
    /// One edit unanswered this long counts as this long.
    const GIVE_UP: Duration = Duration::from_secs(5);

    /// Joins with `invite` and starts editing; returns once the first
    /// edit is answered.
    pub fn start(invite: &str) -> HonestSchool {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let invite = invite.to_string();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut socket = join(&invite, "honest-school")
                    .await
                    .expect("the honest school joins");
                let id = DocumentId::random();
                let mut doc = Automerge::new();
                let mut tx = doc.transaction();
                tx.put(ROOT, "title", "Our plan").unwrap();
                tx.commit();
                let mut state = sync::State::new();
                push_with(&mut socket, "honest-school", id, &mut doc, &mut state).await;
                let _ = ready_tx.send(());
                let mut samples = Vec::new();
                let mut edit = 0i64;
                while !stopping.load(Ordering::Relaxed) && samples.len() < 10_000 {
                    edit += 1;
                    let mut tx = doc.transaction();
                    tx.put(ROOT, "edits", edit).unwrap();
                    tx.commit();
                    let started = Instant::now();
                    let answered = tokio::time::timeout(
                        Self::GIVE_UP,
                        push_with(&mut socket, "honest-school", id, &mut doc, &mut state),
                    )
                    .await;
                    samples.push(started.elapsed());
                    if answered.is_err() {
                        // Start again on a new connection.
                        match join(&invite, &format!("honest-school-{edit}")).await {
                            Ok(new) => socket = new,
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                        state = sync::State::new();
                    }
                    // About 40 messages a second.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                samples
            })
        });
        ready_rx
            .recv_timeout(STEP * 3)
            .expect("the honest school's first edit is answered");
        HonestSchool { stop, thread }
    }

    /// Stops editing; fails the test unless the relay answered within
    /// [`Self::RESPONSIVE`] at the 95th percentile during `what`.
    pub fn finish(self, what: &str) -> Duration {
        let bound = Self::RESPONSIVE;
        self.stop.store(true, Ordering::Relaxed);
        let mut samples = self.thread.join().expect("the honest school ran");
        assert!(
            samples.len() >= 5,
            "the honest school made only {} edits during {what}",
            samples.len()
        );
        samples.sort();
        let p95 = samples[(samples.len() * 95).div_ceil(100) - 1];
        eprintln!(
            "during {what} the honest school was answered in {p95:?} at the 95th percentile ({} edits)",
            samples.len()
        );
        assert!(
            p95 <= bound,
            "during {what} the relay answered an honest school in {p95:?} at the 95th percentile ({} edits, slowest {:?}), over {bound:?}",
            samples.len(),
            samples.last().unwrap(),
        );
        p95
    }
}

/// The highest resident memory of a process, sampled every 20 ms from
/// /proc while an attack runs.
pub struct PeakMemory {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    start_kib: u64,
    thread: JoinHandle<()>,
}

impl PeakMemory {
    pub fn watch(pid: u32) -> PeakMemory {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let (stopping, peak) = (stop.clone(), peak_kib.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if let Some(kib) = resident_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PeakMemory {
            stop,
            peak_kib,
            start_kib: resident_kib(pid).unwrap_or(0),
            thread,
        }
    }

    /// Stops watching; fails the test if the process grew by more than
    /// `limit_mib` over what it held when watching began.
    pub fn finish_growth(self, limit_mib: u64, what: &str) -> u64 {
        let start_mib = self.start_kib / 1024;
        let peak_mib = self.finish(u64::MAX, what);
        let grown = peak_mib.saturating_sub(start_mib);
        assert!(
            grown <= limit_mib,
            "during {what} the relay grew by {grown} MiB (from {start_mib} to {peak_mib}), over {limit_mib} MiB"
        );
        grown
    }

    /// Stops watching; fails the test if the peak was over `limit_mib`.
    pub fn finish(self, limit_mib: u64, what: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let peak_mib = self.peak_kib.load(Ordering::Relaxed) / 1024;
        assert!(peak_mib > 0, "the relay's memory could be read");
        assert!(
            peak_mib <= limit_mib,
            "during {what} the relay grew to {peak_mib} MiB, over {limit_mib} MiB"
        );
        peak_mib
    }
}

/// `VmRSS` of a process, in KiB.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
