//! A bad link between a school and the relay, for tests and benchmarks: a
//! TCP proxy on 127.0.0.1 that delays (latency with jitter), limits
//! bandwidth, stalls, and cuts connections mid-frame, on a schedule drawn
//! from a seed, so a failing run can be replayed. It counts the bytes it
//! carries each way, WebSocket framing included.
//!
//! Each connection is two one-way pipes. A pipe's reader takes what the
//! sender wrote in packet-sized pieces and queues them (at most
//! [`QUEUE_BYTES`] per pipe, so a fast sender waits as it would on a real
//! slow link); its writer puts each piece on the wire once the link is
//! free for it (`bits_per_second`), and delivers it `latency ± jitter`
//! later, never before the piece ahead of it. A cut writes half of the
//! piece in hand and shuts both sockets: the receiver sees a frame end
//! mid-way, as when a line drops.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a piece read from a socket holds at most: about one packet.
const PIECE: usize = 1400;
/// How much one direction of one connection holds in flight.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// The link's character.
#[derive(Debug, Clone)]
pub struct LinkShape {
    /// One-way delay.
    pub latency: Duration,
    /// Each piece's delay varies by up to this much either way.
    pub jitter: Duration,
    /// Each direction's bandwidth; `None` for as fast as loopback.
    pub bits_per_second: Option<u64>,
    /// Every connection is cut after a time drawn from this range (from
    /// when it opened), if set.
    pub cut_after: Option<(Duration, Duration)>,
    /// Seeds every random draw (jitter, cut times).
    pub seed: u64,
}

impl LinkShape {
    /// A link that adds nothing: for counting bytes.
    pub fn clear() -> LinkShape {
        LinkShape {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            bits_per_second: None,
            cut_after: None,
            seed: 0,
        }
    }

    /// A rural school's line: `latency_ms` ± `jitter_ms` each way and
    /// `kbit` kbit/s.
    pub fn rural(latency_ms: u64, jitter_ms: u64, kbit: u64, seed: u64) -> LinkShape {
        LinkShape {
            latency: Duration::from_millis(latency_ms),
            jitter: Duration::from_millis(jitter_ms),
            bits_per_second: Some(kbit * 1000),
            cut_after: None,
            seed,
        }
    }

    /// The same, cut after a time between `min` and `max` each connection.
    pub fn cut_between(mut self, min: Duration, max: Duration) -> LinkShape {
        self.cut_after = Some((min, max));
        self
    }
}

/// What the shaper has carried and done.
#[derive(Debug, Default)]
pub struct LinkCounts {
    /// Bytes from the schools to the relay.
    pub up: AtomicU64,
    /// Bytes from the relay to the schools.
    pub down: AtomicU64,
    pub connections: AtomicU64,
    pub cuts: AtomicU64,
}

struct Shared {
    shape: LinkShape,
    counts: LinkCounts,
    /// Nothing is delivered before this instant.
    stalled_until: Mutex<Instant>,
    /// While set, new connections are closed at once.
    offline: AtomicBool,
    /// Bumped by `cut_all`: every connection opened before is cut.
    generation: AtomicU64,
    stop: AtomicBool,
    rng: Mutex<StdRng>,
    /// Every open socket, so a cut or the end reaches blocked readers.
    sockets: Mutex<Vec<(u64, TcpStream)>>,
}

/// A running shaper; dropping it closes every connection it carries.
pub struct Shaper {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Shaper {
    /// Listens on a random port of 127.0.0.1 and carries each connection
    /// to `upstream` through a link of `shape`.
    pub fn start(upstream: SocketAddr, shape: LinkShape) -> Shaper {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the shaper listens on loopback");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            rng: Mutex::new(StdRng::seed_from_u64(shape.seed)),
            shape,
            counts: LinkCounts::default(),
            stalled_until: Mutex::new(Instant::now()),
            offline: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
        });
        listener.set_nonblocking(true).expect("a listener can poll");
        let accepting = shared.clone();
        thread::spawn(move || accept_loop(listener, upstream, accepting));
        Shaper { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's address as schools behind this link reach it.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn counts(&self) -> &LinkCounts {
        &self.shared.counts
    }

    /// Bytes carried both ways so far.
    pub fn bytes(&self) -> u64 {
        self.shared.counts.up.load(Ordering::Relaxed)
            + self.shared.counts.down.load(Ordering::Relaxed)
    }

    /// Delivers nothing, either way, for `how_long`.
    pub fn stall(&self, how_long: Duration) {
        *self.shared.stalled_until.lock().unwrap() = Instant::now() + how_long;
    }

    /// Cuts every connection open now, mid-frame.
    pub fn cut_all(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared.counts.cuts.fetch_add(1, Ordering::Relaxed);
        for (_, socket) in self.shared.sockets.lock().unwrap().iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Takes the line down (every connection cut, new ones closed at once)
    /// or brings it back.
    pub fn set_offline(&self, offline: bool) {
        self.shared.offline.store(offline, Ordering::SeqCst);
        if offline {
            self.cut_all();
        }
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut_all();
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let school = match listener.accept() {
            Ok((socket, _)) => socket,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        if shared.offline.load(Ordering::SeqCst) {
            continue; // dropped: closed at once
        }
        let Ok(relay) = TcpStream::connect(upstream) else {
            continue;
        };
        let _ = school.set_nonblocking(false);
        let _ = school.set_nodelay(true);
        let _ = relay.set_nodelay(true);
        next_id += 1;
        shared.counts.connections.fetch_add(1, Ordering::Relaxed);
        let cut_at = shared.shape.cut_after.map(|(min, max)| {
            let mut rng = shared.rng.lock().unwrap();
            let span = max.saturating_sub(min).as_millis() as u64;
            Instant::now() + min + Duration::from_millis(rng.random_range(0..=span))
        });
        let connection = Connection {
            id: next_id,
            generation: shared.generation.load(Ordering::SeqCst),
            cut_at,
            cut: Arc::new(AtomicBool::new(false)),
        };
        {
            let mut sockets = shared.sockets.lock().unwrap();
            sockets.push((next_id, school.try_clone().unwrap()));
            sockets.push((next_id, relay.try_clone().unwrap()));
        }
        pipe(&shared, &connection, &school, &relay, true);
        pipe(&shared, &connection, &relay, &school, false);
    }
}

#[derive(Clone)]
struct Connection {
    id: u64,
    generation: u64,
    cut_at: Option<Instant>,
    /// Set once this connection is cut (by either pipe), so the other
    /// pipe stops too.
    cut: Arc<AtomicBool>,
}

impl Connection {
    fn should_cut(&self, shared: &Shared) -> bool {
        self.cut.load(Ordering::SeqCst)
            || shared.generation.load(Ordering::SeqCst) != self.generation
            || self.cut_at.is_some_and(|at| Instant::now() >= at)
    }
}

struct Piece {
    bytes: Vec<u8>,
    arrived: Instant,
}

/// One direction of one connection: a reader thread and a writer thread.
fn pipe(shared: &Arc<Shared>, conn: &Connection, from: &TcpStream, to: &TcpStream, up: bool) {
    let (send, receive) = sync_channel::<Piece>(QUEUE_BYTES / PIECE);
    let from = from.try_clone().unwrap();
    let reading = (shared.clone(), conn.clone());
    thread::spawn(move || read_side(from, send, reading.0, reading.1));
    let to = to.try_clone().unwrap();
    let writing = (shared.clone(), conn.clone());
    thread::spawn(move || write_side(to, receive, writing.0, writing.1, up));
}

fn read_side(mut from: TcpStream, send: SyncSender<Piece>, shared: Arc<Shared>, conn: Connection) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = [0u8; PIECE];
    loop {
        if conn.should_cut(&shared) || shared.stop.load(Ordering::SeqCst) {
            break;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                let piece = Piece {
                    bytes: buffer[..n].to_vec(),
                    arrived: Instant::now(),
                };
                if send.send(piece).is_err() {
                    break;
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    // Dropping `send` tells the writer this side ended.
}

fn write_side(
    mut to: TcpStream,
    receive: Receiver<Piece>,
    shared: Arc<Shared>,
    conn: Connection,
    up: bool,
) {
    let shape = shared.shape.clone();
    let mut link_free = Instant::now();
    let mut last_delivery = Instant::now();
    let counter = if up {
        &shared.counts.up
    } else {
        &shared.counts.down
    };
    let cut_here = |to: &mut TcpStream, piece: Option<&Piece>| {
        if let Some(piece) = piece {
            // Half of what was in flight arrives: a frame cut mid-way.
            let half = &piece.bytes[..piece.bytes.len() / 2];
            if to.write_all(half).is_ok() {
                counter.fetch_add(half.len() as u64, Ordering::Relaxed);
            }
        }
        if !conn.cut.swap(true, Ordering::SeqCst) && conn.cut_at.is_some() {
            shared.counts.cuts.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        let piece = match receive.recv_timeout(Duration::from_millis(50)) {
            Ok(piece) => piece,
            Err(RecvTimeoutError::Timeout) => {
                if conn.should_cut(&shared) {
                    cut_here(&mut to, None);
                    break;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // On the wire once the link is free, there `len` bits long.
        let start = piece.arrived.max(link_free);
        let on_wire = shape.bits_per_second.map_or(Duration::ZERO, |bps| {
            Duration::from_secs_f64(piece.bytes.len() as f64 * 8.0 / bps as f64)
        });
        link_free = start + on_wire;
        // latency ± jitter, never below zero.
        let delay = if shape.jitter.is_zero() {
            shape.latency
        } else {
            let micros = shape.latency.as_micros() as i64 + signed_micros(&shared, shape.jitter);
            Duration::from_micros(micros.max(0) as u64)
        };
        let due = (link_free + delay).max(last_delivery);
        last_delivery = due;
        // Wait until due (and past any stall), watching for a cut.
        let cut = loop {
            if conn.should_cut(&shared) {
                break true;
            }
            let stalled = *shared.stalled_until.lock().unwrap();
            let until = due.max(stalled);
            let now = Instant::now();
            if now >= until {
                break false;
            }
            thread::sleep((until - now).min(Duration::from_millis(20)));
        };
        if cut {
            cut_here(&mut to, Some(&piece));
            break;
        }
        if to.write_all(&piece.bytes).is_err() {
            break;
        }
        counter.fetch_add(piece.bytes.len() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown(Shutdown::Both);
    conn.cut.store(true, Ordering::SeqCst);
    shared
        .sockets
        .lock()
        .unwrap()
        .retain(|(id, _)| *id != conn.id);
}

/// A draw from -jitter..=jitter, in microseconds.
fn signed_micros(shared: &Shared, jitter: Duration) -> i64 {
    let span = jitter.as_micros() as i64;
    shared.rng.lock().unwrap().random_range(-span..=span)
}
