//! Who may see what on a relay, decided from state alone: the register
//! (partnerships, schools, their roles and credentials), document owners,
//! the grant each connection opened with, and which school speaks as which
//! peer id. [`PartnershipPolicy`] is the relay's [`AccessPolicy`]: it does
//! no IO and reads no clock. The engine hands it the register when it
//! changes, the core hands it the time, and what it decides to keep (a new
//! document's owner) leaves as an effect the engine commits with the
//! document's first chunk.
//!
//! - A connection is bound, when it opens, to the school whose token it
//!   presented ([`Register::authenticate`]), and to a *home* partnership
//!   for the documents it creates: the invite's `partnership`, or the
//!   school's only partnership it is a member of. Before a new document's
//!   first changes the client may name another of its partnerships
//!   (`partnerplan-claim`, [`AccessPolicy::intend`]): where the school is
//!   a member the document is that partnership's as usual; where it only
//!   views (a local authority), the document is shared with that
//!   partnership to read and written by this school alone (its
//!   *writer*): the local authority's comments.
//! - A document belongs to the partnership of the school that sent its
//!   first changes, for good. Members read and write it, viewers read it,
//!   anyone else is told it does not exist (the same answer as for a
//!   document that really does not exist, so ids cannot be probed). A
//!   document with a writer is written by that school only (while it is
//!   still in the partnership) and read by the partnership's schools.
//! - A client that asks is listed the documents of its school's
//!   partnerships, from the owners recorded here (never from what
//!   partnership documents say), with each partnership's name and the
//!   school's role; the core tells it of each document claimed later.
//! - When the register changes (a school removed, a token rotated), the
//!   connections that lost rights are cut at once with a sentence saying
//!   why; they reconnect with whatever rights they still have.
//! - Every Automerge actor belongs to one school: the first school that
//!   sends a change made under it. A connection may send only changes
//!   made under its own school's actors, so no school can write in
//!   another's name (see [`PartnershipPolicy`]'s `authors`). After a
//!   restore from a backup, a school's changes to a document are taken
//!   from its partners too until it has sent that document all it holds
//!   itself: the relay lost them, and its partners hold them.
//! - Which school speaks as which peer id, and which actor is whose, are
//!   kept across restarts ([`AccessRecord`], written by the engine with
//!   the changes they go with, read back as [`Kept`]).
//! - A school's public signing keys arrive in its clients' `join`, on a
//!   connection its token authenticated, so no school can register a key
//!   for another; each key belongs to one school, for good. Listings
//!   carry every school of each partnership with its keys, which is how
//!   partners check who signed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use automerge::ActorId;

use crate::document_id::DocumentId;
use crate::message::{ListedPartnership, ListedSchool, NamedActor, PublicKey};
use crate::repo::{AccessPolicy, ConnId, Permission, Refusal};

pub type PartnershipId = String;
pub type SchoolId = String;
/// What the register keeps of a school's token: its SHA-256 hash.
pub type Credential = [u8; 32];

/// What a school may do in a partnership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and writes the partnership's documents.
    Member,
    /// Reads them and never writes: a governor, the local authority.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Role {
        if text == "viewer" {
            Role::Viewer
        } else {
            Role::Member
        }
    }
}

/// The register as the relay holds it in memory: everything needed to
/// answer "may this connection see this document" but document owners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Register {
    /// Bumped by every admin command that changes the register.
    pub version: i64,
    pub partnerships: HashMap<PartnershipId, String>,
    pub schools: HashMap<SchoolId, School>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct School {
    pub name: String,
    pub credential: Credential,
    pub memberships: HashMap<PartnershipId, Role>,
}

/// What a connection was granted when it opened, handed to the core with
/// the connection; the policy checks it is still current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    school_id: SchoolId,
    school_name: String,
    credential: Credential,
    /// Where documents this connection creates belong.
    home: Option<PartnershipId>,
    /// The school's partnerships when the connection opened.
    memberships: HashMap<PartnershipId, Role>,
}

impl Grant {
    pub fn school_id(&self) -> &SchoolId {
        &self.school_id
    }

    pub fn school_name(&self) -> &str {
        &self.school_name
    }
}

/// A new document's owner, for the driver to record with its first chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub partnership: PartnershipId,
    pub claimed_by: SchoolId,
    /// The one school that writes it, when it is a viewer's own shared
    /// with the partnership (a local authority's comments); `None`: the
    /// partnership's members write it.
    pub writer: Option<SchoolId>,
}

/// The most new documents one connection may have named a partnership
/// for ([`AccessPolicy::intend`]) and not yet sent; past it a claim is
/// refused with a sentence (the client sends its claims again next time).
pub const MAX_INTENTS_PER_CONNECTION: usize = 1024;

/// What the policy keeps across restarts, for the engine to write in the
/// same transaction as the changes it goes with
/// ([`Effect::PersistAccess`](crate::repo::Effect::PersistAccess)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRecord {
    /// An Automerge actor belongs to this school from now on: it was the
    /// first to send a change made under it.
    ActorBound { actor: Vec<u8>, school: SchoolId },
    /// A school spoke as this peer id at this time (ms since 1970).
    PeerSeen {
        peer_id: String,
        school: SchoolId,
        at_ms: u64,
    },
}

/// What the policy kept before the relay last stopped, as read from its
/// database at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// Each actor's school.
    pub actors: Vec<(Vec<u8>, SchoolId)>,
    /// Peer ids with their school and when it last used them (ms since 1970).
    pub peers: Vec<(String, SchoolId, u64)>,
    /// Schools whose changes a restore from a backup lost, each with when
    /// the relay stops taking those changes from their partners (ms since
    /// 1970).
    pub restored: Vec<(SchoolId, u64)>,
    /// The restore could not carry over the actor bindings of the database
    /// it replaced: an actor not bound may be a partner's from after the
    /// backup.
    pub bindings_incomplete: bool,
}

/// How long after a restore the relay takes a school's lost changes from
/// its partners (for each document, until the school has sent it all it
/// holds itself): long enough for every school to come back.
pub const RESTORE_WAITS_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// The longest Automerge actor id taken (ours are 16 bytes, as are the
/// JavaScript clients').
pub const MAX_ACTOR_BYTES: usize = 64;
/// How many bytes of actor ids one school may have bound to it: 16,384
/// of the usual 16 bytes. Our client uses one actor per person; the
/// JavaScript client one per document each session.
pub const ACTOR_BYTES_PER_SCHOOL: usize = 256 * 1024;

/// A school's public signing key, new to the register, for the driver to
/// keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolKey {
    pub school: SchoolId,
    pub key: PublicKey,
}

/// The most signing keys one school may have on a relay (one per
/// computer it signs from, and each reinstall); past it a new key is
/// refused with a sentence, and the school's old keys stay.
pub const MAX_SIGNING_KEYS_PER_SCHOOL: usize = 16;

const TOKEN_NOT_VALID: &str = "the access token is not valid: it may have been replaced or revoked. Ask your lead school for a new invite";

impl Register {
    /// Finds a partnership by id or by name.
    pub fn partnership(&self, id_or_name: &str) -> Option<&PartnershipId> {
        self.partnerships
            .iter()
            .find(|(id, name)| *id == id_or_name || name.eq_ignore_ascii_case(id_or_name))
            .map(|(id, _)| id)
    }

    /// The school whose token hashes to `credential`.
    pub fn school_with(&self, credential: &Credential) -> Option<(&SchoolId, &School)> {
        self.schools
            .iter()
            .find(|(_, school)| &school.credential == credential)
    }

    /// Decides whether a connection presenting `credential` may open, and
    /// as whom. `Err` is the sentence the connection is refused with.
    pub fn authenticate(
        &self,
        credential: &Credential,
        partnership: Option<&str>,
    ) -> Result<Grant, String> {
        let Some((school_id, school)) = self.school_with(credential) else {
            return Err(TOKEN_NOT_VALID.into());
        };
        if school.memberships.is_empty() {
            return Err(format!(
                "{} is not in any partnership on this relay any more; ask your lead school",
                school.name
            ));
        }
        let home = match partnership {
            Some(wanted) => {
                let id = self
                    .partnership(wanted)
                    .filter(|id| school.memberships.contains_key(*id))
                    .ok_or_else(|| format!("{} is not in the partnership named in the relay address; ask your lead school for a new invite", school.name))?;
                Some(id.clone())
            }
            None => {
                let mut writable = school
                    .memberships
                    .iter()
                    .filter(|(_, r)| **r == Role::Member);
                match (writable.next(), writable.next()) {
                    (Some((id, _)), None) => Some(id.clone()),
                    _ => None,
                }
            }
        };
        Ok(Grant {
            school_id: school_id.clone(),
            school_name: school.name.clone(),
            credential: *credential,
            home,
            memberships: school.memberships.clone(),
        })
    }
}

/// The relay's policy. See the module documentation.
pub struct PartnershipPolicy {
    register: Arc<Register>,
    owners: HashMap<DocumentId, PartnershipId>,
    /// The same owners by partnership, for listings.
    documents: HashMap<PartnershipId, BTreeSet<DocumentId>>,
    /// Documents one school writes alone: a viewer's own, shared with the
    /// partnership that owns them (loaded at start-up, claims added).
    writers: HashMap<DocumentId, SchoolId>,
    /// The partnership each connection named for documents it has not
    /// sent yet (at most [`MAX_INTENTS_PER_CONNECTION`] a connection).
    intents: HashMap<ConnId, HashMap<DocumentId, PartnershipId>>,
    grants: HashMap<ConnId, Grant>,
    max_connections_per_school: usize,
    /// Which school speaks as which peer id, so one school cannot pass
    /// itself off as another's peer: open connections, and when the last
    /// one closed (the id stays the school's for a while after).
    peers: HashMap<String, PeerClaim>,
    peer_of: HashMap<ConnId, String>,
    /// What each school may send a day, and what it has left.
    allowance: Option<DailyAllowance>,
    left: HashMap<SchoolId, Left>,
    /// Each school's public signing keys, oldest first, and whose each
    /// key is.
    signing_keys: HashMap<SchoolId, Vec<PublicKey>>,
    key_owners: HashMap<PublicKey, SchoolId>,
    /// Each Automerge actor's school, and each school's actors (their
    /// bytes bounded by [`ACTOR_BYTES_PER_SCHOOL`]).
    actors: HashMap<ActorId, SchoolId>,
    by_school: HashMap<SchoolId, SchoolActors>,
    /// Actors bound by changes not yet applied and kept (a heavy message
    /// on the worker thread): they count already, so no other school can
    /// take them meanwhile, but are named to partners only once kept
    /// (`kept`), and never if the changes fail (`forget`).
    unconfirmed: HashSet<ActorId>,
    /// Schools a restore from a backup lost changes of, with when the
    /// relay stops taking them from partners; the documents each has since
    /// sent all it holds (from then on its changes to them come only from
    /// it; kept in memory, so after a restart the relay waits again, which
    /// only takes more); and whether the restore lost actor bindings.
    restored: HashMap<SchoolId, u64>,
    caught_up: HashSet<(SchoolId, DocumentId)>,
    bindings_incomplete: bool,
    /// What to keep, waiting for the core to take it.
    records: Vec<AccessRecord>,
}

#[derive(Default)]
struct SchoolActors {
    bytes: usize,
    actors: HashSet<ActorId>,
}

/// What one school may send the relay in a day, over all its connections:
/// operations (automerge's work) and bytes (the disk). It refills
/// continuously, so a school that used it all may send a little again
/// after an hour. Kept in memory: a restart refills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyAllowance {
    pub ops: u64,
    pub bytes: u64,
}

/// What a school has left of its allowance, as of `at_ms`.
struct Left {
    ops: f64,
    bytes: f64,
    at_ms: u64,
}

const DAY_MS: f64 = 24.0 * 60.0 * 60.0 * 1000.0;
/// A school over its allowance tries again after at least this long.
const MIN_REFILL_WAIT_MS: u64 = 60_000;

struct PeerClaim {
    school: SchoolId,
    open: usize,
    last_seen_ms: u64,
}

/// How long a peer id stays its school's after its last connection
/// closes: long enough for a dropped client to come back under it.
pub const PEER_ID_KEPT_MS: u64 = 24 * 60 * 60 * 1000;
/// Peer ids longer than this are not kept across restarts (ours are 23
/// bytes, the JavaScript client's 36).
const MAX_KEPT_PEER_ID_BYTES: usize = 256;
/// The most peer ids remembered; the oldest unused go first past this.
const MAX_PEER_IDS: usize = 100_000;

impl PartnershipPolicy {
    /// The policy for a relay whose register and document owners are
    /// these (as read from its database at start-up).
    pub fn new(
        register: Arc<Register>,
        owners: HashMap<DocumentId, PartnershipId>,
        max_connections_per_school: usize,
    ) -> PartnershipPolicy {
        let mut documents: HashMap<PartnershipId, BTreeSet<DocumentId>> = HashMap::new();
        for (document_id, partnership) in &owners {
            documents
                .entry(partnership.clone())
                .or_default()
                .insert(*document_id);
        }
        PartnershipPolicy {
            register,
            owners,
            documents,
            writers: HashMap::new(),
            intents: HashMap::new(),
            grants: HashMap::new(),
            max_connections_per_school,
            peers: HashMap::new(),
            peer_of: HashMap::new(),
            allowance: None,
            left: HashMap::new(),
            actors: HashMap::new(),
            by_school: HashMap::new(),
            unconfirmed: HashSet::new(),
            restored: HashMap::new(),
            caught_up: HashSet::new(),
            bindings_incomplete: false,
            records: Vec::new(),
            signing_keys: HashMap::new(),
            key_owners: HashMap::new(),
        }
    }

    /// The policy with what it kept before the relay last stopped: actor
    /// bindings, peer-id claims, and the schools a restore still waits for.
    pub fn with_kept(mut self, kept: Kept) -> PartnershipPolicy {
        for (actor, school) in kept.actors {
            self.add_actor(ActorId::from(actor), school);
        }
        for (peer_id, school, last_seen_ms) in kept.peers.into_iter().take(MAX_PEER_IDS) {
            self.peers.insert(
                peer_id,
                PeerClaim {
                    school,
                    open: 0,
                    last_seen_ms,
                },
            );
        }
        self.restored = kept
            .restored
            .into_iter()
            .filter(|(school, _)| self.register.schools.contains_key(school))
            .collect();
        self.bindings_incomplete = kept.bindings_incomplete;
        self
    }

    /// Whether `school`'s changes to `document_id` that the relay lacks
    /// may come from its partners: a restore lost them, and the school
    /// has not sent that document all it holds since.
    fn lost_by_restore(&self, school: &SchoolId, document_id: &DocumentId, now_ms: u64) -> bool {
        self.restored
            .get(school)
            .is_some_and(|until| *until > now_ms)
            && !self.caught_up.contains(&(school.clone(), *document_id))
    }

    /// The school an Automerge actor belongs to, if it is bound.
    pub fn actor_school(&self, actor: &ActorId) -> Option<&SchoolId> {
        self.actors.get(actor)
    }

    /// The schools that share a partnership with `conn`'s school (itself
    /// included), by id, with their names: whose actors it may know.
    fn partners(&self, conn: ConnId) -> HashMap<&str, &str> {
        let Some(school) = self.grants.get(&conn).and_then(|g| self.current(g)) else {
            return HashMap::new();
        };
        self.register
            .schools
            .iter()
            .filter(|(_, other)| {
                other
                    .memberships
                    .keys()
                    .any(|p| school.memberships.contains_key(p))
            })
            .map(|(id, other)| (id.as_str(), other.name.as_str()))
            .collect()
    }

    fn add_actor(&mut self, actor: ActorId, school: SchoolId) {
        let own = self.by_school.entry(school.clone()).or_default();
        if own.actors.insert(actor.clone()) {
            own.bytes += actor.to_bytes().len();
        }
        self.actors.insert(actor, school);
    }

    fn bind(&mut self, actor: &ActorId, school: &SchoolId) {
        self.add_actor(actor.clone(), school.clone());
        self.unconfirmed.insert(actor.clone());
        self.records.push(AccessRecord::ActorBound {
            actor: actor.to_bytes().to_vec(),
            school: school.clone(),
        });
    }

    /// The schools' signing keys kept in the register (read from the
    /// database at start-up), oldest first.
    pub fn with_signing_keys(
        mut self,
        keys: impl IntoIterator<Item = (PublicKey, SchoolId)>,
    ) -> PartnershipPolicy {
        for (key, school) in keys {
            self.key_owners.insert(key, school.clone());
            self.signing_keys.entry(school).or_default().push(key);
        }
        self
    }

    /// The schools of a partnership as listings name them, with their
    /// signing keys, by name.
    fn schools_of(&self, partnership: &str) -> Vec<ListedSchool> {
        let mut schools: Vec<ListedSchool> = self
            .register
            .schools
            .iter()
            .filter(|(_, school)| school.memberships.contains_key(partnership))
            .map(|(id, school)| ListedSchool {
                name: school.name.clone(),
                keys: self.signing_keys.get(id).cloned().unwrap_or_default(),
            })
            .collect();
        schools.sort_by(|a, b| a.name.cmp(&b.name));
        schools
    }

    /// Limits what each school may send a day.
    pub fn with_daily_allowance(mut self, allowance: DailyAllowance) -> PartnershipPolicy {
        self.allowance = Some(allowance);
        self
    }

    /// The partnership a document belongs to, if anyone's.
    pub fn owner(&self, document_id: &DocumentId) -> Option<&PartnershipId> {
        self.owners.get(document_id)
    }

    /// The documents one school writes alone (read from the database at
    /// start-up): each viewer's own, shared with the partnership that
    /// owns it.
    pub fn with_writers(
        mut self,
        writers: impl IntoIterator<Item = (DocumentId, SchoolId)>,
    ) -> PartnershipPolicy {
        self.writers.extend(writers);
        self
    }

    /// The one school that writes `document_id`, if it is a viewer's own.
    pub fn writer(&self, document_id: &DocumentId) -> Option<&SchoolId> {
        self.writers.get(document_id)
    }

    /// The partnership `conn` named for `document_id`, not yet claimed.
    fn intent(&self, conn: ConnId, document_id: &DocumentId) -> Option<&PartnershipId> {
        self.intents.get(&conn)?.get(document_id)
    }

    fn current(&self, grant: &Grant) -> Option<&School> {
        self.register
            .schools
            .get(&grant.school_id)
            .filter(|school| school.credential == grant.credential)
    }
}

impl AccessPolicy for PartnershipPolicy {
    /// Checked again as the connection registers: between
    /// [`Register::authenticate`] and now the token may have been
    /// replaced, or the school's other connections may have filled its
    /// allowance.
    fn connected(&mut self, conn: ConnId, grant: Option<Grant>) -> Result<(), String> {
        let Some(grant) = grant else {
            return Err("this relay needs an access token: connect with the invite your lead school gave you (its address ends in &token=…)".into());
        };
        if self.current(&grant).is_none() {
            return Err(TOKEN_NOT_VALID.into());
        }
        let already = self
            .grants
            .values()
            .filter(|g| g.school_id == grant.school_id)
            .count();
        if already >= self.max_connections_per_school {
            return Err(format!(
                "{} already has {already} connections open to this relay, the most allowed; close one (another `partnerplan sync --watch`?) and try again",
                grant.school_name
            ));
        }
        self.grants.insert(conn, grant);
        Ok(())
    }

    /// Called for every subscriber on every change: lookups only.
    fn permission(&self, conn: ConnId, document_id: &DocumentId) -> Permission {
        let Some(grant) = self.grants.get(&conn) else {
            return Permission::None;
        };
        let Some(school) = self.current(grant) else {
            return Permission::None;
        };
        match self.owners.get(document_id) {
            Some(partnership) => match (
                self.writers.get(document_id),
                school.memberships.get(partnership),
            ) {
                (_, None) => Permission::None,
                (Some(writer), Some(_)) if *writer == grant.school_id => Permission::ReadWrite,
                (Some(_), Some(_)) => Permission::Read,
                (None, Some(Role::Member)) => Permission::ReadWrite,
                (None, Some(Role::Viewer)) => Permission::Read,
            },
            None => match self.intent(conn, document_id) {
                Some(partnership) if school.memberships.contains_key(partnership) => {
                    Permission::Create
                }
                Some(_) => Permission::None,
                None => match &grant.home {
                    Some(home) if school.memberships.get(home) == Some(&Role::Member) => {
                        Permission::Create
                    }
                    _ => Permission::None,
                },
            },
        }
    }

    fn claim(&mut self, conn: ConnId, document_id: &DocumentId) -> Result<Option<Owner>, String> {
        let grant = self.grants.get(&conn).ok_or("the connection has closed")?;
        if let Some(owner) = self.owners.get(document_id) {
            // Only a document no one owns is claimed; this is a safeguard.
            return if grant.home.as_ref() == Some(owner) {
                Ok(None)
            } else {
                Err(format!(
                    "document {document_id} belongs to another partnership"
                ))
            };
        }
        let (partnership, writer) = match self.intent(conn, document_id) {
            Some(partnership) => {
                let role = self
                    .current(grant)
                    .and_then(|school| school.memberships.get(partnership))
                    .ok_or_else(|| {
                        format!(
                            "document {document_id} is for a partnership {} is no longer in; ask your lead school",
                            grant.school_name
                        )
                    })?;
                // A viewer writes nothing of the partnership's: what it
                // shares stays its own.
                let writer = (*role == Role::Viewer).then(|| grant.school_id.clone());
                (partnership.clone(), writer)
            }
            None => {
                let home = grant.home.clone().ok_or_else(|| {
                    format!(
                        "document {document_id} is new, and {} belongs to several partnerships: connect with the invite address of the partnership it belongs to (it names one), then sync again",
                        grant.school_name
                    )
                })?;
                (home, None)
            }
        };
        let claimed_by = grant.school_id.clone();
        if let Some(intents) = self.intents.get_mut(&conn) {
            intents.remove(document_id);
        }
        self.owners.insert(*document_id, partnership.clone());
        self.documents
            .entry(partnership.clone())
            .or_default()
            .insert(*document_id);
        if let Some(writer) = &writer {
            self.writers.insert(*document_id, writer.clone());
        }
        Ok(Some(Owner {
            partnership,
            claimed_by,
            writer,
        }))
    }

    fn unclaim(&mut self, document_id: &DocumentId) {
        self.writers.remove(document_id);
        if let Some(partnership) = self.owners.remove(document_id)
            && let Some(documents) = self.documents.get_mut(&partnership)
        {
            documents.remove(document_id);
        }
    }

    /// A client named the partnership a document it is about to send for
    /// the first time is for. Kept for this connection until its first
    /// changes claim it; a document someone already owns ignores it (what
    /// the connection may do with it is decided as for any other).
    fn intend(
        &mut self,
        conn: ConnId,
        document_id: &DocumentId,
        partnership: &str,
    ) -> Result<(), String> {
        let grant = self.grants.get(&conn).ok_or("the connection has closed")?;
        if self.owners.contains_key(document_id) {
            return Ok(());
        }
        let Some(school) = self.current(grant) else {
            return Err(TOKEN_NOT_VALID.into());
        };
        if !school.memberships.contains_key(partnership) {
            return Err(format!(
                "document {document_id} was made for a partnership {} is not in on this relay, so it was not shared; ask your lead school",
                grant.school_name
            ));
        }
        let intents = self.intents.entry(conn).or_default();
        if intents.len() >= MAX_INTENTS_PER_CONNECTION && !intents.contains_key(document_id) {
            return Err(format!(
                "document {document_id} was not shared: this connection has named a partnership for {MAX_INTENTS_PER_CONNECTION} new documents it has not sent yet, the most allowed. It is sent after them, next time"
            ));
        }
        intents.insert(*document_id, partnership.to_string());
        Ok(())
    }

    fn shared(&self, document_id: &DocumentId) -> bool {
        self.writers.contains_key(document_id)
    }

    fn admit(&mut self, conn: ConnId, peer_id: &str, now_ms: u64) -> Result<(), String> {
        let school = self
            .grants
            .get(&conn)
            .ok_or("the connection has closed")?
            .school_id
            .clone();
        let kept = |claim: &PeerClaim| {
            claim.open > 0 || now_ms.saturating_sub(claim.last_seen_ms) < PEER_ID_KEPT_MS
        };
        match self.peers.get_mut(peer_id) {
            Some(claim) if claim.school != school && kept(claim) => {
                return Err(format!(
                    "the peer id “{}” belongs to another school; pick a new random peer id",
                    peer_id.chars().take(64).collect::<String>()
                ));
            }
            Some(claim) => {
                claim.school = school.clone();
                claim.open += 1;
                claim.last_seen_ms = now_ms;
            }
            None => {
                if self.peers.len() >= MAX_PEER_IDS {
                    self.peers.retain(|_, claim| kept(claim));
                }
                self.peers.insert(
                    peer_id.to_string(),
                    PeerClaim {
                        school: school.clone(),
                        open: 1,
                        last_seen_ms: now_ms,
                    },
                );
            }
        }
        self.peer_of.insert(conn, peer_id.to_string());
        if peer_id.len() <= MAX_KEPT_PEER_ID_BYTES {
            self.records.push(AccessRecord::PeerSeen {
                peer_id: peer_id.to_string(),
                school,
                at_ms: now_ms,
            });
        }
        Ok(())
    }

    fn charge(&mut self, conn: ConnId, ops: u64, bytes: u64, now_ms: u64) -> Result<(), Refusal> {
        let Some(allowance) = self.allowance else {
            return Ok(());
        };
        let grant = self
            .grants
            .get(&conn)
            .ok_or_else(|| Refusal::from("the connection has closed".to_string()))?;
        let left = self.left.entry(grant.school_id.clone()).or_insert(Left {
            ops: allowance.ops as f64,
            bytes: allowance.bytes as f64,
            at_ms: now_ms,
        });
        let day = now_ms.saturating_sub(left.at_ms) as f64 / DAY_MS;
        left.ops = (left.ops + day * allowance.ops as f64).min(allowance.ops as f64);
        left.bytes = (left.bytes + day * allowance.bytes as f64).min(allowance.bytes as f64);
        left.at_ms = now_ms;
        if ops as f64 > left.ops || bytes as f64 > left.bytes {
            // Changes over a whole day's allowance never fit; others do
            // once enough has refilled.
            let fits = ops <= allowance.ops && bytes <= allowance.bytes;
            let days = ((ops as f64 - left.ops) / allowance.ops.max(1) as f64)
                .max((bytes as f64 - left.bytes) / allowance.bytes.max(1) as f64);
            let retry_after_ms =
                fits.then(|| ((days * DAY_MS).ceil() as u64).max(MIN_REFILL_WAIT_MS));
            let (name, day_ops, day_mb) = (
                &grant.school_name,
                allowance.ops,
                allowance.bytes / (1024 * 1024),
            );
            let reason = if fits {
                format!(
                    "{name} has sent this relay all it takes from one school in a day ({day_ops} operations and {day_mb} MB), so these changes were not saved; they stay on your computer and go once the allowance refills over the next hours. If your school needs more, ask the relay's operator"
                )
            } else {
                format!(
                    "these changes from {name} are more than this relay takes from one school in a whole day ({day_ops} operations and {day_mb} MB), so they were not saved; they stay on your computer. Ask the relay's operator to raise the allowance"
                )
            };
            return Err(Refusal {
                reason,
                retry_after_ms,
            });
        }
        left.ops -= ops as f64;
        left.bytes -= bytes as f64;
        Ok(())
    }

    fn disconnected(&mut self, conn: ConnId, now_ms: u64) {
        self.grants.remove(&conn);
        self.intents.remove(&conn);
        if let Some(peer_id) = self.peer_of.remove(&conn)
            && let Some(claim) = self.peers.get_mut(&peer_id)
        {
            claim.open = claim.open.saturating_sub(1);
            claim.last_seen_ms = now_ms;
            if peer_id.len() > MAX_KEPT_PEER_ID_BYTES {
                return;
            }
            self.records.push(AccessRecord::PeerSeen {
                peer_id,
                school: claim.school.clone(),
                at_ms: now_ms,
            });
        }
    }

    fn checks_authors(&self) -> bool {
        true
    }

    /// A school sends only changes made under its own actors; an actor
    /// no school has used yet becomes the sender's. The exceptions come
    /// from a restore: the relay lost what schools sent after the backup,
    /// and a partner that holds those changes sends them back. So a
    /// school's changes to a document are taken from its partners until
    /// it has sent that document all it holds (then the relay holds every
    /// change of its a partner can have), for at most
    /// [`RESTORE_WAITS_MS`]; and if the restore lost the actor bindings,
    /// a new actor is taken without being bound meanwhile (it may be a
    /// partner's, from after the backup).
    fn authors(
        &mut self,
        conn: ConnId,
        document_id: &DocumentId,
        actors: &[ActorId],
        now_ms: u64,
    ) -> Result<(), String> {
        let grant = self.grants.get(&conn).ok_or("the connection has closed")?;
        let school = grant.school_id.clone();
        let school_name = grant.school_name.clone();
        let refused = |why: String| {
            format!(
                "the changes sent for document {document_id} were not accepted: {why}. Nothing of them was saved or passed on, and the document stops syncing on this connection"
            )
        };
        let mut new: Vec<&ActorId> = Vec::new();
        for actor in actors {
            match self.actors.get(actor) {
                Some(owner)
                    if *owner == school || self.lost_by_restore(owner, document_id, now_ms) => {}
                Some(_) => {
                    return Err(refused(
                        "they are made under an Automerge actor id that belongs to another school, and a school may send only changes it made itself (was this computer's partnerplan folder copied from another school's? Ask your lead school for help)".into(),
                    ));
                }
                None if actor.to_bytes().len() > MAX_ACTOR_BYTES => {
                    return Err(refused(format!(
                        "their Automerge actor id is {} bytes long, and this relay takes at most {MAX_ACTOR_BYTES}",
                        actor.to_bytes().len()
                    )));
                }
                None if self.bindings_incomplete
                    && self.restored.values().any(|until| *until > now_ms) => {}
                None => new.push(actor),
            }
        }
        let (used, count) = self
            .by_school
            .get(&school)
            .map_or((0, 0), |own| (own.bytes, own.actors.len()));
        let adding: usize = new.iter().map(|a| a.to_bytes().len()).sum();
        if used + adding > ACTOR_BYTES_PER_SCHOOL {
            return Err(refused(format!(
                "{school_name} has already sent changes under {count} different Automerge actor ids, the most this relay keeps for one school. The partnerplan app and command line use one per person; set any other program to keep its actor id rather than make a new one each time"
            )));
        }
        for actor in new {
            self.bind(actor, &school);
        }
        Ok(())
    }

    /// Proportional to the partners' actors, not to every actor bound.
    fn named_actors(&self, conn: ConnId) -> Vec<NamedActor> {
        let unconfirmed = &self.unconfirmed;
        let mut named: Vec<NamedActor> = self
            .partners(conn)
            .into_iter()
            .filter_map(|(school, name)| Some((self.by_school.get(school)?, name)))
            .flat_map(|(own, name)| {
                own.actors
                    .iter()
                    .filter(|actor| !unconfirmed.contains(*actor))
                    .map(move |actor| NamedActor {
                        actor: actor.to_bytes().to_vec(),
                        school: name.to_string(),
                    })
            })
            .collect();
        named.sort_by(|a, b| a.actor.cmp(&b.actor));
        named
    }

    fn kept(&mut self, records: &[AccessRecord]) {
        for record in records {
            if let AccessRecord::ActorBound { actor, .. } = record {
                self.unconfirmed.remove(&ActorId::from(actor.as_slice()));
            }
        }
    }

    fn actor_name(&self, conn: ConnId, actor: &[u8]) -> Option<String> {
        let actor = ActorId::from(actor);
        if self.unconfirmed.contains(&actor) {
            return None;
        }
        let school = self.actors.get(&actor)?;
        self.partners(conn)
            .get(school.as_str())
            .map(|name| name.to_string())
    }

    fn caught_up(&mut self, conn: ConnId, document_id: &DocumentId) {
        if let Some(grant) = self.grants.get(&conn)
            && self.restored.contains_key(&grant.school_id)
        {
            self.caught_up
                .insert((grant.school_id.clone(), *document_id));
        }
    }

    fn take_records(&mut self) -> Vec<AccessRecord> {
        std::mem::take(&mut self.records)
    }

    fn forget(&mut self, records: &[AccessRecord]) {
        for record in records {
            if let AccessRecord::ActorBound { actor, school } = record {
                let actor = ActorId::from(actor.as_slice());
                self.unconfirmed.remove(&actor);
                if self.actors.get(&actor) == Some(school) {
                    self.actors.remove(&actor);
                    if let Some(own) = self.by_school.get_mut(school)
                        && own.actors.remove(&actor)
                    {
                        own.bytes = own.bytes.saturating_sub(actor.to_bytes().len());
                    }
                }
            }
        }
    }

    fn register_changed(&mut self, register: Arc<Register>) -> Vec<(ConnId, String)> {
        self.register = register;
        // A school removed from the relay will not send its changes again.
        let schools = &self.register.schools;
        self.restored
            .retain(|school, _| schools.contains_key(school));
        let register = &self.register;
        let mut cut: Vec<(ConnId, String)> = self
            .grants
            .iter()
            .filter_map(|(&conn, grant)| {
                let reason = match register.schools.get(&grant.school_id) {
                    None => format!(
                        "{} was removed from this relay by the lead school",
                        grant.school_name
                    ),
                    Some(school) if school.credential != grant.credential => {
                        "your school's access token was replaced; ask your lead school for the new invite".to_string()
                    }
                    Some(school) => {
                        let (id, _) = grant
                            .memberships
                            .iter()
                            .find(|(id, role)| school.memberships.get(*id) != Some(role))?;
                        let name = register.partnerships.get(id).cloned().unwrap_or_default();
                        format!(
                            "{}'s place in {name} was changed by the lead school; it reconnects with its current rights",
                            grant.school_name
                        )
                    }
                };
                Some((conn, reason))
            })
            .collect();
        cut.sort();
        cut
    }

    /// The school's partnerships as the register says now, by name.
    fn partnerships(&self, conn: ConnId) -> Vec<ListedPartnership> {
        let Some(grant) = self.grants.get(&conn) else {
            return Vec::new();
        };
        let Some(school) = self.current(grant) else {
            return Vec::new();
        };
        let mut listed: Vec<ListedPartnership> = school
            .memberships
            .iter()
            .map(|(id, role)| ListedPartnership {
                id: id.clone(),
                name: self
                    .register
                    .partnerships
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.clone()),
                role: *role,
                home: grant.home.as_ref() == Some(id),
                documents: Vec::new(),
                sizes: Vec::new(),
                shared: Vec::new(),
                schools: self.schools_of(id),
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        listed
    }

    fn signing_key(&mut self, conn: ConnId, key: &PublicKey) -> Result<Option<SchoolKey>, String> {
        let grant = self.grants.get(&conn).ok_or("the connection has closed")?;
        match self.key_owners.get(key) {
            Some(owner) if *owner == grant.school_id => return Ok(None),
            Some(_) => {
                return Err("this computer's signing key is already registered to another school on this relay, so partners cannot check signatures made with it (was this data folder copied from another school's computer?). Set this school up in a new data folder with its own invite".into());
            }
            None => {}
        }
        let keys = self
            .signing_keys
            .entry(grant.school_id.clone())
            .or_default();
        if keys.len() >= MAX_SIGNING_KEYS_PER_SCHOOL {
            return Err(format!(
                "{} already has {MAX_SIGNING_KEYS_PER_SCHOOL} signing keys on this relay, the most allowed, so partners cannot check signatures made on this computer; ask your lead school",
                grant.school_name
            ));
        }
        keys.push(*key);
        self.key_owners.insert(*key, grant.school_id.clone());
        Ok(Some(SchoolKey {
            school: grant.school_id.clone(),
            key: *key,
        }))
    }

    fn documents_of(&self, partnership: &str) -> Vec<DocumentId> {
        self.documents
            .get(partnership)
            .map(|documents| documents.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// School 1 is a member of A, school 2 of B; the local authority (9)
    /// is a member of its own partnership and views A and B.
    fn county() -> Register {
        let mut register = Register::default();
        for (id, name) in [("la", "County"), ("a", "Cluster A"), ("b", "Cluster B")] {
            register.partnerships.insert(id.into(), name.into());
        }
        for (n, memberships) in [
            (1, vec![("a", Role::Member)]),
            (2, vec![("b", Role::Member)]),
            (
                9,
                vec![
                    ("la", Role::Member),
                    ("a", Role::Viewer),
                    ("b", Role::Viewer),
                ],
            ),
        ] {
            register.schools.insert(
                format!("school-{n}"),
                School {
                    name: format!("School {n}"),
                    credential: [n; 32],
                    memberships: memberships
                        .into_iter()
                        .map(|(p, r)| (p.to_string(), r))
                        .collect(),
                },
            );
        }
        register
    }

    /// The policy with schools 1, 2 and 9 connected as connections 1, 2, 9.
    fn connected(register: Register) -> PartnershipPolicy {
        let register = Arc::new(register);
        let mut policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 4);
        for n in [1u8, 2, 9] {
            let grant = register.authenticate(&[n; 32], None).unwrap();
            policy.connected(n as ConnId, Some(grant)).unwrap();
        }
        policy
    }

    const LA: ConnId = 9;

    #[test]
    fn a_school_over_its_daily_allowance_is_told_when_it_refills() {
        let mut policy = connected(county()).with_daily_allowance(DailyAllowance {
            ops: 1_000,
            bytes: 1_000_000,
        });
        let start = 1_000_000;
        policy.charge(1, 900, 1_000, start).unwrap();
        // 200 more need 100 refilled: a tenth of a day.
        let refusal = policy.charge(1, 200, 1_000, start).unwrap_err();
        assert!(
            refusal
                .reason
                .contains("School 1 has sent this relay all it takes")
        );
        let tenth = (DAY_MS / 10.0) as u64;
        let wait = refusal.retry_after_ms.expect("the allowance refills");
        assert!(wait.abs_diff(tenth) <= 1_000, "{wait} ms");
        // Not yet; then, after that wait, they are taken.
        assert!(policy.charge(1, 200, 1_000, start + wait / 2).is_err());
        policy.charge(1, 200, 1_000, start + wait + 1).unwrap();
        // Another school's allowance is its own.
        policy.charge(2, 1_000, 1_000, start).unwrap();
        // More than a whole day's allowance never fits: not worth a retry.
        let too_big = policy
            .charge(2, 1_001, 0, start + 2 * DAY_MS as u64)
            .unwrap_err();
        assert_eq!(too_big.retry_after_ms, None);
        assert!(
            too_big
                .reason
                .contains("more than this relay takes from one school in a whole day"),
            "{}",
            too_big.reason
        );
    }

    #[test]
    fn the_local_authority_writes_its_comment_and_only_that_partnership_reads_it() {
        let mut policy = connected(county());
        let comment = DocumentId::random();
        policy.intend(LA, &comment, "a").unwrap();
        assert_eq!(policy.permission(LA, &comment), Permission::Create);
        let owner = policy.claim(LA, &comment).unwrap().unwrap();
        assert_eq!(
            owner,
            Owner {
                partnership: "a".into(),
                claimed_by: "school-9".into(),
                writer: Some("school-9".into()),
            }
        );
        assert_eq!(policy.permission(LA, &comment), Permission::ReadWrite);
        assert_eq!(
            policy.permission(1, &comment),
            Permission::Read,
            "A's school reads it and may not change it"
        );
        assert_eq!(
            policy.permission(2, &comment),
            Permission::None,
            "B's school is told it does not exist"
        );
        assert_eq!(policy.documents_of("a"), vec![comment]);
        assert!(policy.documents_of("b").is_empty() && policy.documents_of("la").is_empty());
        assert!(policy.shared(&comment));
    }

    #[test]
    fn the_local_authority_still_only_reads_the_partnerships_own_documents() {
        let mut policy = connected(county());
        let plan = DocumentId::random();
        assert_eq!(policy.permission(1, &plan), Permission::Create);
        let owner = policy.claim(1, &plan).unwrap().unwrap();
        assert_eq!(owner.writer, None);
        assert!(!policy.shared(&plan));
        // Naming A for a document A already owns changes nothing.
        policy.intend(LA, &plan, "a").unwrap();
        assert_eq!(policy.permission(LA, &plan), Permission::Read);
        assert_eq!(policy.permission(1, &plan), Permission::ReadWrite);
        assert_eq!(policy.permission(2, &plan), Permission::None);
        // Nor can it claim a new document in A without naming it: its
        // documents otherwise belong to its own partnership.
        let own = DocumentId::random();
        assert_eq!(policy.permission(LA, &own), Permission::Create);
        assert_eq!(policy.claim(LA, &own).unwrap().unwrap().partnership, "la");
        assert_eq!(policy.permission(1, &own), Permission::None);
    }

    #[test]
    fn a_school_cannot_name_a_partnership_it_is_not_in() {
        let mut policy = connected(county());
        let document = DocumentId::random();
        let refused = policy.intend(2, &document, "a").unwrap_err();
        assert!(refused.contains("not in"), "{refused}");
        assert_eq!(policy.intent(2, &document), None);
        assert!(policy.intend(2, &document, "nowhere").is_err());
    }

    #[test]
    fn a_member_of_several_partnerships_names_the_one_a_document_is_for() {
        let mut register = county();
        let school = register.schools.get_mut("school-1").unwrap();
        school.memberships.insert("b".into(), Role::Member);
        let mut policy = connected(register);
        let document = DocumentId::random();
        assert_eq!(
            policy.permission(1, &document),
            Permission::None,
            "two homes: nowhere to create without a claim"
        );
        policy.intend(1, &document, "b").unwrap();
        let owner = policy.claim(1, &document).unwrap().unwrap();
        assert_eq!((owner.partnership.as_str(), owner.writer), ("b", None));
        assert_eq!(policy.permission(2, &document), Permission::ReadWrite);
    }

    #[test]
    fn claims_last_for_their_connection_and_are_bounded() {
        let mut policy = connected(county());
        let document = DocumentId::random();
        policy.intend(LA, &document, "b").unwrap();
        policy.disconnected(LA, 0);
        let grant = county().authenticate(&[9; 32], None).unwrap();
        policy.connected(LA, Some(grant)).unwrap();
        assert_eq!(policy.intent(LA, &document), None);
        for _ in 0..MAX_INTENTS_PER_CONNECTION {
            policy.intend(LA, &DocumentId::random(), "b").unwrap();
        }
        let refused = policy.intend(LA, &document, "b").unwrap_err();
        assert!(refused.contains("the most allowed"), "{refused}");
    }

    #[test]
    fn a_writer_taken_out_of_the_partnership_writes_no_more_and_restarts_keep_writers() {
        let mut policy = connected(county());
        let comment = DocumentId::random();
        policy.intend(LA, &comment, "a").unwrap();
        let owner = policy.claim(LA, &comment).unwrap().unwrap();

        // After a restart, from what the relay's file keeps.
        let register = Arc::new(county());
        let mut restarted = PartnershipPolicy::new(
            register.clone(),
            HashMap::from([(comment, owner.partnership.clone())]),
            4,
        )
        .with_writers([(comment, owner.writer.clone().unwrap())]);
        for n in [1u8, 9] {
            let grant = register.authenticate(&[n; 32], None).unwrap();
            restarted.connected(n as ConnId, Some(grant)).unwrap();
        }
        assert_eq!(restarted.permission(LA, &comment), Permission::ReadWrite);
        assert_eq!(restarted.permission(1, &comment), Permission::Read);

        let mut without = county();
        let la = without.schools.get_mut("school-9").unwrap();
        la.memberships.remove("a");
        let cut = restarted.register_changed(Arc::new(without));
        assert_eq!(
            cut.len(),
            1,
            "the local authority's connection is cut: {cut:?}"
        );
        assert_eq!(restarted.permission(1, &comment), Permission::Read);
    }
}
