//! What the fuzz targets share: a relay's database with two partnerships,
//! four schools and a document kept for each partnership; the input
//! format of the `relay_core` target (so the corpus generator writes what
//! it reads); and [`Session`], which drives the relay's real core with one
//! input, as the engine would, and checks what must hold whatever arrives.
//!
//! The schools, one connection slot each:
//!
//! | slot | school       | North  | South  | `join` sent for it |
//! |------|--------------|--------|--------|--------------------|
//! | 0    | North Member | member |        | yes                |
//! | 1    | North Viewer | viewer |        | no                 |
//! | 2    | South Member |        | member | yes (offers compact sync) |
//! | 3    | Both Ways    | member (home) | viewer | no          |
//!
//! A register change (the lead school at the admin pages) makes Both Ways
//! a viewer of North and takes North Viewer off the relay; the next one
//! puts both back.
//!
//! The relay's limits are set low (see [`Relay::new`]), so short inputs
//! reach what large ones would: messages applied on the worker thread
//! (finished one step later, as other frames arrive), sync messages held
//! back for a connection that reads slowly, quotas refused.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Automerge, ROOT};
use partnerplan_relay::directory::{Directory, hash_token};
use partnerplan_relay::{DATABASE_FILE, RelayConfig, core_from_store};
use partnerplan_sync::access::{
    AccessRecord, DailyAllowance, Grant, Owner, PartnershipId, Register, Role, SchoolId,
};
use partnerplan_sync::authors::new_authors;
use partnerplan_sync::compact;
use partnerplan_sync::message::{COMPACT_VERSION, PROTOCOL_VERSION};
use partnerplan_sync::repo::{Quotas, Work};
use partnerplan_sync::store::Write;
use partnerplan_sync::{ConnId, DocumentId, Effect, Event, Message, PeerMetadata, Repo, Store};

/// How many connection slots an input drives.
pub const SLOTS: usize = 4;

/// Each slot's school and the peer id its `join` says.
pub const SCHOOLS: [&str; SLOTS] = ["North Member", "North Viewer", "South Member", "Both Ways"];
pub const PEERS: [&str; SLOTS] = ["fuzz-member", "fuzz-viewer", "fuzz-south", "fuzz-both"];
/// Slots whose `join` the harness sends as each connection opens, so most
/// inputs test open connections; the others get only what the input says.
const JOINED_FOR_IT: [bool; SLOTS] = [true, false, true, false];

/// The document North keeps from the start, written by North Member under
/// [`NORTH_ACTOR`]; and South's, by South Member under [`SOUTH_ACTOR`].
pub const NORTH_DOC: DocumentId = DocumentId::from_bytes([0x11; 16]);
pub const SOUTH_DOC: DocumentId = DocumentId::from_bytes([0x22; 16]);
pub const NORTH_ACTOR: [u8; 16] = [0xa1; 16];
pub const SOUTH_ACTOR: [u8; 16] = [0xb2; 16];

/// A minute and a second: past the relay's idle time, so a tick lets
/// documents nobody syncs leave memory.
const TICK_MS: u64 = 61_000;

/// The documents the relay holds from the start, made the same way every
/// time (fixed actors and times), so corpus inputs can build on them.
pub fn kept_documents() -> [(DocumentId, AutoCommit); 2] {
    let make = |actor: [u8; 16], title: &str| {
        let mut doc = AutoCommit::new().with_actor(ActorId::from(actor));
        doc.put(ROOT, "title", title).unwrap();
        doc.put(ROOT, "status", "amber").unwrap();
        doc.commit_with(CommitOptions::default().with_time(0));
        doc
    };
    [
        (NORTH_DOC, make(NORTH_ACTOR, "North action plan")),
        (SOUTH_DOC, make(SOUTH_ACTOR, "South action plan")),
    ]
}

/// A relay's data: its store and config, the grants its four schools'
/// connections open with, and the two registers a register change
/// switches between.
pub struct Relay {
    pub store: Store,
    pub config: RelayConfig,
    /// What each slot's connection opens with under each register
    /// (`None`: the relay turns it away before the core hears of it).
    pub grants: [[Option<Grant>; SLOTS]; 2],
    /// The partnership each slot's invite names.
    pub homes: [PartnershipId; SLOTS],
    pub schools: [SchoolId; SLOTS],
    /// The register as set up, and as changed by the lead school.
    pub registers: [Arc<Register>; 2],
    pub north: PartnershipId,
    pub south: PartnershipId,
    _dir: tempfile::TempDir,
}

impl Relay {
    pub fn new() -> Relay {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = "ws://127.0.0.1:1";
        let mut directory = Directory::open(dir.path()).expect("the register opens");
        let north = directory.create_partnership("North").unwrap().id;
        let south = directory.create_partnership("South").unwrap().id;
        let mut add = |partnership: &str, name: &str, role: Role| {
            directory
                .add_school(partnership, name, role, url)
                .unwrap()
                .0
                .map(|invite| invite.token)
        };
        let tokens = [
            add(&north, SCHOOLS[0], Role::Member),
            add(&north, SCHOOLS[1], Role::Viewer),
            add(&south, SCHOOLS[2], Role::Member),
            add(&north, SCHOOLS[3], Role::Member),
        ]
        .map(|token| token.expect("a new school gets a token"));
        add(&south, SCHOOLS[3], Role::Viewer);
        let initial = Arc::new(directory.register().unwrap());
        // The change, then back, so the file holds the register as set up.
        directory
            .set_role(SCHOOLS[3], &north, Role::Viewer)
            .unwrap();
        directory.remove_school(SCHOOLS[1], Some(&north)).unwrap();
        let changed = Arc::new(directory.register().unwrap());
        directory
            .set_role(SCHOOLS[3], &north, Role::Member)
            .unwrap();
        directory
            .add_school(&north, SCHOOLS[1], Role::Viewer, url)
            .unwrap();
        drop(directory);
        let homes = [0, 1, 2, 3].map(|slot| {
            if slot == 2 {
                south.clone()
            } else {
                north.clone()
            }
        });
        // Each connects with its invite, which names its partnership (Both
        // Ways': North, where it creates documents).
        let grants = [&initial, &changed].map(|register| {
            [0, 1, 2, 3].map(|slot| {
                register
                    .authenticate(&hash_token(&tokens[slot]), Some(&homes[slot]))
                    .ok()
            })
        });
        let schools = grants[0]
            .clone()
            .map(|grant| grant.expect("every token is good").school_id().clone());
        let mut store = Store::open(dir.path().join(DATABASE_FILE)).expect("the store opens");
        let mut writes = Vec::new();
        for ((document_id, mut doc), (partnership, school, actor)) in
            kept_documents().into_iter().zip([
                (&north, &schools[0], NORTH_ACTOR),
                (&south, &schools[2], SOUTH_ACTOR),
            ])
        {
            writes.push(Write::Owner {
                document_id,
                owner: Owner {
                    partnership: partnership.clone(),
                    claimed_by: school.clone(),
                    writer: None,
                },
            });
            writes.push(Write::Chunk {
                document_id,
                data: doc.save(),
            });
            writes.push(Write::Access(AccessRecord::ActorBound {
                actor: actor.to_vec(),
                school: school.clone(),
            }));
        }
        store
            .write(&writes)
            .expect("the kept documents are written");
        let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
        // Low limits, so inputs of a few kilobytes reach the paths that
        // large documents and busy days take.
        config.heavy_ops = 4;
        config.outbox_bytes = 4096;
        config.quotas = Quotas {
            message_ops: 100,
            document_ops: 400,
            document_bytes: 64 * 1024,
        };
        config.daily_allowance = DailyAllowance {
            ops: 2_000,
            bytes: 1024 * 1024,
        };
        Relay {
            store,
            config,
            grants,
            homes,
            schools,
            registers: [initial, changed],
            north,
            south,
            _dir: dir,
        }
    }
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

/// One step of a `relay_core` input.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a> {
    /// A frame arrives on a slot's connection (opened again first if it
    /// was closed, as a school's client reconnects).
    Frame { slot: usize, bytes: &'a [u8] },
    /// A minute passes (idle documents leave memory).
    Tick,
    /// A slot's connection drops and opens again.
    Reconnect { slot: usize },
    /// A slot's connection drops.
    Disconnect { slot: usize },
    /// A slot's peer stops reading what it is sent, or starts again.
    Stall { slot: usize },
    /// The lead school changes the register (or changes it back).
    RegisterChange,
    /// A slot's client says a document it is about to send is for North
    /// (`south: false`) or South: a `partnerplan-claim` frame, made here
    /// because partnership ids are new in every relay. The document is
    /// the given byte sixteen times.
    Claim {
        slot: usize,
        south: bool,
        document: u8,
    },
}

/// Reads an input: records of a tag byte (its low three bits say which
/// step, the next two the slot, the next one a disconnect or a stall, a
/// register change or a claim, and the top one the claim's partnership),
/// then for a frame a two-byte little-endian length and that many bytes
/// (fewer at the end), for a claim the document's byte.
pub fn steps(mut data: &[u8]) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        data = rest;
        let slot = usize::from(tag >> 3) % SLOTS;
        out.push(match tag & 7 {
            0..=3 => {
                let len = match data {
                    [a, b, ..] => u16::from_le_bytes([*a, *b]) as usize,
                    _ => break,
                };
                let bytes = &data[2..(2 + len).min(data.len())];
                data = &data[2 + bytes.len()..];
                Step::Frame {
                    slot: usize::from(tag & 3),
                    bytes,
                }
            }
            4 => Step::Tick,
            5 => Step::Reconnect { slot },
            6 if tag & 0x20 == 0 => Step::Disconnect { slot },
            6 => Step::Stall { slot },
            _ if tag & 0x20 == 0 => Step::RegisterChange,
            _ => {
                let Some((&document, rest)) = data.split_first() else {
                    break;
                };
                data = rest;
                Step::Claim {
                    slot,
                    south: tag & 0x40 != 0,
                    document,
                }
            }
        });
    }
    out
}

/// Writes steps in the format [`steps`] reads.
pub fn write(steps: &[Step<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Frame { slot, bytes } => {
                out.push(*slot as u8);
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Step::Tick => out.push(4),
            Step::Reconnect { slot } => out.push(5 | (*slot as u8) << 3),
            Step::Disconnect { slot } => out.push(6 | (*slot as u8) << 3),
            Step::Stall { slot } => out.push(6 | (*slot as u8) << 3 | 0x20),
            Step::RegisterChange => out.push(7),
            Step::Claim {
                slot,
                south,
                document,
            } => {
                out.push(7 | (*slot as u8) << 3 | 0x20 | u8::from(*south) << 6);
                out.push(*document);
            }
        }
    }
    out
}

/// The `join` a slot's client sends.
pub fn join(slot: usize) -> Message {
    Message::Join {
        sender_id: PEERS[slot].into(),
        supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
        metadata: PeerMetadata {
            storage_id: Some(format!("{}-storage", PEERS[slot])),
            is_ephemeral: false,
            listing: true,
            // South Member is one of our own clients, which sync in the
            // compact form; the others speak the standard protocol.
            compact: if slot == 2 { COMPACT_VERSION } else { 0 },
            ..PeerMetadata::default()
        },
    }
}

/// What a session saw, for the corpus generator to check its seeds reach
/// what they are meant to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Changes the relay kept.
    pub persisted: usize,
    /// Documents claimed.
    pub claimed: usize,
    /// `error` messages sent.
    pub errors: usize,
    /// Connections the relay closed.
    pub closed: usize,
    /// Sync messages with changes sent.
    pub served: usize,
    /// Listings sent.
    pub listings: usize,
    /// Ephemeral messages passed on.
    pub ephemeral: usize,
    /// Messages applied on the worker thread.
    pub worked: usize,
}

/// The relay's core driven through one input, with what the harness knows
/// independently of it: who owns each document, which school each actor
/// belongs to, what each document holds.
pub struct Session<'a> {
    relay: &'a Relay,
    repo: Repo,
    relay_peer: String,
    /// Which register is current (an index into `relay.registers`).
    register: usize,
    /// Each slot's open connection.
    open: [Option<ConnId>; SLOTS],
    /// Bytes sent to each slot that its peer has not read yet, and
    /// whether it has stopped reading.
    unread: [usize; SLOTS],
    stalled: [bool; SLOTS],
    /// Messages away on the worker thread.
    work: Vec<Work>,
    next_conn: ConnId,
    now_ms: u64,
    /// Each document's partnership, and its one writer if a viewer
    /// shared it (`Owner::writer`).
    owners: HashMap<DocumentId, (PartnershipId, Option<SchoolId>)>,
    actors: HashMap<Vec<u8>, SchoolId>,
    /// What storage holds of each document kept in this session.
    stored: HashMap<DocumentId, Automerge>,
    pub seen: Seen,
    /// Log every event and effect (`PARTNERPLAN_FUZZ_TRACE`, for
    /// `cargo run --example replay`).
    trace: bool,
}

impl<'a> Session<'a> {
    /// The core as `Relay::start` builds it from the database, with the
    /// slots whose `join` is sent for them connected.
    pub fn new(relay: &'a mut Relay) -> Session<'a> {
        let config = relay.config.clone();
        let (repo, _) = core_from_store(&mut relay.store, &config).expect("the core starts");
        let relay = &*relay;
        let mut session = Session {
            relay_peer: repo.config().peer_id.clone(),
            relay,
            repo,
            register: 0,
            open: [None; SLOTS],
            unread: [0; SLOTS],
            stalled: [false; SLOTS],
            work: Vec::new(),
            next_conn: 1,
            now_ms: 0,
            owners: HashMap::from([
                (NORTH_DOC, (relay.north.clone(), None)),
                (SOUTH_DOC, (relay.south.clone(), None)),
            ]),
            actors: HashMap::from([
                (NORTH_ACTOR.to_vec(), relay.schools[0].clone()),
                (SOUTH_ACTOR.to_vec(), relay.schools[2].clone()),
            ]),
            stored: HashMap::new(),
            seen: Seen::default(),
            trace: std::env::var_os("PARTNERPLAN_FUZZ_TRACE").is_some(),
        };
        for slot in 0..SLOTS {
            session.connect(slot);
        }
        session
    }

    /// Runs every step of an input, then [`finish`](Self::finish)es.
    pub fn run(mut self, data: &[u8]) -> Seen {
        for step in steps(data) {
            self.step(step);
        }
        self.finish()
    }

    /// Runs one step; then what the worker thread had before it comes
    /// back, and each peer that reads reports what it read.
    pub fn step(&mut self, step: Step<'_>) {
        let work = std::mem::take(&mut self.work);
        match step {
            Step::Frame { slot, bytes } => self.arrive(slot, bytes),
            Step::Tick => {
                self.now_ms += TICK_MS;
                let now_ms = self.now_ms;
                self.handle(None, Event::Tick { now_ms });
            }
            Step::Reconnect { slot } => {
                self.disconnect(slot);
                self.connect(slot);
            }
            Step::Disconnect { slot } => self.disconnect(slot),
            Step::Stall { slot } => self.stalled[slot] = !self.stalled[slot],
            Step::Claim {
                slot,
                south,
                document,
            } => {
                let partnership = if south {
                    self.relay.south.clone()
                } else {
                    self.relay.north.clone()
                };
                let claim = Message::Claim {
                    sender_id: PEERS[slot].into(),
                    target_id: self.relay_peer.clone(),
                    document_id: DocumentId::from_bytes([document; 16]),
                    partnership,
                };
                self.arrive(slot, &claim.encode());
            }
            Step::RegisterChange => {
                self.register = 1 - self.register;
                let register = self.relay.registers[self.register].clone();
                self.handle(None, Event::RegisterChanged { register });
            }
        }
        for work in work {
            self.handle(None, Event::Worked(work.run()));
        }
        self.read();
    }

    /// A frame arrives on a slot's connection, opened again first if it
    /// was closed (as a school's client reconnects).
    fn arrive(&mut self, slot: usize, bytes: &[u8]) {
        if self.open[slot].is_none() {
            self.connect(slot);
        }
        if let Some(conn) = self.open[slot] {
            self.frame(slot, conn, bytes);
        }
    }

    /// Each peer that is reading reports what it read, which lets the
    /// relay send what it held back; until nothing more is sent.
    fn read(&mut self) {
        for _ in 0..100 {
            let reading: Vec<(usize, ConnId, usize)> = (0..SLOTS)
                .filter(|&slot| !self.stalled[slot] && self.unread[slot] > 0)
                .filter_map(|slot| Some((slot, self.open[slot]?, self.unread[slot])))
                .collect();
            if reading.is_empty() {
                return;
            }
            for (slot, conn, bytes) in reading {
                self.unread[slot] = 0;
                self.handle(Some(slot), Event::Written { conn, bytes });
            }
        }
        panic!("the relay kept sending to peers that read everything, with nothing new");
    }

    /// Everyone leaves and time passes: nothing stays in memory, however
    /// the input made the relay load documents (made-up ids included).
    pub fn finish(mut self) -> Seen {
        for _ in 0..100 {
            if self.work.is_empty() {
                break;
            }
            for work in std::mem::take(&mut self.work) {
                self.handle(None, Event::Worked(work.run()));
            }
        }
        assert!(
            self.work.is_empty(),
            "work on the worker thread kept making more"
        );
        self.stalled = [false; SLOTS];
        self.read();
        for slot in 0..SLOTS {
            self.disconnect(slot);
        }
        for _ in 0..2 {
            self.now_ms += TICK_MS;
            let now_ms = self.now_ms;
            self.handle(None, Event::Tick { now_ms });
        }
        assert_eq!(
            self.repo.loaded_documents(),
            0,
            "documents stayed in memory after every connection closed and the idle time passed"
        );
        self.seen
    }

    /// Opens a slot's connection as the relay's WebSocket handler does:
    /// with the grant its token gets from the current register, or not at
    /// all.
    fn connect(&mut self, slot: usize) {
        let Some(grant) = self.relay.grants[self.register][slot].clone() else {
            return;
        };
        let conn = self.next_conn;
        self.next_conn += 1;
        self.open[slot] = Some(conn);
        self.unread[slot] = 0;
        let grant = Some(grant);
        self.handle(
            Some(slot),
            Event::Connected {
                conn,
                initiate: false,
                grant,
            },
        );
        if JOINED_FOR_IT[slot]
            && let Some(conn) = self.open[slot]
        {
            self.frame(slot, conn, &join(slot).encode());
        }
    }

    fn disconnect(&mut self, slot: usize) {
        if let Some(conn) = self.open[slot].take() {
            self.handle(Some(slot), Event::Disconnected { conn });
        }
    }

    fn frame(&mut self, slot: usize, conn: ConnId, bytes: &[u8]) {
        let message = Message::decode(bytes, self.relay.config.max_frame_bytes);
        let leaves = matches!(message, Ok(Message::Leave { .. }));
        self.handle(
            Some(slot),
            Event::Frame {
                conn,
                bytes: bytes.to_vec(),
            },
        );
        if message.is_err() {
            assert!(
                self.open[slot].is_none(),
                "a frame that could not be read left its connection open"
            );
        }
        if leaves {
            assert!(
                self.open[slot].is_none(),
                "`leave` left the connection open"
            );
        }
    }

    /// Runs one event as an engine turn would: loads answered from the
    /// store, work set aside for the worker thread, then every write
    /// checked (as the engine commits them all before any frame goes out),
    /// then every frame and close in order. Writes are not committed, so
    /// every input starts from the same file. `from` is the slot whose
    /// connection the event is about (`None` for work that came back,
    /// which may carry on with frames several slots sent meanwhile).
    fn handle(&mut self, from: Option<usize>, event: Event) {
        if self.trace {
            eprintln!("{}", shortened(format!("slot {from:?}: {event:?}")));
        }
        let mut queue: VecDeque<Effect> = self.repo.handle(event).into();
        if self.trace {
            for effect in &queue {
                eprintln!("    {}", shortened(format!("{effect:?}")));
            }
        }
        let mut effects = Vec::new();
        while let Some(effect) = queue.pop_front() {
            if let Effect::Load { document_id } = effect {
                let (chunks, sync_states) = self
                    .relay
                    .store
                    .load(&document_id)
                    .expect("the store reads");
                queue.extend(self.repo.handle(Event::Loaded {
                    document_id,
                    chunks,
                    sync_states,
                }));
            } else if let Effect::Work(work) = effect {
                self.work.push(work);
                self.seen.worked += 1;
            } else {
                effects.push(effect);
            }
        }
        for effect in &effects {
            self.check_record(from, effect);
        }
        for effect in &effects {
            if let Effect::Persist { document_id, chunk } = effect {
                self.check_persist(from, *document_id, chunk);
                self.seen.persisted += 1;
            }
        }
        let mut warned = Vec::new();
        for effect in effects {
            match effect {
                Effect::Send { conn, bytes } => {
                    let message = Message::decode(&bytes, usize::MAX)
                        .expect("every frame the relay sends can be read");
                    let slot = self.slot_of(conn);
                    self.unread[slot] += bytes.len();
                    if matches!(message, Message::Error { .. }) {
                        warned.push(conn);
                        self.seen.errors += 1;
                    }
                    self.check_send(slot, &message);
                }
                Effect::Close { conn, reason } => {
                    // A peer that left needs no reason; everyone else is
                    // told why before the connection closes.
                    assert!(
                        warned.contains(&conn) || reason == "the peer left",
                        "a connection was closed without an error saying why ({reason})"
                    );
                    let slot = self.slot_of(conn);
                    self.open[slot] = None;
                    self.unread[slot] = 0;
                    self.seen.closed += 1;
                    // The engine reports the close, as the socket ends;
                    // the core has forgotten the connection already.
                    let after = self.repo.handle(Event::Disconnected { conn });
                    assert!(
                        after.is_empty(),
                        "a closed connection still had effects: {after:?}"
                    );
                }
                _ => {}
            }
        }
    }

    /// What the policy decided to keep: owners, actors' and peer ids'
    /// schools, signing keys, each for the school whose connection it
    /// came from (when the event names one).
    fn check_record(&mut self, from: Option<usize>, effect: &Effect) {
        match effect {
            Effect::PersistOwner { document_id, owner } => {
                if let Some(slot) = from {
                    assert_eq!(owner.claimed_by, self.relay.schools[slot]);
                }
                // A member's document is the partnership's to write; a
                // viewer's, shared with it, its own.
                let role = self.role_of(&owner.claimed_by, &owner.partnership);
                match &owner.writer {
                    None => assert_eq!(
                        role,
                        Some(Role::Member),
                        "a document was claimed for a partnership by a school that is not a member"
                    ),
                    Some(writer) => {
                        assert_eq!(
                            role,
                            Some(Role::Viewer),
                            "a document was claimed for a partnership by a school not in it"
                        );
                        assert_eq!(
                            *writer, owner.claimed_by,
                            "a viewer's document was given another writer"
                        );
                    }
                }
                let earlier = self.owners.insert(
                    *document_id,
                    (owner.partnership.clone(), owner.writer.clone()),
                );
                assert!(
                    earlier.is_none(),
                    "a document owned already was claimed again"
                );
                self.seen.claimed += 1;
            }
            Effect::PersistAccess {
                record: AccessRecord::ActorBound { actor, school },
            } => {
                if let Some(slot) = from {
                    assert_eq!(
                        *school, self.relay.schools[slot],
                        "an actor was bound to a school other than the one that sent its changes"
                    );
                }
                let earlier = self.actors.insert(actor.clone(), school.clone());
                assert!(
                    earlier.is_none_or(|earlier| earlier == *school),
                    "an actor bound to one school was bound to another"
                );
            }
            Effect::PersistAccess {
                record: AccessRecord::PeerSeen { school, .. },
            } => {
                if let Some(slot) = from {
                    assert_eq!(*school, self.relay.schools[slot]);
                }
            }
            Effect::PersistSigningKey { key } => {
                let slot = from.expect("a key comes in a connection's `join`");
                assert_eq!(
                    key.school, self.relay.schools[slot],
                    "a signing key was kept for a school other than the one that gave it"
                );
            }
            _ => {}
        }
    }

    fn slot_of(&self, conn: ConnId) -> usize {
        self.open
            .iter()
            .position(|open| *open == Some(conn))
            .unwrap_or_else(|| panic!("the relay sent to connection {conn}, which is not open"))
    }

    /// The slot's school's role in a partnership, by the current register.
    fn role(&self, slot: usize, partnership: &str) -> Option<Role> {
        self.role_of(&self.relay.schools[slot], partnership)
    }

    fn role_of(&self, school: &SchoolId, partnership: &str) -> Option<Role> {
        self.relay.registers[self.register]
            .schools
            .get(school)?
            .memberships
            .get(partnership)
            .copied()
    }

    /// What a slot's connection is sent: only what its school may see.
    fn check_send(&mut self, slot: usize, message: &Message) {
        let register = &self.relay.registers[self.register];
        // Presence goes on in its sender's name; a compact frame names no
        // sender (its connection says who sent it).
        if !matches!(message, Message::Ephemeral { .. } | Message::Compact(_)) {
            assert_eq!(
                message.sender_id(),
                Some(self.relay_peer.as_str()),
                "the relay sent a message in another peer's name"
            );
        }
        let hidden = |document_id: &DocumentId| {
            self.owners
                .get(document_id)
                .is_some_and(|(owner, _)| self.role(slot, owner).is_none())
        };
        let sync = match message {
            Message::Sync(frame) | Message::Request(frame) => Some((
                frame.document_id,
                automerge::sync::Message::decode(&frame.data)
                    .expect("the relay's sync messages can be read"),
            )),
            Message::Compact(frame) => Some((
                frame.document_id,
                compact::decode(&frame.data, usize::MAX)
                    .expect("the relay's compact sync messages can be read"),
            )),
            _ => None,
        };
        match message {
            Message::Sync(_) | Message::Request(_) | Message::Compact(_) => {
                let (document_id, sync) = sync.expect("a sync message was read");
                // The changes it carries, read by the parsers the relay
                // uses on what it receives (an empty document's chunk
                // carries none).
                let carried = new_authors(&Automerge::new(), sync.changes.iter())
                    .unwrap_or_else(|e| panic!("the relay sent changes that cannot be read: {e}"));
                if hidden(&document_id) {
                    assert!(
                        sync.heads.is_empty() && carried.is_empty(),
                        "{} was sent a document of a partnership it is not in",
                        SCHOOLS[slot]
                    );
                }
                if !carried.is_empty() {
                    self.seen.served += 1;
                }
            }
            Message::Ephemeral { document_id, .. } => {
                assert!(
                    !hidden(document_id),
                    "{} was passed presence for a document of a partnership it is not in",
                    SCHOOLS[slot]
                );
                self.seen.ephemeral += 1;
            }
            Message::Listing { partnerships, .. } => {
                for listed in partnerships {
                    assert_eq!(
                        self.role(slot, &listed.id),
                        Some(listed.role),
                        "{} was listed a partnership with a role it does not have",
                        SCHOOLS[slot]
                    );
                    for document_id in &listed.documents {
                        assert_eq!(
                            self.owners.get(document_id).map(|(owner, _)| owner),
                            Some(&listed.id),
                            "a listing named a document under a partnership that does not own it"
                        );
                    }
                    for school in &listed.schools {
                        assert!(
                            register
                                .schools
                                .values()
                                .any(|s| s.name == school.name
                                    && s.memberships.contains_key(&listed.id)),
                            "a listing named a school that is not in the partnership"
                        );
                    }
                }
                self.seen.listings += 1;
            }
            Message::Actors { actors, .. } => {
                for named in actors {
                    let school = self
                        .actors
                        .get(&named.actor)
                        .and_then(|id| Some((id, register.schools.get(id)?)));
                    let Some((id, school)) = school else {
                        panic!("the relay named the school of an actor bound to none");
                    };
                    assert_eq!(
                        named.school, school.name,
                        "an actor was named for the wrong school"
                    );
                    let shares = *id == self.relay.schools[slot]
                        || school
                            .memberships
                            .keys()
                            .any(|p| self.role(slot, p).is_some());
                    assert!(
                        shares,
                        "{} was told of a school it shares no partnership with",
                        SCHOOLS[slot]
                    );
                }
            }
            _ => {}
        }
    }

    /// Changes kept are made under actors of schools that may write the
    /// document (the partnership's members, or the one viewer whose own
    /// it is); with `from`, of that slot's school.
    fn check_persist(&mut self, from: Option<usize>, document_id: DocumentId, chunk: &[u8]) {
        let (owner, writer) = self
            .owners
            .get(&document_id)
            .expect("changes are kept only for a document with an owner")
            .clone();
        let store = &self.relay.store;
        let stored = self.stored.entry(document_id).or_insert_with(|| {
            let (chunks, _) = store.load(&document_id).expect("the store reads");
            let mut doc = Automerge::new();
            for chunk in chunks {
                doc.load_incremental(&chunk).expect("what is stored loads");
            }
            doc
        });
        let before = stored.get_heads();
        stored
            .load_incremental(chunk)
            .expect("what the relay keeps loads");
        let authors: Vec<Option<SchoolId>> = stored
            .get_changes(&before)
            .iter()
            .map(|change| self.actors.get(change.actor_id().to_bytes()).cloned())
            .collect();
        for school in authors {
            let school = school.expect("a change was kept made under an actor bound to no school");
            let role = self.role_of(&school, &owner);
            let may_write = match &writer {
                Some(writer) => *writer == school && role.is_some(),
                None => role == Some(Role::Member),
            };
            assert!(
                may_write,
                "a change was kept from a school that may not write the document"
            );
            if let Some(slot) = from {
                assert_eq!(
                    school, self.relay.schools[slot],
                    "{} had a change kept that was made under another school's actor",
                    SCHOOLS[slot]
                );
            }
        }
    }
}

/// A line of the trace, cut to a readable length.
fn shortened(line: String) -> String {
    match line.char_indices().nth(160) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}
