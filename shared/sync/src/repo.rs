//! The sync core: a pure state machine that holds the documents one peer
//! has in memory and the connections it syncs them over.
//!
//! A driver hands it [`Event`]s (a frame arrived, a connection opened or
//! closed, a document finished loading, local changes appeared, time
//! passed) and carries out the [`Effect`]s it returns, in order. It never
//! opens a socket, touches a disk or reads a clock, so every protocol case
//! is a fast deterministic unit test.
//!
//! The relay and the client both run it. The differences are in what the
//! driver feeds it: the client opens connections with `initiate: true`,
//! which makes the core send `join` and then announce every tracked
//! document; the relay accepts connections and only syncs a document with
//! a peer that asked for it, so routing costs O(subscribers).
//!
//! Invariant the drivers must keep: effects are carried out in the order
//! given, and a `Send` that follows a `Persist` goes out only after that
//! `Persist` has committed. That is how a change is confirmed to its
//! sender only once it is durable.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};

use crate::access::{AccessRecord, Grant, Owner, Register, SchoolKey};
use crate::chunk_size::{self, ChunkSize};
use crate::compact;
use crate::document_id::DocumentId;
use crate::message::{
    COMPACT_VERSION, CompactFrame, DecodeError, ListedPartnership, MAX_ACTORS_PER_MESSAGE,
    MAX_LISTED_PER_MESSAGE, Message, NamedActor, PROTOCOL_VERSION, PeerId, PeerMetadata, PublicKey,
    SyncFrame,
};
use crate::pacing::{Next, Pace};
use crate::resting::{Bits, Resting};

/// A driver's name for one connection.
pub type ConnId = u64;

/// What one connection may do with one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    /// Nothing: the document is answered as if it did not exist.
    None,
    /// Receive the document; changes sent are not applied.
    Read,
    ReadWrite,
    /// The document belongs to no one yet, and this connection may create
    /// it: its first changes [`claim`](AccessPolicy::claim) it.
    Create,
}

/// The single place that decides what a connection may do with a
/// document. The relay fills this in with its partnerships
/// ([`PartnershipPolicy`](crate::access::PartnershipPolicy)); the client
/// trusts its relay. Like the core, a policy does no IO and reads no
/// clock: what it needs arrives in events (the grant with the connection,
/// the register when it changes, the time), and what it wants kept leaves
/// as effects.
pub trait AccessPolicy: Send {
    /// A connection opened with what its driver authenticated (`None` when
    /// the driver authenticates nothing). `Err` refuses it, saying why.
    fn connected(&mut self, _conn: ConnId, _grant: Option<Grant>) -> Result<(), String> {
        Ok(())
    }

    fn permission(&self, conn: ConnId, document_id: &DocumentId) -> Permission;

    /// `conn` has sent the first changes of a document that belonged to no
    /// one: make it belong to that connection's partnership, for good. The
    /// owner returned is handed to the driver as
    /// [`Effect::PersistOwner`], ahead of the document's first chunk, so
    /// both are kept together or not at all. `Err` says, in a sentence for
    /// the peer, why it cannot.
    fn claim(&mut self, _conn: ConnId, _document_id: &DocumentId) -> Result<Option<Owner>, String> {
        Ok(None)
    }

    /// The owner last claimed for this document was not kept (the write
    /// failed): forget it, so the next first changes claim it again.
    fn unclaim(&mut self, _document_id: &DocumentId) {}

    /// May `conn` speak as `peer_id`? `Err` refuses the connection, saying why.
    fn admit(&mut self, _conn: ConnId, _peer_id: &str, _now_ms: u64) -> Result<(), String> {
        Ok(())
    }

    /// `conn` sends changes holding `ops` operations and `bytes` bytes:
    /// take them from its school's allowance. `Err` refuses them, saying
    /// why in a sentence for the peer, and when they may come again if
    /// the refusal passes.
    fn charge(
        &mut self,
        _conn: ConnId,
        _ops: u64,
        _bytes: u64,
        _now_ms: u64,
    ) -> Result<(), Refusal> {
        Ok(())
    }

    /// `conn` has closed.
    fn disconnected(&mut self, _conn: ConnId, _now_ms: u64) {}

    /// Whether [`authors`](Self::authors) is asked before changes are
    /// applied (the relay's policy). Reading who made each change costs
    /// a parse of the changes, so a policy that does not care says no.
    fn checks_authors(&self) -> bool {
        false
    }

    /// `conn` sent changes to `document_id` made under these Automerge
    /// actors (only changes the document lacks count). `Ok`: they may be
    /// applied, and whatever the policy decided to keep (an actor bound
    /// to the sender's school) waits in [`take_records`](Self::take_records).
    /// `Err`: the sentence they are refused with.
    fn authors(
        &mut self,
        _conn: ConnId,
        _document_id: &DocumentId,
        _actors: &[ActorId],
        _now_ms: u64,
    ) -> Result<(), String> {
        Ok(())
    }

    /// `conn`'s changes to `document_id` were applied, and the document
    /// now holds everything the peer said it has (its heads).
    fn caught_up(&mut self, _conn: ConnId, _document_id: &DocumentId) {}

    /// What the policy decided to keep since it was last asked, for the
    /// driver to write ([`Effect::PersistAccess`]) with the changes it
    /// goes with.
    fn take_records(&mut self) -> Vec<AccessRecord> {
        Vec::new()
    }

    /// These records were not kept (their write failed, or the changes
    /// they went with were not applied): forget them, so they are made
    /// again when next needed.
    fn forget(&mut self, _records: &[AccessRecord]) {}

    /// These records go to storage with the changes they came with: what
    /// they bound may now be named to partners.
    fn kept(&mut self, _records: &[AccessRecord]) {}

    /// Every Automerge actor whose school `conn` may know (one sharing a
    /// partnership with its own), with that school's name, for a client
    /// that asked for listings. A policy that binds no actors names none.
    fn named_actors(&self, _conn: ConnId) -> Vec<NamedActor> {
        Vec::new()
    }

    /// The name of the school `actor` belongs to, if `conn` may know it.
    fn actor_name(&self, _conn: ConnId, _actor: &[u8]) -> Option<String> {
        None
    }

    /// The register changed. Returns the connections that lost rights,
    /// each with the sentence it is cut with.
    fn register_changed(&mut self, _register: Arc<Register>) -> Vec<(ConnId, String)> {
        Vec::new()
    }

    /// The partnerships whose documents `conn` may see, with its school's
    /// role in each (documents left empty), for a client that asked for
    /// the listing. A policy that records no owners lists nothing.
    fn partnerships(&self, _conn: ConnId) -> Vec<ListedPartnership> {
        Vec::new()
    }

    /// Every document that belongs to `partnership`, as recorded when it
    /// was first written (never from what documents say).
    fn documents_of(&self, _partnership: &str) -> Vec<DocumentId> {
        Vec::new()
    }

    /// `conn` says the document it is about to send for the first time is
    /// for `partnership` (`partnerplan-claim`), not for its home one: its
    /// first changes claim it there if the policy allows. `Err` says, in a
    /// sentence for the peer, why not; the document stops on that
    /// connection. A policy that records no owners ignores it.
    fn intend(
        &mut self,
        _conn: ConnId,
        _document_id: &DocumentId,
        _partnership: &str,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Whether one school alone writes `document_id` (a viewer's own,
    /// shared with the partnership it belongs to): listings say so.
    fn shared(&self, _document_id: &DocumentId) -> bool {
        false
    }

    /// `conn`'s peer gave its school's public signing key in `join`.
    /// `Ok(Some)` is a key new to the register, for the driver to keep
    /// ([`Effect::PersistSigningKey`]) and partners to be told of;
    /// `Ok(None)` one already kept (or a policy that keeps none); `Err`
    /// says, in a sentence for the peer, why it was not taken. The
    /// connection stays open either way.
    fn signing_key(
        &mut self,
        _conn: ConnId,
        _key: &PublicKey,
    ) -> Result<Option<SchoolKey>, String> {
        Ok(None)
    }
}

/// A policy that allows everything: for the client, and for tests.
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn permission(&self, _: ConnId, _: &DocumentId) -> Permission {
        Permission::ReadWrite
    }
}

/// How a repo introduces itself and what it accepts.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub peer_id: PeerId,
    /// `Some` for a peer that keeps documents; `None` makes it ephemeral.
    pub storage_id: Option<String>,
    pub max_frame_bytes: usize,
    /// A document nobody has touched for this long leaves memory. One
    /// that connected peers subscribe to rests (see `resting.rs`) and
    /// comes back with their next message; a tracked one (the client's)
    /// stays.
    pub idle_unload_ms: u64,
    /// Keep each peer's sync state as soon as it moves (the client, whose
    /// `status` reads it), rather than only when the peer disconnects
    /// (the relay, where a write per subscriber per change would dominate
    /// its disk traffic; a stale sync state only costs a longer first
    /// exchange after a crash).
    pub eager_sync_states: bool,
    /// Ask the relay, in `join`, for the documents this school may see,
    /// and track each as it is listed (our client; never JS peers).
    pub ask_for_listing: bool,
    /// Offer (in `join`) and accept (in `peer`) the compact sync format
    /// (`compact.rs`) with peers that offer it too. Off only to measure
    /// the standard protocol against it.
    pub compact: bool,
    /// The school's public signing key, given in `join` (our client).
    pub signing_key: Option<PublicKey>,
    /// Which program this is, said in `join` (`partnerplanClient`), so a
    /// relay's admin pages show each school's version. `None` says nothing.
    pub client: Option<String>,
    /// How many bytes may wait to be written to one connection before the
    /// core holds back its sync messages (they are made when it has
    /// caught up, with whatever is new by then): a peer that reads slowly
    /// gets everything, later, and never costs more than this plus one
    /// message. `None` holds nothing back; a driver that sets it reports
    /// what it wrote with [`Event::Written`].
    pub outbox_bytes: Option<usize>,
    /// How much one message and one document may hold; `None` takes
    /// anything (the client, which trusts its relay).
    pub quotas: Option<Quotas>,
    /// A sync message whose changes hold more operations than this is
    /// applied by [`Effect::Work`], which the driver runs on another
    /// thread, rather than here: applying costs some 6 µs an operation,
    /// and meanwhile every other document waits. `None` applies all here.
    pub heavy_ops: Option<u64>,
    /// How much memory the documents held in memory may take, estimated
    /// from what each takes on disk ([`memory_estimate`]). Over it,
    /// documents untouched for [`MIN_IDLE_TO_REST_MS`] leave before
    /// `idle_unload_ms` is up: first those no connected peer syncs, then
    /// the longest untouched that may rest:
    /// a burst of schools syncing thousands of documents then costs this,
    /// not every document they touched. Documents that may not rest yet
    /// (being edited, owed changes, waiting for a parent) stay, so the
    /// bound can be passed for a while. `None`: only idle time counts.
    pub document_memory: Option<u64>,
}

/// A document's in-memory size for [`RepoConfig::document_memory`]:
/// automerge holds a document in 10.5 to 12.6 times what its chunks take
/// in storage (measured on plans of 2 to 26 KB, BENCHMARKS.md), plus the
/// core's own maps for it.
fn memory_estimate(stored_bytes: u64) -> u64 {
    stored_bytes.saturating_mul(12).saturating_add(4096)
}

/// How long a document stays untouched before it may rest early to keep
/// within [`RepoConfig::document_memory`]: long enough that one being
/// edited or synced stays, short next to the idle minute.
pub const MIN_IDLE_TO_REST_MS: u64 = 5_000;

/// Changes refused, with a sentence for the peer. `retry_after_ms` when
/// the refusal passes (the relay was busy, an allowance refills): the
/// peer may send that document's changes again on the same connection
/// after that long, and our client does so by itself. `None`: not on this
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub retry_after_ms: Option<u64>,
}

impl From<String> for Refusal {
    fn from(reason: String) -> Refusal {
        Refusal {
            reason,
            retry_after_ms: None,
        }
    }
}

/// The longest a refusal that passes may ask a client to wait.
const MAX_RETRY_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
/// The shortest: the relay's own waits are 15 s and a minute.
const MIN_RETRY_AFTER_MS: u64 = 10_000;

/// How long a peer whose changes found the relay busy waits before
/// sending them again: a heavy document takes about a second.
pub const BUSY_RETRY_MS: u64 = 15_000;

/// The relay's limits on what peers send, measured from the changes'
/// encoding before automerge sees them (see `chunk_size`). Automerge's
/// work is per operation (measured: about 6 µs each to apply, and a
/// document of a million operations takes 2.7 s to load), so operations
/// are what is counted; bytes bound the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Operations in the changes of one sync message.
    pub message_ops: u64,
    /// Operations one document may hold.
    pub document_ops: u64,
    /// Bytes one document may take in storage.
    pub document_bytes: u64,
}

impl Quotas {
    /// Bytes inflated while measuring one message's changes: more than
    /// any message within these limits inflates to.
    fn inflate_limit(&self) -> u64 {
        self.document_bytes.saturating_mul(4).max(64 * 1024 * 1024)
    }
}

impl RepoConfig {
    pub fn new(peer_id: impl Into<PeerId>, storage_id: Option<String>) -> Self {
        RepoConfig {
            peer_id: peer_id.into(),
            storage_id,
            max_frame_bytes: crate::message::DEFAULT_MAX_FRAME_BYTES,
            idle_unload_ms: 60_000,
            eager_sync_states: true,
            ask_for_listing: false,
            compact: true,
            signing_key: None,
            client: None,
            outbox_bytes: None,
            quotas: None,
            heavy_ops: None,
            document_memory: None,
        }
    }

    /// What this peer says about itself; `listing` asks for (in `join`)
    /// or promises (in `peer`) a listing, `compact` offers or accepts the
    /// compact sync format.
    fn metadata(&self, listing: bool, compact: bool) -> PeerMetadata {
        PeerMetadata {
            storage_id: self.storage_id.clone(),
            is_ephemeral: self.storage_id.is_none(),
            listing,
            signing_key: None,
            client: self.client.clone(),
            compact: if compact && self.compact {
                COMPACT_VERSION
            } else {
                0
            },
        }
    }
}

/// Something that happened, for the core to react to.
#[derive(Debug)]
pub enum Event {
    /// A connection opened. The side with `initiate` sends `join`. The
    /// grant is what the driver authenticated, for the policy to check.
    Connected {
        conn: ConnId,
        initiate: bool,
        grant: Option<Grant>,
    },
    Frame {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    Disconnected {
        conn: ConnId,
    },
    /// The answer to [`Effect::Load`]: the stored chunks (empty when the
    /// document is not stored) and the sync states kept per peer storage.
    Loaded {
        document_id: DocumentId,
        chunks: Vec<Vec<u8>>,
        sync_states: Vec<(String, Vec<u8>)>,
    },
    /// Changes that are already in storage but not yet in memory, written
    /// by another process of the same school (the command line).
    LocalChanges {
        document_id: DocumentId,
        chunk: Vec<u8>,
    },
    /// Keep this document in sync with every peer we announce to.
    Track {
        document_id: DocumentId,
    },
    /// This document, made here, is for this partnership (by id), not the
    /// connection's home one: say so to the relay before its first sync
    /// on every connection (`partnerplan-claim`). Given before its
    /// `Track`.
    Claim {
        document_id: DocumentId,
        partnership: String,
    },
    /// The answer to [`Effect::Load`] when storage could not be read.
    LoadFailed {
        document_id: DocumentId,
        reason: String,
    },
    /// Storage refused the last writes for these documents (a full disk):
    /// forget what memory holds of them, so nothing unsaved is confirmed,
    /// and read them again from storage when next asked.
    WriteFailed {
        document_ids: Vec<DocumentId>,
        /// Documents whose new owner ([`Effect::PersistOwner`]) was among
        /// the writes refused.
        unowned: Vec<DocumentId>,
        /// The policy's records ([`Effect::PersistAccess`]) among them.
        forgotten: Vec<AccessRecord>,
    },
    /// The register changed (an admin command): the policy judges by it
    /// from now on, and connections that lost rights are cut.
    RegisterChanged {
        register: Arc<Register>,
    },
    /// Periodic housekeeping (idle documents, announcements), with the
    /// time in ms; it also does what [`Event::Time`] does.
    Tick {
        now_ms: u64,
    },
    /// The time in ms, handed in at every turn of the driver and cheap:
    /// messages held back for a peer's acknowledgement (`pacing.rs`) go
    /// out when their wait is over. See [`Repo::next_wakeup`].
    Time {
        now_ms: u64,
    },
    /// The driver gives up on this connection (what it sent made the core
    /// fail): tell the peer why, forget the connection, close it.
    Refuse {
        conn: ConnId,
        reason: String,
    },
    /// The driver has written `bytes` of the frames sent on `conn` (see
    /// [`RepoConfig::outbox_bytes`]).
    Written {
        conn: ConnId,
        bytes: usize,
    },
    /// The result of [`Effect::Work`].
    Worked(Worked),
}

/// Something the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    /// Close the connection; an `error` message has already been queued.
    Close {
        conn: ConnId,
        reason: String,
    },
    Load {
        document_id: DocumentId,
    },
    /// Append these changes to the document's storage.
    Persist {
        document_id: DocumentId,
        chunk: Vec<u8>,
    },
    /// Record that a new document belongs to a partnership, in the same
    /// write as the document's first chunk (which follows).
    PersistOwner {
        document_id: DocumentId,
        owner: Owner,
    },
    /// Keep what the access policy decided (an actor's school, a peer
    /// id's school), in the same write as the changes around it.
    PersistAccess {
        record: AccessRecord,
    },
    /// Keep a school's public signing key in the register.
    PersistSigningKey {
        key: SchoolKey,
    },
    /// Keep this document tracked in storage (listed by the relay), so it
    /// is synced after a restart too.
    PersistTracked {
        document_id: DocumentId,
    },
    /// Keep the sync state shared with the peer whose storage is `storage_id`.
    PersistSyncState {
        document_id: DocumentId,
        storage_id: String,
        state: Vec<u8>,
    },
    /// The handshake finished.
    PeerJoined {
        conn: ConnId,
        peer_id: PeerId,
        metadata: PeerMetadata,
    },
    /// The remote peer said it does not have this document.
    Unavailable {
        conn: ConnId,
        document_id: DocumentId,
    },
    /// The peer sent an `error` message on an open connection: something
    /// to tell the user. If the peer also closes, that comes separately.
    RemoteError {
        conn: ConnId,
        message: String,
    },
    /// The relay named the schools of these Automerge actors (for the
    /// client to keep: history names schools by it).
    ActorsNamed {
        actors: Vec<NamedActor>,
    },
    /// The relay listed documents this school may see (each is now
    /// tracked): the school's partnerships, with its role in each and the
    /// documents of each this message lists. `more`: the rest of this
    /// listing follows in further messages.
    Listed {
        conn: ConnId,
        partnerships: Vec<ListedPartnership>,
        more: bool,
    },
    /// Stored data for this document could not be read; it is left as is.
    StorageUnreadable {
        document_id: DocumentId,
        reason: String,
    },
    /// Run this where it stalls nothing else, and hand back what
    /// [`Work::run`] returns as [`Event::Worked`].
    Work(Work),
}

/// Where one document stands with one connected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncProgress {
    /// Both sides hold the same changes.
    InSync,
    /// Changes are on their way in one direction or the other.
    Syncing,
    /// The peer does not have the document and neither do we.
    Unavailable,
    /// We hold everything the peer has, and the peer takes no changes
    /// from us (it said it is read-only for us): there is nothing more to
    /// exchange, though our own changes stay with us.
    ReadOnly,
    /// The peer refused our changes to this document, saying why
    /// ([`Repo::refusal`]), and stopped syncing it with us: they stay
    /// with us, and are not sent again on this connection.
    Refused,
    /// The document is not being synced with that peer.
    NotSyncing,
}

enum ConnState {
    AwaitingJoin,
    AwaitingPeer,
    Open {
        peer_id: PeerId,
        metadata: PeerMetadata,
    },
}

struct Connection {
    initiate: bool,
    state: ConnState,
    documents: HashSet<DocumentId>,
    /// Documents this connection asked for that it cannot have (nobody
    /// has them, or they are not its partnerships'), answered as an empty
    /// document would answer, once: the only trace a made-up id leaves,
    /// 16 bytes, at most [`MAX_ABSENT`] and gone with the connection. If
    /// one of them appears (a partner creates it) and the connection may
    /// see it, it is synced to it.
    absent: HashSet<DocumentId>,
    /// The peer asked for the listing: it hears of every document its
    /// school may see, now and as they are created.
    listing: bool,
    /// Partnerships already listed to it.
    listed: HashSet<String>,
    /// Bytes sent and not yet reported written.
    unsent: usize,
    /// Documents whose sync messages wait for the connection to catch up.
    deferred: HashSet<DocumentId>,
    /// Documents whose changes from this peer were refused: what it sends
    /// for them is ignored until it reconnects, or until the time given
    /// for a refusal that passes.
    stopped: HashMap<DocumentId, Option<u64>>,
    /// Both sides offered the compact sync format: sync messages go as
    /// [`Message::Compact`].
    compact: bool,
}

#[derive(Clone)]
struct PeerDoc {
    sync: sync::State,
    /// The shared heads last handed to storage, to persist only changes.
    persisted_shared_heads: Vec<ChangeHash>,
    remote_unavailable: bool,
    /// Whether this read-only peer was told its changes are not kept.
    told_read_only: bool,
    pace: Pace,
    /// The peer refused our changes, saying this: nothing more is sent
    /// (until `retry_at_ms`, when the refusal passes).
    refused: Option<String>,
    /// When a refusal that passes ends: the document's sync with this
    /// peer starts again from the beginning.
    retry_at_ms: Option<u64>,
}

#[derive(Clone)]
struct Document {
    doc: Automerge,
    persisted_heads: Vec<ChangeHash>,
    peers: HashMap<ConnId, PeerDoc>,
    /// Sync states by peer storage id, loaded from storage or left by a
    /// peer that disconnected.
    stored_sync_states: HashMap<String, Vec<u8>>,
    last_active_ms: u64,
    unreadable: bool,
    /// What it holds, as measured from its chunks when loaded and from
    /// the changes applied since, for the document quotas.
    size: ChunkSize,
    stored_bytes: u64,
}

/// A `request` or `sync` whose sync message has been read and checked.
#[derive(Clone)]
struct SyncIn {
    conn: ConnId,
    message: sync::Message,
    request: bool,
    /// What its changes hold.
    carried: Carried,
    /// Who made the changes the document lacks, once read: for a heavy
    /// message, by [`Job::Authors`] on the driver's worker, since reading
    /// a whole document's changes costs about as much as loading it.
    authors: Option<Result<Vec<ActorId>, String>>,
}

/// What a message's changes hold: whole documents (which repeat what the
/// receiver may hold already) apart from changes (which add to it).
#[derive(Debug, Clone, Copy, Default)]
struct Carried {
    snapshot_ops: u64,
    snapshot_bytes: u64,
    added_ops: u64,
    added_bytes: u64,
}

impl Carried {
    /// What a document holding `ops` operations in `bytes` bytes would
    /// hold, at most, with these changes.
    fn after(&self, ops: u64, bytes: u64) -> (u64, u64) {
        (
            ops.max(self.snapshot_ops).saturating_add(self.added_ops),
            bytes
                .max(self.snapshot_bytes)
                .saturating_add(self.added_bytes),
        )
    }
}

enum Queued {
    Sync(SyncIn),
    Local(Vec<u8>),
    Announce,
}

enum Slot {
    Loading(Vec<Queued>),
    Ready(Box<Document>),
    /// Away being worked on ([`Effect::Work`]); what arrives meanwhile
    /// waits, and connections that closed meanwhile are noted, with their
    /// storage ids, to be dropped from it when it returns.
    Busy {
        queue: Vec<Queued>,
        departed: Vec<(ConnId, Option<String>)>,
    },
    /// Out of memory while connected peers subscribe to it.
    Resting(Resting),
}

/// What applying a sync message needs to know afterwards, wherever it ran.
#[derive(Clone)]
struct Applying {
    conn: ConnId,
    request: bool,
    permission: Permission,
    /// The document was empty before.
    empty: bool,
    heads_before: Vec<ChangeHash>,
    /// How to answer if what arrived makes nothing (see `on_sync`).
    absent_answer: Option<(sync::Message, bool)>,
    /// A reader sent changes of its own: tell it they are not kept.
    refused_changes: bool,
    carried: Carried,
    /// What the access policy decided to keep about these changes (an
    /// actor bound to the sender's school): written with them if they
    /// are applied, forgotten if not.
    records: Vec<AccessRecord>,
    /// The heads the peer said it has.
    their_heads: Vec<ChangeHash>,
}

/// Heavy automerge work for the driver to run where it stalls nothing
/// else ([`Effect::Work`]): applying a sync message whose changes hold
/// many operations to a document set aside meanwhile, or assembling a
/// large document from its stored chunks. Pure: `run` it anywhere and
/// hand the result back as [`Event::Worked`].
#[derive(Clone)]
pub struct Work(Box<WorkItem>);

#[derive(Clone)]
struct WorkItem {
    document_id: DocumentId,
    job: Job,
}

// Held boxed in `Work`, so the variants' sizes cost nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Job {
    /// Reading who made a heavy message's changes, before the policy
    /// decides whether they may be applied (then [`Job::Receive`]).
    Authors {
        document: Box<Document>,
        incoming: SyncIn,
    },
    Receive {
        document: Box<Document>,
        message: sync::Message,
        applying: Applying,
    },
    Load {
        chunks: Vec<Vec<u8>>,
        sync_states: Vec<(String, Vec<u8>)>,
        sizes: (ChunkSize, u64),
    },
}

/// The outcome of [`Work::run`].
pub struct Worked(Box<WorkedItem>);

struct WorkedItem {
    document_id: DocumentId,
    done: Done,
}

// Held boxed in `Worked`, like `Job`.
#[allow(clippy::large_enum_variant)]
enum Done {
    /// `incoming.authors` holds what was read.
    Authored {
        document: Box<Document>,
        incoming: SyncIn,
    },
    Received {
        /// `None` if applying it panicked: what memory held is not trusted.
        document: Option<Box<Document>>,
        result: Result<(), String>,
        applying: Applying,
    },
    Loaded {
        doc: Automerge,
        /// Why the stored chunks could not all be read.
        unreadable: Option<String>,
        sync_states: Vec<(String, Vec<u8>)>,
        sizes: (ChunkSize, u64),
    },
}

impl Work {
    /// Does the work; never panics (a panic becomes a result).
    pub fn run(self) -> Worked {
        let WorkItem { document_id, job } = *self.0;
        let done = match job {
            Job::Authors {
                document,
                mut incoming,
            } => {
                let doc = &document.doc;
                let changes = &incoming.message.changes;
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::authors::new_authors(doc, changes.iter())
                }))
                .unwrap_or_else(|_| Err("reading them failed".to_string()));
                incoming.authors = Some(read);
                Done::Authored { document, incoming }
            }
            Job::Receive {
                mut document,
                message,
                applying,
            } => {
                let conn = applying.conn;
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    let result = receive(&mut document, conn, message);
                    (document, result)
                }));
                let (document, result) = match outcome {
                    Ok((document, result)) => (Some(document), result),
                    Err(_) => (None, Err("applying them failed".to_string())),
                };
                Done::Received {
                    document,
                    result,
                    applying,
                }
            }
            Job::Load {
                chunks,
                sync_states,
                sizes,
            } => {
                let (doc, unreadable) = std::panic::catch_unwind(|| assemble(&chunks))
                    .unwrap_or_else(|_| (Automerge::new(), Some("reading it failed".to_string())));
                Done::Loaded {
                    doc,
                    unreadable,
                    sync_states,
                    sizes,
                }
            }
        };
        Worked(Box::new(WorkedItem { document_id, done }))
    }

    pub fn document_id(&self) -> DocumentId {
        self.0.document_id
    }
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.0.job {
            Job::Authors { .. } => "authors",
            Job::Receive { .. } => "apply",
            Job::Load { .. } => "load",
        };
        write!(f, "Work({what} {})", self.0.document_id)
    }
}

impl PartialEq for Work {
    fn eq(&self, other: &Work) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

impl std::fmt::Debug for Worked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Worked({})", self.0.document_id)
    }
}

/// A document from its stored chunks, and why not all could be read.
pub(crate) fn assemble(chunks: &[Vec<u8>]) -> (Automerge, Option<String>) {
    let mut doc = Automerge::new();
    for chunk in chunks {
        if let Err(error) = doc.load_incremental(chunk) {
            return (doc, Some(error.to_string()));
        }
    }
    (doc, None)
}

/// Applies `message` from `conn` to the document.
fn receive(document: &mut Document, conn: ConnId, message: sync::Message) -> Result<(), String> {
    let peer = document
        .peers
        .get_mut(&conn)
        .ok_or("the connection is not syncing it")?;
    document
        .doc
        .receive_sync_message(&mut peer.sync, message)
        .map_err(|error| error.to_string())
}

/// The most documents away being worked on at once; a heavy message
/// beyond them is refused for now.
const MAX_BUSY: usize = 16;

/// What came back from [`Effect::Work`] on a document set aside.
enum Returned {
    Applied(Result<(), String>, Applying),
    Authored(SyncIn),
}

/// Why a heavy message was refused while [`MAX_BUSY`] documents are away.
fn too_busy(document_id: DocumentId) -> String {
    format!(
        "the relay is busy with other large changes, so the changes sent for document {document_id} were not saved now; they stay on your computer and are sent again when you next sync"
    )
}

/// Whether the document holds changes that wait for a dependency not yet
/// received. Automerge keeps them in memory only (they cannot be saved
/// until they apply), and the peer that sent them counts them as sent for
/// as long as its connection lasts, so it never sends them again on it: a
/// document that left memory now would lose them for good on that
/// connection. (A sender whose bloom filter check gave a false positive
/// sends a change without its parent; the protocol then asks for the
/// parent, and the queued change applies when it comes.)
fn waits_for_dependencies(doc: &Automerge) -> bool {
    !doc.get_missing_deps(&[]).is_empty()
}

/// Ephemeral messages (presence, cursors) are small; a larger one would be
/// copied to every subscriber, so it is dropped.
pub const MAX_EPHEMERAL_BYTES: usize = 64 * 1024;

/// The longest sentence kept from a peer's `error` message.
const MAX_ERROR_CHARS: usize = 1000;

/// The most sessions remembered for ephemeral deduplication.
const MAX_EPHEMERAL_SESSIONS: usize = 1024;

/// The most absent documents remembered per connection (see
/// `Connection::absent`); past this the set starts again.
const MAX_ABSENT: usize = 1024;

/// What a sync message may list, checked before automerge reads it. A
/// real peer sends at most one `have` entry and as many heads and needs
/// as the document has concurrent versions (a handful); automerge's work
/// grows with `have` times the document's changes, and its reply with
/// repeated needs, so a message beyond these is refused.
pub const MAX_SYNC_HAVES: u64 = 16;
pub const MAX_SYNC_HASHES: u64 = 1024;
/// One chunk per change (a whole document is one): more than any
/// document here is made of.
pub const MAX_SYNC_CHUNKS: u64 = 200_000;

/// The most documents a client starts syncing between two ticks: one
/// request frame each, so a listing of thousands (or a reconnect with
/// thousands tracked) fills no outbox; the rest wait for the next ticks.
pub const ANNOUNCE_PER_TICK: usize = 256;

/// One peer's documents and connections. See the module documentation.
pub struct Repo {
    config: RepoConfig,
    policy: Box<dyn AccessPolicy>,
    connections: HashMap<ConnId, Connection>,
    documents: HashMap<DocumentId, Slot>,
    tracked: HashSet<DocumentId>,
    /// Documents made here for a partnership other than the home one,
    /// named to the relay before their first sync on each connection.
    claims: HashMap<DocumentId, String>,
    /// Highest ephemeral count seen per (sender, session), to drop repeats.
    ephemeral_seen: HashMap<(PeerId, String), u64>,
    /// Documents waiting to start syncing (listed, or tracked when a
    /// connection opened), at most [`ANNOUNCE_PER_TICK`] a tick; `waiting`
    /// holds the same ids, to queue each once.
    to_announce: VecDeque<DocumentId>,
    waiting: HashSet<DocumentId>,
    announce_budget: usize,
    /// Bytes stored per document (as the store had them at start, plus
    /// what was persisted since), for the sizes in listings.
    stored_sizes: HashMap<DocumentId, u64>,
    /// What resting documents being loaded again kept of their peers.
    waking: HashMap<DocumentId, Resting>,
    /// The earliest time a peer's refusal that passes ends, if any: the
    /// ticks before it look at no document for retries.
    next_retry_ms: Option<u64>,
    /// When peers held back by pacing are due a message anyway: (time,
    /// document, connection), earliest first; stale entries are skipped.
    wakeups: BinaryHeap<Reverse<(u64, DocumentId, ConnId)>>,
    now_ms: u64,
    effects: Vec<Effect>,
}

impl Repo {
    pub fn new(config: RepoConfig, policy: Box<dyn AccessPolicy>) -> Self {
        Repo {
            config,
            policy,
            connections: HashMap::new(),
            documents: HashMap::new(),
            tracked: HashSet::new(),
            claims: HashMap::new(),
            ephemeral_seen: HashMap::new(),
            to_announce: VecDeque::new(),
            waiting: HashSet::new(),
            announce_budget: ANNOUNCE_PER_TICK,
            stored_sizes: HashMap::new(),
            waking: HashMap::new(),
            next_retry_ms: None,
            wakeups: BinaryHeap::new(),
            now_ms: 0,
            effects: Vec::new(),
        }
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The bytes stored for each document when the driver started, for
    /// the sizes listings give (the core adds what it persists).
    pub fn set_stored_sizes(&mut self, sizes: HashMap<DocumentId, u64>) {
        self.stored_sizes = sizes;
    }

    /// Handles one event and returns what the driver must do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Connected {
                conn,
                initiate,
                grant,
            } => self.on_connected(conn, initiate, grant),
            Event::Frame { conn, bytes } => self.on_frame(conn, &bytes),
            Event::Disconnected { conn } => self.on_disconnected(conn),
            Event::Loaded {
                document_id,
                chunks,
                sync_states,
            } => self.on_loaded(document_id, chunks, sync_states),
            Event::LocalChanges { document_id, chunk } => {
                self.with_document(document_id, Queued::Local(chunk))
            }
            Event::Track { document_id } => {
                self.tracked.insert(document_id);
                self.with_document(document_id, Queued::Announce)
            }
            Event::Claim {
                document_id,
                partnership,
            } => {
                self.claims.insert(document_id, partnership);
            }
            Event::Tick { now_ms } => self.on_tick(now_ms),
            Event::Time { now_ms } => self.on_time(now_ms),
            Event::Written { conn, bytes } => self.on_written(conn, bytes),
            Event::Worked(worked) => self.on_worked(worked),
            Event::Refuse { conn, reason } => {
                if self.connections.contains_key(&conn) {
                    self.refuse(conn, &reason);
                }
            }
            Event::LoadFailed {
                document_id,
                reason,
            } => {
                self.effects.push(Effect::StorageUnreadable {
                    document_id,
                    reason,
                });
                self.on_loaded_document(
                    document_id,
                    Automerge::new(),
                    Vec::new(),
                    true,
                    Default::default(),
                );
            }
            Event::RegisterChanged { register } => {
                for (conn, reason) in self.policy.register_changed(register) {
                    if self.connections.contains_key(&conn) {
                        self.refuse(conn, &reason);
                    }
                }
                // A school added to a partnership keeps its connection:
                // list that partnership's documents to it now.
                let listening: Vec<ConnId> = self
                    .connections
                    .iter()
                    .filter(|(_, c)| c.listing)
                    .map(|(&conn, _)| conn)
                    .collect();
                for conn in listening {
                    self.send_listing(conn, false);
                }
            }
            Event::WriteFailed {
                document_ids,
                unowned,
                forgotten,
            } => {
                for document_id in unowned {
                    self.policy.unclaim(&document_id);
                }
                self.policy.forget(&forgotten);
                for document_id in document_ids {
                    self.documents.remove(&document_id);
                    self.waking.remove(&document_id);
                    for connection in self.connections.values_mut() {
                        connection.documents.remove(&document_id);
                    }
                }
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// How many documents wait to start syncing (see [`ANNOUNCE_PER_TICK`]).
    pub fn announcing(&self) -> usize {
        self.to_announce.len()
    }

    /// The number of documents held in memory (or being loaded).
    pub fn loaded_documents(&self) -> usize {
        self.documents.len() - self.resting_documents()
    }

    /// The number of documents at rest: out of memory, with connected
    /// subscribers.
    pub fn resting_documents(&self) -> usize {
        self.documents
            .values()
            .filter(|slot| matches!(slot, Slot::Resting(_)))
            .count()
    }

    /// When the core next wants to hear the time ([`Event::Time`]), in ms,
    /// if it waits for anything.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.wakeups.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The document as held in memory, if it is loaded.
    pub fn document(&self, document_id: &DocumentId) -> Option<&Automerge> {
        match self.documents.get(document_id) {
            Some(Slot::Ready(document)) => Some(&document.doc),
            _ => None,
        }
    }

    /// Why the peer on `conn` refused our changes to `document_id`, in
    /// its words, if it did ([`SyncProgress::Refused`]).
    pub fn refusal(&self, document_id: &DocumentId, conn: ConnId) -> Option<&str> {
        match self.documents.get(document_id) {
            Some(Slot::Ready(document)) => document.peers.get(&conn)?.refused.as_deref(),
            _ => None,
        }
    }

    /// Whether the peer's refusal of our changes to `document_id` passes:
    /// they go again by themselves, on the same connection, once the time
    /// it gave is up ([`Refusal::retry_after_ms`]).
    pub fn refusal_passes(&self, document_id: &DocumentId, conn: ConnId) -> bool {
        match self.documents.get(document_id) {
            Some(Slot::Ready(document)) => document
                .peers
                .get(&conn)
                .is_some_and(|peer| peer.refused.is_some() && peer.retry_at_ms.is_some()),
            _ => false,
        }
    }

    /// Where `document_id` stands with the peer on `conn`.
    pub fn progress(&self, document_id: &DocumentId, conn: ConnId) -> SyncProgress {
        let Some(Slot::Ready(document)) = self.documents.get(document_id) else {
            return SyncProgress::NotSyncing;
        };
        let Some(peer) = document.peers.get(&conn) else {
            return SyncProgress::NotSyncing;
        };
        if peer.refused.is_some() {
            return SyncProgress::Refused;
        }
        let mut ours = document.doc.get_heads();
        // The peer does not have it, or will not take it from us.
        if peer.remote_unavailable {
            return SyncProgress::Unavailable;
        }
        let Some(theirs) = &peer.sync.their_heads else {
            return SyncProgress::Syncing;
        };
        let mut theirs = theirs.clone();
        ours.sort();
        theirs.sort();
        let mut shared = peer.sync.shared_heads.clone();
        shared.sort();
        if ours == theirs && shared == ours {
            SyncProgress::InSync
        } else if peer.sync.peer_read_only
            && theirs
                .iter()
                .all(|h| document.doc.get_change_by_hash(h).is_some())
        {
            SyncProgress::ReadOnly
        } else {
            SyncProgress::Syncing
        }
    }

    fn on_connected(&mut self, conn: ConnId, initiate: bool, grant: Option<Grant>) {
        let admitted = self.policy.connected(conn, grant);
        let state = if initiate {
            self.send(
                conn,
                &Message::Join {
                    sender_id: self.config.peer_id.clone(),
                    supported_protocol_versions: vec![PROTOCOL_VERSION.to_string()],
                    metadata: PeerMetadata {
                        signing_key: self.config.signing_key,
                        ..self.config.metadata(self.config.ask_for_listing, true)
                    },
                },
            );
            ConnState::AwaitingPeer
        } else {
            ConnState::AwaitingJoin
        };
        self.connections.insert(
            conn,
            Connection {
                initiate,
                state,
                documents: HashSet::new(),
                absent: HashSet::new(),
                listing: false,
                listed: HashSet::new(),
                unsent: 0,
                deferred: HashSet::new(),
                stopped: HashMap::new(),
                compact: false,
            },
        );
        self.keep_records();
        if let Err(reason) = admitted {
            self.refuse(conn, &reason);
        }
    }

    fn on_frame(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let message = match Message::decode(bytes, self.config.max_frame_bytes) {
            Ok(message) => message,
            Err(error) => return self.refuse(conn, &describe_decode_error(&error)),
        };
        match (&connection.state, message) {
            (
                ConnState::AwaitingJoin,
                Message::Join {
                    sender_id,
                    supported_protocol_versions,
                    metadata,
                },
            ) => self.on_join(conn, sender_id, supported_protocol_versions, metadata),
            (
                ConnState::AwaitingPeer,
                Message::Peer {
                    sender_id,
                    metadata,
                    ..
                },
            ) => self.on_peer(conn, sender_id, metadata),
            (ConnState::AwaitingJoin | ConnState::AwaitingPeer, Message::Error { message, .. }) => {
                // Refused before the connection opened. The peer's own
                // words: the drivers say who it was.
                self.connections.remove(&conn);
                self.effects.push(Effect::Close {
                    conn,
                    reason: shorten(&message),
                });
            }
            (ConnState::AwaitingJoin | ConnState::AwaitingPeer, message) => {
                let expected = if connection.initiate { "peer" } else { "join" };
                self.refuse(
                    conn,
                    &format!(
                        "expected a “{expected}” message to open the connection, but got “{}”",
                        message.kind()
                    ),
                )
            }
            (ConnState::Open { .. }, Message::Compact(_)) if !connection.compact => self.refuse(
                conn,
                "a compact sync message came on a connection that did not agree to them in “join” and “peer”",
            ),
            // A compact frame names no peer: the connection says who.
            (ConnState::Open { .. }, message @ Message::Compact(_)) => {
                self.on_open_message(conn, message)
            }
            (ConnState::Open { peer_id, .. }, message) => {
                if message.sender_id() != Some(peer_id.as_str()) {
                    if matches!(message, Message::Ephemeral { .. }) {
                        // JS peers echo every ephemeral message they receive
                        // back to us with its first sender's id: drop it.
                        return;
                    }
                    let claimed = message.sender_id().unwrap_or("nobody").to_string();
                    let reason = format!(
                        "the message says it is from peer “{}”, but this connection belongs to peer “{}”",
                        shorten(&claimed),
                        shorten(peer_id)
                    );
                    return self.refuse(conn, &reason);
                }
                self.on_open_message(conn, message)
            }
        }
    }

    fn on_join(
        &mut self,
        conn: ConnId,
        peer_id: PeerId,
        versions: Vec<String>,
        metadata: PeerMetadata,
    ) {
        // An empty list comes from peers older than version negotiation;
        // they speak version 1.
        if !versions.is_empty() && !versions.iter().any(|v| v == PROTOCOL_VERSION) {
            let reason = format!(
                "this relay speaks automerge-repo protocol version {PROTOCOL_VERSION}, and your client supports only {}; update the client",
                shorten(&versions.join(", "))
            );
            return self.refuse(conn, &reason);
        }
        let admitted = self.policy.admit(conn, &peer_id, self.now_ms);
        self.keep_records();
        if let Err(reason) = admitted {
            return self.refuse(conn, &reason);
        }
        // Only a peer that asked hears of listings, so automerge-repo
        // peers never receive a message type they do not know.
        let listing = metadata.listing;
        let signing_key = metadata.signing_key;
        self.send(
            conn,
            &Message::Peer {
                sender_id: self.config.peer_id.clone(),
                target_id: peer_id.clone(),
                selected_protocol_version: PROTOCOL_VERSION.to_string(),
                metadata: self
                    .config
                    .metadata(listing, metadata.compact == COMPACT_VERSION),
            },
        );
        self.open(conn, peer_id, metadata);
        if let Some(key) = signing_key {
            self.on_signing_key(conn, &key);
        }
        if listing && let Some(connection) = self.connections.get_mut(&conn) {
            connection.listing = true;
            self.send_listing(conn, true);
            let named = self.policy.named_actors(conn);
            self.send_actor_names(conn, named);
        }
    }

    /// A school's public signing key, given in its client's `join`: kept
    /// if new, and every other connection listed a partnership of that
    /// school hears of it at once (their listings name each school's
    /// keys), so a signature made there checks out here without a
    /// reconnect. One the policy refuses is answered with an `error` that
    /// says why; the connection stays open.
    fn on_signing_key(&mut self, conn: ConnId, key: &PublicKey) {
        match self.policy.signing_key(conn, key) {
            Ok(None) => {}
            Ok(Some(kept)) => {
                self.effects.push(Effect::PersistSigningKey { key: kept });
                let listening: Vec<(ConnId, PeerId)> = self
                    .connections
                    .iter()
                    .filter(|(other, c)| **other != conn && c.listing)
                    .filter_map(|(&other, c)| match &c.state {
                        ConnState::Open { peer_id, .. } => Some((other, peer_id.clone())),
                        _ => None,
                    })
                    .collect();
                for (other, target_id) in listening {
                    let mut partnerships = self.policy.partnerships(other);
                    partnerships.retain(|p| p.schools.iter().any(|s| s.keys.contains(key)));
                    if partnerships.is_empty() {
                        continue;
                    }
                    self.send(
                        other,
                        &Message::Listing {
                            sender_id: self.config.peer_id.clone(),
                            target_id,
                            partnerships,
                            more: false,
                        },
                    );
                }
            }
            Err(reason) => self.warn(conn, &reason),
        }
    }

    fn on_peer(&mut self, conn: ConnId, peer_id: PeerId, metadata: PeerMetadata) {
        self.open(conn, peer_id, metadata);
        let mut tracked: Vec<DocumentId> = self.tracked.iter().copied().collect();
        tracked.sort();
        self.queue_announcements(tracked);
    }

    /// Lists to `conn` the documents of every partnership its school may
    /// see that it has not been told of yet, [`MAX_LISTED_PER_MESSAGE`]
    /// ids a message. Every message names all the school's partnerships
    /// (a few), so even one with no documents is known. The `initial`
    /// listing is sent even when empty: the client waits for its end.
    fn send_listing(&mut self, conn: ConnId, initial: bool) {
        let Some(target_id) = self.peer_id(conn) else {
            return;
        };
        let headers = self.policy.partnerships(conn);
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let new: Vec<String> = headers
            .iter()
            .map(|p| p.id.clone())
            .filter(|id| !connection.listed.contains(id))
            .collect();
        if new.is_empty() && !initial {
            return;
        }
        connection.listed.extend(new.iter().cloned());
        let mut pending: Vec<(usize, DocumentId)> = Vec::new();
        for (index, header) in headers.iter().enumerate() {
            if new.contains(&header.id) {
                pending.extend(
                    self.policy
                        .documents_of(&header.id)
                        .into_iter()
                        .map(|id| (index, id)),
                );
            }
        }
        let mut chunks = pending.chunks(MAX_LISTED_PER_MESSAGE).peekable();
        let empty: &[(usize, DocumentId)] = &[];
        let mut chunk = chunks.next().unwrap_or(empty);
        loop {
            let mut partnerships = headers.clone();
            for (index, document_id) in chunk {
                let size = self.stored_sizes.get(document_id).copied().unwrap_or(0);
                partnerships[*index].documents.push(*document_id);
                partnerships[*index].sizes.push(size);
                if self.policy.shared(document_id) {
                    partnerships[*index].shared.push(*document_id);
                }
            }
            let more = chunks.peek().is_some();
            self.send(
                conn,
                &Message::Listing {
                    sender_id: self.config.peer_id.clone(),
                    target_id: target_id.clone(),
                    partnerships,
                    more,
                },
            );
            match chunks.next() {
                Some(next) => chunk = next,
                None => break,
            }
        }
    }

    /// Tells `conn` which schools these actors belong to,
    /// [`MAX_ACTORS_PER_MESSAGE`] a message.
    fn send_actor_names(&mut self, conn: ConnId, named: Vec<NamedActor>) {
        let Some(target_id) = self.peer_id(conn) else {
            return;
        };
        for chunk in named.chunks(MAX_ACTORS_PER_MESSAGE) {
            self.send(
                conn,
                &Message::Actors {
                    sender_id: self.config.peer_id.clone(),
                    target_id: target_id.clone(),
                    actors: chunk.to_vec(),
                },
            );
        }
    }

    /// Tells every connection that asked for listings, and may know it,
    /// the school of each actor just bound: before the changes made under
    /// it reach them.
    fn announce_bindings(&mut self, records: &[AccessRecord]) {
        let bound: Vec<&[u8]> = records
            .iter()
            .filter_map(|record| match record {
                AccessRecord::ActorBound { actor, .. } => Some(actor.as_slice()),
                _ => None,
            })
            .collect();
        if bound.is_empty() {
            return;
        }
        let listening: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.listing && matches!(c.state, ConnState::Open { .. }))
            .map(|(&conn, _)| conn)
            .collect();
        for conn in listening {
            let named: Vec<NamedActor> = bound
                .iter()
                .filter_map(|actor| {
                    Some(NamedActor {
                        school: self.policy.actor_name(conn, actor)?,
                        actor: actor.to_vec(),
                    })
                })
                .collect();
            if !named.is_empty() {
                self.send_actor_names(conn, named);
            }
        }
    }

    /// Tells every other connection that asked for listings, and may see
    /// it, of a document just claimed for `partnership`.
    fn announce_claim(&mut self, claimer: ConnId, document_id: DocumentId, partnership: &str) {
        let listening: Vec<(ConnId, PeerId)> = self
            .connections
            .iter()
            .filter(|(conn, c)| **conn != claimer && c.listing)
            .filter_map(|(&conn, c)| match &c.state {
                ConnState::Open { peer_id, .. } => Some((conn, peer_id.clone())),
                _ => None,
            })
            .collect();
        for (conn, target_id) in listening {
            if !matches!(
                self.policy.permission(conn, &document_id),
                Permission::Read | Permission::ReadWrite
            ) {
                continue;
            }
            let mut partnerships = self.policy.partnerships(conn);
            partnerships.retain(|p| p.id == partnership);
            let Some(listed) = partnerships.first_mut() else {
                continue;
            };
            listed.documents.push(document_id);
            listed
                .sizes
                .push(self.stored_sizes.get(&document_id).copied().unwrap_or(0));
            if self.policy.shared(&document_id) {
                listed.shared.push(document_id);
            }
            self.send(
                conn,
                &Message::Listing {
                    sender_id: self.config.peer_id.clone(),
                    target_id,
                    partnerships,
                    more: false,
                },
            );
        }
    }

    /// A listing from the relay: track each document it names, so it is
    /// requested, synced and kept across restarts.
    fn on_listing(&mut self, conn: ConnId, partnerships: Vec<ListedPartnership>, more: bool) {
        let initiated = self.connections.get(&conn).is_some_and(|c| c.initiate);
        if !initiated || !self.config.ask_for_listing {
            return; // not asked for: nothing to do with it
        }
        let mut new = Vec::new();
        for partnership in &partnerships {
            for document_id in &partnership.documents {
                if !self.tracked.contains(document_id) {
                    new.push(*document_id);
                }
            }
        }
        self.queue_announcements(new);
        self.effects.push(Effect::Listed {
            conn,
            partnerships,
            more,
        });
    }

    /// Queues documents to start syncing with every peer we announce to,
    /// and starts as many as this tick allows.
    fn queue_announcements(&mut self, documents: Vec<DocumentId>) {
        for document_id in documents {
            if self.waiting.insert(document_id) {
                self.to_announce.push_back(document_id);
            }
        }
        self.start_announcements();
    }

    fn start_announcements(&mut self) {
        while self.announce_budget > 0 {
            let Some(document_id) = self.to_announce.pop_front() else {
                break;
            };
            self.waiting.remove(&document_id);
            self.announce_budget -= 1;
            if self.tracked.insert(document_id) {
                self.effects.push(Effect::PersistTracked { document_id });
            }
            self.with_document(document_id, Queued::Announce);
        }
    }

    fn open(&mut self, conn: ConnId, peer_id: PeerId, metadata: PeerMetadata) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            // Either side's metadata offers it: the `join` (we accept) or
            // the `peer` (it accepted ours).
            connection.compact = self.config.compact && metadata.compact == COMPACT_VERSION;
            connection.state = ConnState::Open {
                peer_id: peer_id.clone(),
                metadata: metadata.clone(),
            };
        }
        self.effects.push(Effect::PeerJoined {
            conn,
            peer_id,
            metadata,
        });
    }

    fn on_open_message(&mut self, conn: ConnId, message: Message) {
        match message {
            Message::Request(_) | Message::Sync(_) | Message::Compact(_) => {
                let request = matches!(
                    message,
                    Message::Request(_) | Message::Compact(CompactFrame { request: true, .. })
                );
                let Some(document_id) = message.document_id() else {
                    return;
                };
                if let Some(connection) = self.connections.get_mut(&conn)
                    && let Some(&until) = connection.stopped.get(&document_id)
                {
                    if until.is_none_or(|until| self.now_ms < until) {
                        return; // refused already, and told why
                    }
                    // The refusal has passed: the document syncs afresh,
                    // answered as if never asked about (a new document's
                    // first message gets its answer again).
                    connection.stopped.remove(&document_id);
                    connection.absent.remove(&document_id);
                }
                // Read and checked before anything else, so what a message
                // may cost does not depend on the document.
                let decoded = match &message {
                    Message::Compact(frame) => {
                        let max_bytes = self.config.max_frame_bytes.saturating_mul(4);
                        compact::decode(&frame.data, max_bytes)
                            .and_then(|m| check_decoded_shape(&m).map(|()| m))
                    }
                    Message::Request(frame) | Message::Sync(frame) => check_sync_shape(&frame.data)
                        .and_then(|()| {
                            sync::Message::decode(&frame.data).map_err(|e| e.to_string())
                        }),
                    _ => return,
                };
                let message = match decoded.and_then(check_sync_message) {
                    Ok(message) => message,
                    Err(error) => {
                        let reason = format!(
                            "the sync data for document {document_id} could not be read: {}",
                            shorten(&error)
                        );
                        return self.refuse(conn, &reason);
                    }
                };
                if self.policy.permission(conn, &document_id) == Permission::None {
                    // The same answer as for a document that does not exist,
                    // so ids cannot be probed.
                    let unavailable = request || offers_changes(&message);
                    return self.answer_absent(conn, document_id, message, unavailable);
                }
                let carried = match self.measure_message(&message) {
                    Ok(carried) => carried,
                    Err(reason) => {
                        return self.stop_document(
                            conn,
                            document_id,
                            &format!(
                                "the changes sent for document {document_id} were not saved: {reason}; they stay on your computer"
                            ),
                            None,
                        );
                    }
                };
                self.with_document(
                    document_id,
                    Queued::Sync(SyncIn {
                        conn,
                        message,
                        request,
                        carried,
                        authors: None,
                    }),
                );
            }
            Message::DocUnavailable { document_id, .. } => {
                if let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id)
                    && let Some(peer) = document.peers.get_mut(&conn)
                {
                    peer.remote_unavailable = true;
                }
                self.effects.push(Effect::Unavailable { conn, document_id });
            }
            Message::Ephemeral { .. } => self.on_ephemeral(conn, message),
            Message::Leave { .. } => {
                self.on_disconnected(conn);
                self.effects.push(Effect::Close {
                    conn,
                    reason: "the peer left".into(),
                });
            }
            Message::Join { .. } | Message::Peer { .. } => self.refuse(
                conn,
                "the connection is already open; send “join” only once",
            ),
            Message::Error {
                message,
                document_id,
                retry_after_ms,
                ..
            } => {
                // Long enough for a relay's sentence, still bounded.
                let message = crate::peer_text::peer_text(&message, MAX_ERROR_CHARS);
                if let Some(document_id) = document_id {
                    self.on_refused(conn, document_id, &message, retry_after_ms);
                }
                self.effects.push(Effect::RemoteError { conn, message })
            }
            Message::Gossip { .. } => {}
            Message::Listing {
                partnerships, more, ..
            } => self.on_listing(conn, partnerships, more),
            Message::Actors { actors, .. } => {
                let initiated = self.connections.get(&conn).is_some_and(|c| c.initiate);
                // Only our relay names actors, and only when asked.
                if initiated && self.config.ask_for_listing && !actors.is_empty() {
                    self.effects.push(Effect::ActorsNamed { actors });
                }
            }
            Message::Claim {
                document_id,
                partnership,
                ..
            } => {
                let initiated = self.connections.get(&conn).is_some_and(|c| c.initiate);
                // Only a relay takes claims, from the clients it serves.
                if initiated {
                    return;
                }
                if let Err(reason) = self.policy.intend(conn, &document_id, &partnership) {
                    tracing::warn!(conn, document = %document_id, "claim refused: {reason}");
                    self.stop_document(conn, document_id, &reason, None);
                }
            }
        }
    }

    /// Relays an ephemeral message to the document's other peers, once.
    fn on_ephemeral(&mut self, conn: ConnId, message: Message) {
        let Message::Ephemeral {
            sender_id,
            document_id,
            session_id,
            count,
            data,
            ..
        } = message
        else {
            return;
        };
        if self.policy.permission(conn, &document_id) == Permission::None
            || data.len() > MAX_EPHEMERAL_BYTES
        {
            return;
        }
        // Presence goes on while a document rests: its subscribers hear it.
        let subscribers: Vec<ConnId> = match self.documents.get(&document_id) {
            Some(Slot::Ready(document)) => document.peers.keys().copied().collect(),
            Some(Slot::Resting(resting)) => resting.subscribers().collect(),
            _ => return,
        };
        // A session counts its messages across all documents.
        let key = (sender_id.clone(), session_id.clone());
        match self.ephemeral_seen.get(&key) {
            Some(&seen) if count <= seen => return,
            _ => {}
        }
        if self.ephemeral_seen.len() >= MAX_EPHEMERAL_SESSIONS {
            self.ephemeral_seen.clear();
        }
        self.ephemeral_seen.insert(key, count);
        let policy = &self.policy;
        let connections = &self.connections;
        let limit = self.config.outbox_bytes;
        let targets: Vec<ConnId> = subscribers
            .into_iter()
            .filter(|&other| other != conn)
            .filter(|&other| policy.permission(other, &document_id) != Permission::None)
            // Presence is worth nothing late: a peer behind on reading
            // misses it.
            .filter(|other| !connections.get(other).is_some_and(|c| backed_up(c, limit)))
            .collect();
        for target in targets {
            let Some(target_id) = self.peer_id(target) else {
                continue;
            };
            self.send(
                target,
                &Message::Ephemeral {
                    sender_id: sender_id.clone(),
                    target_id,
                    document_id,
                    session_id: session_id.clone(),
                    count,
                    data: data.clone(),
                },
            );
        }
    }

    fn on_disconnected(&mut self, conn: ConnId) {
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        self.policy.disconnected(conn, self.now_ms);
        self.keep_records();
        let storage_id = match &connection.state {
            ConnState::Open { metadata, .. } if !metadata.is_ephemeral => {
                metadata.storage_id.clone()
            }
            _ => None,
        };
        for document_id in connection.documents {
            if let Some(Slot::Busy { departed, .. }) = self.documents.get_mut(&document_id) {
                departed.push((conn, storage_id.clone()));
                continue;
            }
            // At rest, its state was kept when it went to rest.
            if let Some(resting) = self.waking.get_mut(&document_id) {
                resting.forget(conn);
            }
            let document = match self.documents.get_mut(&document_id) {
                Some(Slot::Ready(document)) => document,
                Some(Slot::Resting(resting)) => {
                    resting.forget(conn);
                    if resting.is_empty() {
                        self.documents.remove(&document_id);
                    }
                    continue;
                }
                _ => continue,
            };
            let Some(peer) = document.peers.remove(&conn) else {
                continue;
            };
            document.last_active_ms = self.now_ms;
            if let Some(storage_id) = &storage_id {
                let state = peer.sync.encode();
                document
                    .stored_sync_states
                    .insert(storage_id.clone(), state.clone());
                if peer.sync.shared_heads != peer.persisted_shared_heads {
                    self.effects.push(Effect::PersistSyncState {
                        document_id,
                        storage_id: storage_id.clone(),
                        state,
                    });
                }
            }
        }
    }

    /// Runs `work` on the document, loading it first if needed.
    fn with_document(&mut self, document_id: DocumentId, work: Queued) {
        match self.documents.get_mut(&document_id) {
            None | Some(Slot::Resting(_)) => {
                if let Some(Slot::Resting(resting)) = self
                    .documents
                    .insert(document_id, Slot::Loading(vec![work]))
                {
                    self.waking.insert(document_id, resting);
                }
                self.effects.push(Effect::Load { document_id });
            }
            Some(Slot::Loading(queue) | Slot::Busy { queue, .. }) => queue.push(work),
            Some(Slot::Ready(_)) => self.run(document_id, work),
        }
    }

    fn on_loaded(
        &mut self,
        document_id: DocumentId,
        chunks: Vec<Vec<u8>>,
        sync_states: Vec<(String, Vec<u8>)>,
    ) {
        let Some(Slot::Loading(_)) = self.documents.get(&document_id) else {
            return;
        };
        let mut size = ChunkSize::default();
        let mut stored_bytes = 0u64;
        let measure = self.config.quotas.is_some() || self.config.heavy_ops.is_some();
        for chunk in &chunks {
            stored_bytes += chunk.len() as u64;
            // What is stored was accepted once: measured, never refused.
            if measure && let Ok(measured) = chunk_size::measure(chunk, chunk_size::Limits::NONE) {
                size.ops = size.ops.saturating_add(measured.ops);
                size.changes = size.changes.saturating_add(measured.changes);
            }
        }
        let sizes = (size, stored_bytes);
        if self.config.heavy_ops.is_some_and(|heavy| size.ops > heavy) {
            // Assembled on the driver's worker; what arrives meanwhile
            // waits in the loading queue.
            self.effects.push(Effect::Work(Work(Box::new(WorkItem {
                document_id,
                job: Job::Load {
                    chunks,
                    sync_states,
                    sizes,
                },
            }))));
            return;
        }
        let (doc, unreadable) = assemble(&chunks);
        if let Some(reason) = &unreadable {
            self.effects.push(Effect::StorageUnreadable {
                document_id,
                reason: reason.clone(),
            });
        }
        self.on_loaded_document(document_id, doc, sync_states, unreadable.is_some(), sizes);
    }

    fn on_loaded_document(
        &mut self,
        document_id: DocumentId,
        doc: Automerge,
        sync_states: Vec<(String, Vec<u8>)>,
        unreadable: bool,
        (size, stored_bytes): (ChunkSize, u64),
    ) {
        let persisted_heads = doc.get_heads();
        // Subscribers it had when it went to rest pick up where they were.
        let peers = match self.waking.remove(&document_id) {
            Some(resting) => resting
                .wake()
                .into_iter()
                .map(|(conn, sync, bits)| {
                    let peer = PeerDoc {
                        persisted_shared_heads: sync.shared_heads.clone(),
                        pace: Pace::told(sync.last_sent_heads.clone()),
                        sync,
                        remote_unavailable: bits.has(Bits::REMOTE_UNAVAILABLE),
                        told_read_only: bits.has(Bits::TOLD_READ_ONLY),
                        refused: None,
                        retry_at_ms: None,
                    };
                    (conn, peer)
                })
                .collect(),
            None => HashMap::new(),
        };
        let document = Document {
            doc,
            persisted_heads,
            peers,
            stored_sync_states: sync_states.into_iter().collect(),
            last_active_ms: self.now_ms,
            unreadable,
            size,
            stored_bytes,
        };
        let Some(Slot::Loading(queue)) = self
            .documents
            .insert(document_id, Slot::Ready(Box::new(document)))
        else {
            return;
        };
        for work in queue {
            self.run(document_id, work);
        }
    }

    fn run(&mut self, document_id: DocumentId, work: Queued) {
        // Work queued behind a message that found the document absent
        // (and forgot it) loads it again.
        if !matches!(self.documents.get(&document_id), Some(Slot::Ready(_))) {
            return self.with_document(document_id, work);
        }
        match work {
            Queued::Sync(incoming) => self.on_sync(document_id, incoming),
            Queued::Local(chunk) => self.on_local_changes(document_id, &chunk),
            Queued::Announce => self.announce(document_id),
        }
    }

    fn on_sync(&mut self, document_id: DocumentId, incoming: SyncIn) {
        let SyncIn {
            conn,
            message,
            request,
            carried,
            authors,
        } = incoming;
        let Some(connection) = self.connections.get(&conn) else {
            return; // it went away while the document loaded
        };
        // Stopped while this waited for the document (loading, or away on
        // the worker): what was sent before the refusal goes with it.
        if connection.stopped.contains_key(&document_id) {
            return;
        }
        let answering = !connection.initiate;
        let permission = self.policy.permission(conn, &document_id);
        let storage_id = self.peer_storage_id(conn);
        let tracked = self.tracked.contains(&document_id);
        let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
            return;
        };
        let empty = document.doc.get_heads().is_empty();
        // Nobody has it: unless what arrives makes it, it is answered like
        // a document the connection may not see, and nothing is kept. A
        // document that exists but belongs to no one (stored before
        // ownership was recorded) cannot be claimed by whoever asks first.
        let unknown = answering && empty && !tracked;
        if document.unreadable
            || permission == Permission::None
            || (permission == Permission::Create && !empty)
            || (unknown && message.changes.is_empty())
        {
            let unavailable = request || offers_changes(&message);
            self.answer_absent(conn, document_id, message, unavailable);
            return self.forget_if_absent(document_id);
        }
        // To answer as if absent should the changes make nothing.
        let absent_answer = unknown.then(|| (without_changes(&message), offers_changes(&message)));
        let writes = !message.changes.is_empty()
            && matches!(permission, Permission::ReadWrite | Permission::Create);
        let heavy = self
            .config
            .heavy_ops
            .is_some_and(|heavy| carried.after(0, 0).0 > heavy);
        // Who made the changes is asked before any is applied: a school
        // sends only its own (the relay's policy), so none can write in
        // another's name. Reading them parses every change (a whole
        // document's, loading it), so a heavy message's are read on the
        // driver's worker first, and this runs again when they are.
        if writes && self.policy.checks_authors() {
            let read = match authors {
                Some(read) => read,
                None if heavy => {
                    let incoming = SyncIn {
                        conn,
                        message,
                        request,
                        carried,
                        authors: None,
                    };
                    let Some(document) = self.set_aside(document_id) else {
                        return self.stop_document(
                            conn,
                            document_id,
                            &too_busy(document_id),
                            Some(BUSY_RETRY_MS),
                        );
                    };
                    self.effects.push(Effect::Work(Work(Box::new(WorkItem {
                        document_id,
                        job: Job::Authors { document, incoming },
                    }))));
                    return;
                }
                None => {
                    let Some(Slot::Ready(document)) = self.documents.get(&document_id) else {
                        return;
                    };
                    crate::authors::new_authors(&document.doc, message.changes.iter())
                }
            };
            let verdict = read
                .map_err(|why| {
                    format!(
                        "the changes sent for document {document_id} could not be read: {why}. Nothing of them was saved, and the document stops syncing on this connection"
                    )
                })
                .and_then(|actors| {
                    self.policy
                        .authors(conn, &document_id, &actors, self.now_ms)
                });
            if let Err(reason) = verdict {
                tracing::warn!(conn, document = %document_id, "changes refused: {reason}");
                return self.stop_document(conn, document_id, &reason, None);
            }
        }
        // Charged only for changes it may send.
        if writes && let Err(refusal) = self.admit_changes(conn, document_id, carried) {
            let records = self.policy.take_records();
            self.policy.forget(&records);
            return self.stop_document(conn, document_id, &refusal.reason, refusal.retry_after_ms);
        }
        let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
            return;
        };
        let heads_before = document.doc.get_heads();
        document.last_active_ms = self.now_ms;
        let peer = document
            .peers
            .entry(conn)
            .or_insert_with(|| new_peer_doc(&document.stored_sync_states, storage_id.as_deref()));
        peer.sync.read_only = permission == Permission::Read;
        if !message.heads.is_empty() {
            peer.remote_unavailable = false;
        }
        // A reader whose heads we lack has changes of its own: tell it,
        // once, that they are not kept.
        let refused_changes = permission == Permission::Read
            && message
                .heads
                .iter()
                .any(|h| document.doc.get_change_by_hash(h).is_none())
            && !std::mem::replace(&mut peer.told_read_only, true);
        let records = self.policy.take_records();
        let their_heads = message.heads.clone();
        let applying = Applying {
            conn,
            request,
            permission,
            empty,
            heads_before,
            absent_answer,
            refused_changes,
            carried,
            records,
            their_heads,
        };
        if heavy {
            let Some(document) = self.set_aside(document_id) else {
                self.policy.forget(&applying.records);
                return self.stop_document(
                    conn,
                    document_id,
                    &too_busy(document_id),
                    Some(BUSY_RETRY_MS),
                );
            };
            self.effects.push(Effect::Work(Work(Box::new(WorkItem {
                document_id,
                job: Job::Receive {
                    document,
                    message,
                    applying,
                },
            }))));
            return;
        }
        let result = receive(document, conn, message);
        self.after_receive(document_id, applying, result);
    }

    /// Takes a ready document out of the core for [`Effect::Work`]; what
    /// arrives for it meanwhile waits. `None` if [`MAX_BUSY`] are away.
    fn set_aside(&mut self, document_id: DocumentId) -> Option<Box<Document>> {
        let busy = self
            .documents
            .values()
            .filter(|slot| matches!(slot, Slot::Busy { .. }))
            .count();
        if busy >= MAX_BUSY || !matches!(self.documents.get(&document_id), Some(Slot::Ready(_))) {
            return None;
        }
        match self.documents.insert(
            document_id,
            Slot::Busy {
                queue: Vec::new(),
                departed: Vec::new(),
            },
        ) {
            Some(Slot::Ready(document)) => Some(document),
            _ => unreachable!("the document was ready above"),
        }
    }

    /// A document comes back from [`Effect::Work`]: it carries on where
    /// `on_sync` left it, then what waited for it runs.
    fn on_worked(&mut self, worked: Worked) {
        let WorkedItem { document_id, done } = *worked.0;
        let (document, returned) = match done {
            Done::Loaded {
                doc,
                unreadable,
                sync_states,
                sizes,
            } => {
                if let Some(reason) = &unreadable {
                    self.effects.push(Effect::StorageUnreadable {
                        document_id,
                        reason: reason.clone(),
                    });
                }
                return self.on_loaded_document(
                    document_id,
                    doc,
                    sync_states,
                    unreadable.is_some(),
                    sizes,
                );
            }
            Done::Received {
                document,
                result,
                applying,
            } => (document, Returned::Applied(result, applying)),
            Done::Authored { document, incoming } => (Some(document), Returned::Authored(incoming)),
        };
        let Some(Slot::Busy { queue, departed }) = self.documents.remove(&document_id) else {
            // Forgotten meanwhile (its writes failed): it loads again, and
            // what the policy bound for these changes, never kept, goes.
            if let Returned::Applied(_, applying) = &returned {
                self.policy.forget(&applying.records);
            }
            return;
        };
        match (document, returned) {
            (None, returned) => {
                // Only applying panics away the document.
                let reason = format!(
                    "the changes sent for document {document_id} could not be applied, so the relay closed this connection; the relay's operator has been told"
                );
                self.effects.push(Effect::StorageUnreadable {
                    document_id,
                    reason: "applying a message to it failed; it is read again from storage".into(),
                });
                let conn = match returned {
                    Returned::Applied(_, applying) => {
                        self.policy.forget(&applying.records);
                        applying.conn
                    }
                    Returned::Authored(incoming) => incoming.conn,
                };
                if self.connections.contains_key(&conn) {
                    self.refuse(conn, &reason);
                }
            }
            (Some(mut document), returned) => {
                for (conn, storage_id) in departed {
                    if let Some(peer) = document.peers.remove(&conn)
                        && let Some(storage_id) = storage_id
                    {
                        let state = peer.sync.encode();
                        document
                            .stored_sync_states
                            .insert(storage_id.clone(), state.clone());
                        self.effects.push(Effect::PersistSyncState {
                            document_id,
                            storage_id,
                            state,
                        });
                    }
                }
                self.documents.insert(document_id, Slot::Ready(document));
                match returned {
                    // Its authors are read: `on_sync` goes on from there,
                    // and may set it aside again to apply the message.
                    Returned::Authored(incoming) => self.on_sync(document_id, incoming),
                    Returned::Applied(result, applying) => {
                        if self.connections.contains_key(&applying.conn) {
                            self.after_receive(document_id, applying, result);
                        } else if applying.permission == Permission::Create {
                            // A new document: it is claimed with its
                            // sender's grant, gone with the connection.
                            // Kept without an owner it could never be
                            // claimed, so, as when a claim is refused,
                            // nothing of it stays; the school sends it
                            // again when it reconnects.
                            self.documents.remove(&document_id);
                            self.policy.forget(&applying.records);
                        } else {
                            // Its sender left meanwhile: what was applied
                            // is kept all the same, with what the policy
                            // decided about it.
                            if result.is_ok() {
                                self.keep_applied(applying.records);
                            } else {
                                self.policy.forget(&applying.records);
                            }
                            self.persist_changes(document_id);
                            self.sync_peers(document_id);
                        }
                    }
                }
            }
        }
        for work in queue {
            self.run(document_id, work);
        }
    }

    /// The part of `on_sync` after the message was applied.
    fn after_receive(
        &mut self,
        document_id: DocumentId,
        applying: Applying,
        result: Result<(), String>,
    ) {
        let Applying {
            conn,
            request,
            permission,
            empty,
            heads_before,
            absent_answer,
            refused_changes,
            carried,
            records,
            their_heads,
        } = applying;
        if let Err(error) = result {
            self.policy.forget(&records);
            // One document's trouble (a change that clashes with one already
            // here, say after a data directory was restored from a backup)
            // stops that document on this connection, not the connection.
            self.persist_changes(document_id);
            return self.stop_document(
                conn,
                document_id,
                &format!(
                    "the changes sent for document {document_id} were refused ({}), so it stops syncing on this connection; nothing else is affected. If this school's data was restored from a backup or copied to another computer, ask for help before editing it further",
                    shorten(&error)
                ),
                None,
            );
        }
        let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
            return;
        };
        let changed = document.doc.get_heads() != heads_before;
        if changed {
            document.size.ops = carried.after(document.size.ops, 0).0;
        }
        if let Some(peer) = document.peers.get_mut(&conn) {
            peer.pace.heard(&peer.sync);
        }
        if matches!(permission, Permission::ReadWrite | Permission::Create)
            && their_heads
                .iter()
                .all(|h| document.doc.get_change_by_hash(h).is_some())
        {
            self.policy.caught_up(conn, &document_id);
        }
        if let Some((message, offered)) = absent_answer
            && document.doc.get_heads().is_empty()
        {
            // What arrived made nothing (an empty document's snapshot).
            self.policy.forget(&records);
            document.peers.remove(&conn);
            self.answer_absent(conn, document_id, message, request || offered);
            return self.forget_if_absent(document_id);
        }
        let mut claimed = None;
        if permission == Permission::Create && !document.doc.get_heads().is_empty() {
            match self.policy.claim(conn, &document_id) {
                Ok(Some(owner)) => {
                    claimed = Some(owner.partnership.clone());
                    self.effects
                        .push(Effect::PersistOwner { document_id, owner })
                }
                Ok(None) => {}
                Err(reason) => {
                    // Forget what arrived: it may not be kept, nor passed
                    // on. The peer keeps its changes and sends them again
                    // when it reconnects.
                    self.documents.remove(&document_id);
                    self.policy.forget(&records);
                    return self.refuse(conn, &reason);
                }
            }
        }
        self.keep_applied(records);
        if refused_changes {
            self.warn(
                conn,
                &format!(
                    "your school may read document {document_id} but not change it, so your changes to it were not saved or passed on; they stay on your computer"
                ),
            );
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.documents.insert(document_id);
            connection.absent.remove(&document_id);
        }
        self.persist_changes(document_id);
        // Announced after the document's first chunk, so its frames go
        // out only once it and its owner are kept.
        if let Some(partnership) = claimed {
            self.announce_claim(conn, document_id, &partnership);
        }
        if empty && !self.is_empty(&document_id) {
            self.subscribe_awaiting(document_id);
        }
        // The sender is answered; the others hear only of what changed.
        self.sync_peers_of(document_id, (!changed).then_some(conn));
        if request && self.is_empty(&document_id) {
            // We have nothing, and the requester has nothing: say so (after
            // our sync reply, as the reference server does), and keep it
            // subscribed so it gets the document if it appears.
            self.send_unavailable(conn, document_id);
        }
    }

    fn on_local_changes(&mut self, document_id: DocumentId, chunk: &[u8]) {
        let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
            return;
        };
        if let Err(error) = document.doc.load_incremental(chunk) {
            self.effects.push(Effect::StorageUnreadable {
                document_id,
                reason: error.to_string(),
            });
            return;
        }
        // These changes came from storage: nothing to write back.
        document.persisted_heads = document.doc.get_heads();
        document.last_active_ms = self.now_ms;
        self.sync_peers(document_id);
    }

    /// Starts syncing a tracked document with every peer we announce to.
    fn announce(&mut self, document_id: DocumentId) {
        let targets: Vec<(ConnId, Option<String>)> = self
            .connections
            .iter()
            .filter(|(_, c)| c.initiate && matches!(c.state, ConnState::Open { .. }))
            .map(|(&conn, c)| (conn, storage_id_of(&c.state)))
            .collect();
        let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
            return;
        };
        let mut first = Vec::new();
        for (conn, storage_id) in targets {
            document.peers.entry(conn).or_insert_with(|| {
                first.push(conn);
                new_peer_doc(&document.stored_sync_states, storage_id.as_deref())
            });
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.documents.insert(document_id);
            }
        }
        // A document made for another partnership says so before its
        // first sync on each connection, so the relay knows whose it is
        // when its first changes arrive (frames keep their order).
        if let Some(partnership) = self.claims.get(&document_id).cloned() {
            for conn in first {
                let Some(target_id) = self.peer_id(conn) else {
                    continue;
                };
                self.send(
                    conn,
                    &Message::Claim {
                        sender_id: self.config.peer_id.clone(),
                        target_id,
                        document_id,
                        partnership: partnership.clone(),
                    },
                );
            }
        }
        self.sync_peers(document_id);
    }

    /// Hands storage whatever changes arrived since the last write.
    fn persist_changes(&mut self, document_id: DocumentId) {
        let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
            return;
        };
        let heads = document.doc.get_heads();
        if heads == document.persisted_heads {
            return;
        }
        // A document's first write is a compressed snapshot, not a run of
        // changes: about a third of the size, and much faster to load.
        let first = document.persisted_heads.is_empty();
        let chunk = if first {
            document.doc.save()
        } else {
            document.doc.save_after(&document.persisted_heads)
        };
        document.persisted_heads = heads;
        let size = self.stored_sizes.entry(document_id).or_default();
        *size = if first { 0 } else { *size } + chunk.len() as u64;
        document.stored_bytes = document.stored_bytes.saturating_add(chunk.len() as u64);
        self.effects.push(Effect::Persist { document_id, chunk });
    }

    /// Sends each peer of the document whatever it is missing, and keeps
    /// the sync states of peers with storage.
    fn sync_peers(&mut self, document_id: DocumentId) {
        self.sync_peers_of(document_id, None);
    }

    /// A connection's writer caught up: sync messages held back for it
    /// are made now, while it keeps up.
    fn on_written(&mut self, conn: ConnId, bytes: usize) {
        let limit = self.config.outbox_bytes;
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.unsent = connection.unsent.saturating_sub(bytes);
        let mut waiting: Vec<DocumentId> = connection.deferred.drain().collect();
        waiting.sort();
        for document_id in waiting {
            if self
                .connections
                .get(&conn)
                .is_some_and(|c| backed_up(c, limit))
            {
                if let Some(connection) = self.connections.get_mut(&conn) {
                    connection.deferred.insert(document_id);
                }
                continue;
            }
            self.sync_peers_of(document_id, Some(conn));
        }
    }

    /// [`Self::sync_peers`], for one peer only if `only` says so, as
    /// `pacing.rs` allows: a peer still to acknowledge changes we sent
    /// waits, and is woken by its answer or at its wake-up time.
    fn sync_peers_of(&mut self, document_id: DocumentId, only: Option<ConnId>) {
        let eager = self.config.eager_sync_states;
        let now_ms = self.now_ms;
        let limit = self.config.outbox_bytes;
        let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
            return;
        };
        let empty = document.doc.get_heads().is_empty();
        let mut outgoing = Vec::new();
        let mut states = Vec::new();
        let mut held_back = Vec::new();
        // Rights can change while a peer is subscribed (a school removed
        // from a partnership): it then receives nothing more.
        let policy = &self.policy;
        document
            .peers
            .retain(|&conn, _| policy.permission(conn, &document_id) != Permission::None);
        for (&conn, peer) in document.peers.iter_mut() {
            if only.is_some_and(|only| only != conn) {
                continue;
            }
            let Some(connection) = self.connections.get(&conn) else {
                continue;
            };
            let ConnState::Open { peer_id, metadata } = &connection.state else {
                continue;
            };
            if peer.refused.is_some() {
                continue; // the peer stopped this document with us
            }
            if backed_up(connection, limit) {
                held_back.push(conn);
                continue;
            }
            // The side that accepted the connection (the relay) paces.
            let paced = !connection.initiate;
            let compact = connection.compact;
            match peer
                .pace
                .next(&document.doc, &mut peer.sync, paced, compact, now_ms)
            {
                Next::Send(message) => {
                    // We ask with `request` while we have nothing ourselves.
                    let request = empty && connection.initiate;
                    let message = if compact {
                        Message::Compact(CompactFrame {
                            document_id,
                            request,
                            data: compact::encode(&document.doc, message),
                        })
                    } else {
                        let frame = SyncFrame {
                            sender_id: self.config.peer_id.clone(),
                            target_id: peer_id.clone(),
                            document_id,
                            data: message.encode(),
                        };
                        if request {
                            Message::Request(frame)
                        } else {
                            Message::Sync(frame)
                        }
                    };
                    outgoing.push((conn, message));
                }
                Next::Hold { wake_at } => {
                    if let Some(at) = wake_at {
                        self.wakeups.push(Reverse((at, document_id, conn)));
                    }
                }
                Next::Nothing => {}
            }
            if eager
                && let Some(storage_id) = &metadata.storage_id
                && !metadata.is_ephemeral
                && peer.sync.shared_heads != peer.persisted_shared_heads
            {
                peer.persisted_shared_heads = peer.sync.shared_heads.clone();
                states.push((storage_id.clone(), peer.sync.encode()));
            }
        }
        for (storage_id, state) in states {
            self.effects.push(Effect::PersistSyncState {
                document_id,
                storage_id,
                state,
            });
        }
        for conn in held_back {
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.deferred.insert(document_id);
            }
        }
        for (conn, message) in outgoing {
            self.send(conn, &message);
        }
    }

    /// The time passed: peers whose wait for an acknowledgement is over
    /// are sent what they were owed.
    fn on_time(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let mut retry = Vec::new();
        while let Some(&Reverse((at, document_id, conn))) = self.wakeups.peek() {
            if at > self.now_ms {
                break;
            }
            self.wakeups.pop();
            let owed = match self.documents.get_mut(&document_id) {
                Some(Slot::Ready(document)) => document
                    .peers
                    .get_mut(&conn)
                    .is_some_and(|peer| peer.pace.woken(at)),
                Some(Slot::Busy { .. }) => {
                    // Away on the worker: its peers' pace comes back with
                    // it, and this wake-up tries again a gap later.
                    retry.push((document_id, conn));
                    false
                }
                _ => false,
            };
            if owed {
                self.sync_peers_of(document_id, Some(conn));
            }
        }
        for (document_id, conn) in retry {
            let at = self.now_ms + crate::pacing::GAP_MS;
            self.wakeups.push(Reverse((at, document_id, conn)));
        }
    }

    fn on_tick(&mut self, now_ms: u64) {
        // A tick is a time too: what waits on it goes out.
        self.on_time(now_ms);
        self.retry_refused();
        self.announce_budget = ANNOUNCE_PER_TICK;
        self.start_announcements();
        let idle = self.config.idle_unload_ms;
        let mut drop = Vec::new();
        let mut rest = Vec::new();
        // In memory, and what may leave early if that is over the bound:
        // (last active, estimate, id, whether it rests rather than goes).
        let mut in_memory = 0u64;
        let mut may_leave = Vec::new();
        let early = self.config.document_memory.is_some();
        for (document_id, slot) in &self.documents {
            // Loading, away being worked on, or resting already.
            let Slot::Ready(document) = slot else {
                continue;
            };
            if self.tracked.contains(document_id) {
                continue;
            }
            let untouched = now_ms.saturating_sub(document.last_active_ms);
            let estimate = memory_estimate(document.stored_bytes);
            // A document nobody has (requests for unknown ids) is kept
            // only a while for its requesters, so made-up ids cannot fill
            // memory.
            let nobody_has_it = document.doc.get_heads().is_empty();
            if document.peers.is_empty() || nobody_has_it {
                if untouched >= idle {
                    drop.push(*document_id);
                } else {
                    in_memory += estimate;
                    // One nobody syncs goes first, as it would at the idle
                    // time (its peers' sync states were kept as they left);
                    // one nobody has stays its while for its requesters.
                    if early && untouched >= MIN_IDLE_TO_REST_MS && !nobody_has_it {
                        may_leave.push((document.last_active_ms, estimate, *document_id, false));
                    }
                }
            } else {
                let due = untouched >= idle;
                let early_due = early && untouched >= MIN_IDLE_TO_REST_MS;
                let may_rest = (due || early_due) && self.may_rest(document_id, document);
                if due && may_rest {
                    rest.push(*document_id);
                } else {
                    in_memory += estimate;
                    if early_due && may_rest {
                        may_leave.push((document.last_active_ms, estimate, *document_id, true));
                    }
                }
            }
        }
        if let Some(bound) = self.config.document_memory
            && in_memory > bound
        {
            // Those nobody syncs first, then the longest untouched.
            may_leave.sort_unstable_by_key(|&(last_active, _, _, rests)| (rests, last_active));
            for (_, estimate, document_id, rests) in may_leave {
                if in_memory <= bound {
                    break;
                }
                in_memory -= estimate;
                if rests {
                    rest.push(document_id);
                } else {
                    drop.push(document_id);
                }
            }
        }
        for document_id in drop {
            self.documents.remove(&document_id);
        }
        for document_id in rest {
            self.rest(document_id);
        }
    }

    /// Whether a document with subscribers may go to rest now: not while
    /// changes in it wait for a parent (held only in memory), a peer is
    /// owed changes or held back while its outbox drains (it gets them
    /// first), or a refusal's words stay where `Repo::refusal` reads them.
    fn may_rest(&self, document_id: &DocumentId, document: &Document) -> bool {
        !waits_for_dependencies(&document.doc)
            && !document.peers.iter().any(|(conn, peer)| {
                peer.pace.owed()
                    || peer.refused.is_some()
                    || self
                        .connections
                        .get(conn)
                        .is_some_and(|c| c.deferred.contains(document_id))
            })
    }

    /// Takes an idle document out of memory, keeping where each of its
    /// subscribers stood (see `resting.rs`).
    fn rest(&mut self, document_id: DocumentId) {
        let Some(Slot::Ready(document)) = self.documents.remove(&document_id) else {
            return;
        };
        let mut resting = Resting::new(document.doc.get_heads());
        for (conn, peer) in document.peers {
            // What a disconnect would keep, kept now: the peer may never
            // disconnect while the document rests.
            if let Some(storage_id) = self.peer_storage_id(conn)
                && peer.sync.shared_heads != peer.persisted_shared_heads
            {
                self.effects.push(Effect::PersistSyncState {
                    document_id,
                    storage_id,
                    state: peer.sync.encode(),
                });
            }
            let mut core = 0;
            if peer.remote_unavailable {
                core |= Bits::REMOTE_UNAVAILABLE;
            }
            if peer.told_read_only {
                core |= Bits::TOLD_READ_ONLY;
            }
            resting.keep(conn, &peer.sync, core);
        }
        self.documents.insert(document_id, Slot::Resting(resting));
    }

    fn is_empty(&self, document_id: &DocumentId) -> bool {
        match self.documents.get(document_id) {
            Some(Slot::Ready(document)) => document.doc.get_heads().is_empty(),
            _ => true,
        }
    }

    fn peer_id(&self, conn: ConnId) -> Option<PeerId> {
        match &self.connections.get(&conn)?.state {
            ConnState::Open { peer_id, .. } => Some(peer_id.clone()),
            _ => None,
        }
    }

    fn peer_storage_id(&self, conn: ConnId) -> Option<String> {
        storage_id_of(&self.connections.get(&conn)?.state)
    }

    /// What a message's changes hold, refused past the message quota.
    fn measure_message(&self, message: &sync::Message) -> Result<Carried, String> {
        if self.config.quotas.is_none() && self.config.heavy_ops.is_none() {
            return Ok(Carried::default());
        }
        // Without quotas (a client trusting its relay), measured only to
        // tell heavy messages apart.
        let quotas = self.config.quotas.unwrap_or(Quotas {
            message_ops: u64::MAX,
            document_ops: u64::MAX,
            document_bytes: u64::MAX,
        });
        let limits = chunk_size::Limits {
            entries: quotas.message_ops,
            inflated_bytes: quotas.inflate_limit(),
        };
        let over = || {
            format!(
                "they hold more than {} operations, this relay's limit for one message (make smaller edits, or ask the relay's operator)",
                quotas.message_ops
            )
        };
        let mut carried = Carried::default();
        for chunk in message.changes.iter() {
            let size = chunk_size::measure(chunk, limits).map_err(|error| match error {
                chunk_size::SizeError::TooManyOps { .. } => over(),
                other => other.to_string(),
            })?;
            let bytes = chunk.len() as u64;
            if chunk_size::is_snapshot(chunk) {
                carried.snapshot_ops = carried.snapshot_ops.max(size.ops);
                carried.snapshot_bytes = carried.snapshot_bytes.max(bytes);
            } else {
                carried.added_ops = carried.added_ops.saturating_add(size.ops);
                carried.added_bytes = carried.added_bytes.saturating_add(bytes);
            }
        }
        if carried.after(0, 0).0 > quotas.message_ops {
            return Err(over());
        }
        Ok(carried)
    }

    /// Whether these changes may be added to the document: within its
    /// quotas, and within its school's allowance, which is charged what
    /// they add.
    fn admit_changes(
        &mut self,
        conn: ConnId,
        document_id: DocumentId,
        carried: Carried,
    ) -> Result<(), Refusal> {
        let (ops, bytes) = match self.documents.get(&document_id) {
            Some(Slot::Ready(document)) => (document.size.ops, document.stored_bytes),
            _ => (0, 0),
        };
        let (ops_after, bytes_after) = carried.after(ops, bytes);
        if let Some(quotas) = self.config.quotas {
            let kept = "so the changes sent were not saved; they stay on your computer. Start a new document for further work, or ask the relay's operator";
            if ops_after > quotas.document_ops {
                return Err(format!(
                    "document {document_id} would hold more than {} operations, this relay's limit for one document, {kept}",
                    quotas.document_ops
                )
                .into());
            }
            if bytes_after > quotas.document_bytes {
                return Err(format!(
                    "document {document_id} would take more than {} MB, this relay's limit for one document, {kept}",
                    quotas.document_bytes / (1024 * 1024)
                )
                .into());
            }
        }
        self.policy
            .charge(conn, ops_after - ops, bytes_after - bytes, self.now_ms)
    }

    /// Answers a sync message for a document this connection cannot have
    /// (nobody has it, or it is not its partnerships') exactly as an empty
    /// document would the first time, applying nothing and keeping
    /// nothing but the id in the connection's `absent` set; then, if
    /// `unavailable` (a `request`, or a message offering changes, which
    /// are not taken), `doc-unavailable`. Whether the document exists for
    /// someone else cannot be told from the answer. (Only offering changes
    /// for a document nobody has, with the right to create it, makes a
    /// difference: the document is then created.)
    fn answer_absent(
        &mut self,
        conn: ConnId,
        document_id: DocumentId,
        message: sync::Message,
        unavailable: bool,
    ) {
        let Some(target_id) = self.peer_id(conn) else {
            return;
        };
        let first_time = self.connections.get_mut(&conn).is_some_and(|c| {
            if c.absent.len() >= MAX_ABSENT {
                c.absent.clear();
            }
            c.absent.insert(document_id)
        });
        if first_time {
            let mut empty = Automerge::new();
            let mut state = sync::State::new();
            if empty
                .receive_sync_message(&mut state, without_changes(&message))
                .is_ok()
                && let Some(reply) = empty.generate_sync_message(&mut state)
            {
                let compact = self.connections.get(&conn).is_some_and(|c| c.compact);
                let reply = if compact {
                    Message::Compact(CompactFrame {
                        document_id,
                        request: false,
                        data: compact::encode(&empty, reply),
                    })
                } else {
                    Message::Sync(SyncFrame {
                        sender_id: self.config.peer_id.clone(),
                        target_id,
                        document_id,
                        data: reply.encode(),
                    })
                };
                self.send(conn, &reply);
            }
        }
        if unavailable {
            self.send_unavailable(conn, document_id);
        }
    }

    /// Drops a document that turned out to exist nowhere, once nothing
    /// waits on it: a made-up id costs nothing past its answer.
    fn forget_if_absent(&mut self, document_id: DocumentId) {
        if let Some(Slot::Ready(document)) = self.documents.get(&document_id)
            && document.peers.is_empty()
            && document.doc.get_heads().is_empty()
            && !document.unreadable
            && !self.tracked.contains(&document_id)
        {
            self.documents.remove(&document_id);
        }
    }

    /// A document just appeared: connections that asked for it while
    /// nobody had it, and may see it now, are synced it.
    fn subscribe_awaiting(&mut self, document_id: DocumentId) {
        let waiting: Vec<(ConnId, Option<String>)> = self
            .connections
            .iter()
            .filter(|(_, c)| c.absent.contains(&document_id))
            .map(|(&conn, c)| (conn, storage_id_of(&c.state)))
            .collect();
        for (conn, storage_id) in waiting {
            if !matches!(
                self.policy.permission(conn, &document_id),
                Permission::Read | Permission::ReadWrite
            ) {
                continue;
            }
            let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) else {
                return;
            };
            document.peers.entry(conn).or_insert_with(|| {
                new_peer_doc(&document.stored_sync_states, storage_id.as_deref())
            });
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.absent.remove(&document_id);
                connection.documents.insert(document_id);
            }
        }
    }

    fn send_unavailable(&mut self, conn: ConnId, document_id: DocumentId) {
        if let Some(target_id) = self.peer_id(conn) {
            self.send(
                conn,
                &Message::DocUnavailable {
                    sender_id: self.config.peer_id.clone(),
                    target_id,
                    document_id,
                },
            );
        }
    }

    fn send(&mut self, conn: ConnId, message: &Message) {
        let bytes = message.encode();
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.unsent += bytes.len();
        }
        self.effects.push(Effect::Send { conn, bytes });
    }

    /// Tells the peer something it should know, keeping the connection.
    fn warn(&mut self, conn: ConnId, reason: &str) {
        self.send_error(conn, reason, None, None);
    }

    /// An `error` to the peer; naming a document says which one stopped,
    /// and a wait says when it may be sent again.
    fn send_error(
        &mut self,
        conn: ConnId,
        reason: &str,
        document_id: Option<DocumentId>,
        retry_after_ms: Option<u64>,
    ) {
        let target_id = self.peer_id(conn);
        self.send(
            conn,
            &Message::Error {
                sender_id: Some(self.config.peer_id.clone()),
                target_id,
                message: reason.to_string(),
                document_id,
                retry_after_ms,
            },
        );
    }

    /// Stops syncing `document_id` with `conn`, whose changes to it were
    /// refused, and tells the peer why, naming the document (so a client
    /// of ours knows which one stopped; others read the sentence). What
    /// it sends for that document is ignored until it reconnects, or
    /// until `retry_after_ms` have passed for a refusal that passes.
    fn stop_document(
        &mut self,
        conn: ConnId,
        document_id: DocumentId,
        reason: &str,
        retry_after_ms: Option<u64>,
    ) {
        let initiated = self.connections.get(&conn).is_some_and(|c| c.initiate);
        if let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id) {
            if initiated {
                // Our side of the connection keeps saying why it stopped,
                // for good: an earlier refusal's wait no longer counts.
                if let Some(peer) = document.peers.get_mut(&conn) {
                    peer.refused = Some(reason.to_string());
                    peer.retry_at_ms = None;
                }
            } else {
                document.peers.remove(&conn);
            }
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.documents.remove(&document_id);
            connection.deferred.remove(&document_id);
            if connection.stopped.len() >= MAX_EPHEMERAL_SESSIONS {
                connection.stopped.clear();
            }
            let until = retry_after_ms.map(|ms| self.now_ms.saturating_add(ms));
            connection.stopped.insert(document_id, until);
        }
        self.send_error(conn, reason, Some(document_id), retry_after_ms);
    }

    /// The peer refused our changes to a document and stopped syncing it
    /// with us: keep its words, and send it nothing more of it, or
    /// nothing until `retry_after_ms` have passed if the refusal passes.
    fn on_refused(
        &mut self,
        conn: ConnId,
        document_id: DocumentId,
        reason: &str,
        retry_after_ms: Option<u64>,
    ) {
        let initiated = self.connections.get(&conn).is_some_and(|c| c.initiate);
        if !initiated {
            return; // only a relay stops documents
        }
        if let Some(Slot::Ready(document)) = self.documents.get_mut(&document_id)
            && let Some(peer) = document.peers.get_mut(&conn)
        {
            peer.refused = Some(reason.to_string());
            // Bounded, whatever the peer says: from ten seconds (a relay
            // cannot make us start over every second) to a day.
            peer.retry_at_ms = retry_after_ms.map(|ms| {
                self.now_ms
                    .saturating_add(ms.clamp(MIN_RETRY_AFTER_MS, MAX_RETRY_AFTER_MS))
            });
            if let Some(at) = peer.retry_at_ms {
                self.next_retry_ms = Some(self.next_retry_ms.map_or(at, |next| next.min(at)));
            }
        }
    }

    /// Documents whose refusal has passed sync again with that peer from
    /// the beginning: the refused changes were counted as sent, and the
    /// peer forgot where this connection stood.
    fn retry_refused(&mut self) {
        let now_ms = self.now_ms;
        if self.next_retry_ms.is_none_or(|next| now_ms < next) {
            return;
        }
        let mut due = Vec::new();
        let mut next = None;
        for (document_id, slot) in &mut self.documents {
            let Slot::Ready(document) = slot else {
                continue;
            };
            for (conn, peer) in &mut document.peers {
                if let Some(at) = peer.retry_at_ms.filter(|&at| at > now_ms) {
                    next = Some(next.map_or(at, |next: u64| next.min(at)));
                }
                if peer.retry_at_ms.is_some_and(|at| at <= now_ms) {
                    peer.refused = None;
                    peer.retry_at_ms = None;
                    // What both last shared stays (what is kept of a sync
                    // state); what was sent and refused is forgotten, so
                    // it goes again.
                    peer.sync = sync::State::decode(&peer.sync.encode()).unwrap_or_default();
                    peer.pace = Pace::default();
                    due.push((*document_id, *conn));
                }
            }
        }
        self.next_retry_ms = next;
        for (document_id, conn) in due {
            self.sync_peers_of(document_id, Some(conn));
        }
    }

    /// What the policy decided about changes just applied (an actor
    /// bound by them) is kept in the same write, and the school named to
    /// those who will see them.
    fn keep_applied(&mut self, records: Vec<AccessRecord>) {
        self.policy.kept(&records);
        self.announce_bindings(&records);
        self.effects.extend(
            records
                .into_iter()
                .map(|record| Effect::PersistAccess { record }),
        );
    }

    /// Hands the driver what the policy decided to keep.
    fn keep_records(&mut self) {
        let records = self.policy.take_records();
        self.policy.kept(&records);
        for record in records {
            self.effects.push(Effect::PersistAccess { record });
        }
    }

    /// Tells the peer what was wrong, then closes only its connection.
    fn refuse(&mut self, conn: ConnId, reason: &str) {
        self.warn(conn, reason);
        self.on_disconnected(conn);
        self.effects.push(Effect::Close {
            conn,
            reason: reason.to_string(),
        });
    }
}

/// Whether a connection has more waiting to be written than its limit,
/// so its sync messages wait.
fn backed_up(connection: &Connection, limit: Option<usize>) -> bool {
    limit.is_some_and(|limit| connection.unsent >= limit)
}

fn storage_id_of(state: &ConnState) -> Option<String> {
    match state {
        ConnState::Open { metadata, .. } if !metadata.is_ephemeral => metadata.storage_id.clone(),
        _ => None,
    }
}

fn new_peer_doc(stored: &HashMap<String, Vec<u8>>, storage_id: Option<&str>) -> PeerDoc {
    let sync = storage_id
        .and_then(|id| stored.get(id))
        .and_then(|bytes| sync::State::decode(bytes).ok())
        .unwrap_or_default();
    PeerDoc {
        persisted_shared_heads: sync.shared_heads.clone(),
        sync,
        remote_unavailable: false,
        told_read_only: false,
        pace: Pace::default(),
        refused: None,
        retry_at_ms: None,
    }
}

/// Whether a peer that holds the document sends changes of it (an empty
/// document's snapshot, from a peer with nothing, does not count).
fn offers_changes(message: &sync::Message) -> bool {
    !message.heads.is_empty() && !message.changes.is_empty()
}

/// The message with its changes left out: what a document that applies
/// nothing hears.
fn without_changes(message: &sync::Message) -> sync::Message {
    sync::Message {
        heads: message.heads.clone(),
        need: message.need.clone(),
        have: message.have.clone(),
        changes: sync::ChunkList::empty(),
        flags: message.flags,
        version: message.version.clone(),
    }
}

/// Refuses, from its encoding alone, a sync message whose lists are
/// longer than a real peer's (see [`MAX_SYNC_HAVES`]).
fn check_sync_shape(data: &[u8]) -> Result<(), String> {
    let shape = crate::chunk_size::sync_shape(data, MAX_SYNC_HASHES.max(MAX_SYNC_CHUNKS))
        .map_err(|e| e.to_string())?;
    check_shape(shape)
}

/// The same limits on a compact message once read (its reading is
/// bounded by the bytes present and its inflated size).
fn check_decoded_shape(message: &sync::Message) -> Result<(), String> {
    let len = |n: usize| n as u64;
    check_shape(crate::chunk_size::SyncShape {
        heads: len(message.heads.len()),
        need: len(message.need.len()),
        have: len(message.have.len()),
        last_sync: len(message
            .have
            .iter()
            .map(|h| h.last_sync.len())
            .max()
            .unwrap_or(0)),
        changes: len(message.changes.len()),
    })
}

fn check_shape(shape: crate::chunk_size::SyncShape) -> Result<(), String> {
    if shape.have > MAX_SYNC_HAVES {
        return Err(format!(
            "it lists {} summaries (“have”), where a peer sends at most {MAX_SYNC_HAVES}",
            shape.have
        ));
    }
    for (name, len) in [
        ("heads", shape.heads),
        ("need", shape.need),
        ("lastSync", shape.last_sync),
    ] {
        if len > MAX_SYNC_HASHES {
            return Err(format!(
                "it lists {len} hashes in “{name}”, where a peer sends at most {MAX_SYNC_HASHES}"
            ));
        }
    }
    if shape.changes > MAX_SYNC_CHUNKS {
        return Err(format!(
            "it carries {} changes, more than the {MAX_SYNC_CHUNKS} this relay takes in one message",
            shape.changes
        ));
    }
    Ok(())
}

/// Drops repeated needs, each of which would put the same change in our
/// reply again, and refuses unusable bloom filters.
fn check_sync_message(mut message: sync::Message) -> Result<sync::Message, String> {
    let mut seen = HashSet::new();
    message.need.retain(|hash| seen.insert(*hash));
    check_blooms(&message)?;
    Ok(message)
}

/// Refuses bloom filters automerge cannot use safely: one that claims
/// entries with no bits divides by zero, and a huge probe count makes
/// every lookup spin.
fn check_blooms(message: &sync::Message) -> Result<(), String> {
    fn leb128(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    for have in &message.have {
        let bytes = have.bloom.to_bytes();
        if bytes.is_empty() {
            continue;
        }
        let mut at = 0;
        let entries = leb128(&bytes, &mut at);
        let bits = leb128(&bytes, &mut at);
        let probes = leb128(&bytes, &mut at);
        let sound = matches!((entries, bits, probes),
            (Some(e), Some(b), Some(p)) if e == 0 || ((1..=64).contains(&b) && (1..=64).contains(&p)));
        if !sound {
            return Err("its summary of changes (a bloom filter) is malformed".into());
        }
    }
    Ok(())
}

fn describe_decode_error(error: &DecodeError) -> String {
    format!("the message could not be read: {error}")
}

/// Text a peer supplied, cut to a length fit for an error or a log line,
/// on one line.
fn shorten(text: &str) -> String {
    crate::peer_text::peer_text(text, 200)
}

#[cfg(test)]
#[path = "repo_tests.rs"]
mod tests;
