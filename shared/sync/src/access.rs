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
//!   school's only partnership it is a member of.
//! - A document belongs to the partnership of the school that sent its
//!   first changes, for good. Members read and write it, viewers read it,
//!   anyone else is told it does not exist (the same answer as for a
//!   document that really does not exist, so ids cannot be probed).
//! - A client that asks is listed the documents of its school's
//!   partnerships, from the owners recorded here (never from what
//!   partnership documents say), with each partnership's name and the
//!   school's role; the core tells it of each document claimed later.
//! - When the register changes (a school removed, a token rotated), the
//!   connections that lost rights are cut at once with a sentence saying
//!   why; they reconnect with whatever rights they still have.
//! - A school's public signing keys arrive in its clients' `join`, on a
//!   connection its token authenticated, so no school can register a key
//!   for another; each key belongs to one school, for good. Listings
//!   carry every school of each partnership with its keys, which is how
//!   partners check who signed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::document_id::DocumentId;
use crate::message::{ListedPartnership, ListedSchool, PublicKey};
use crate::repo::{AccessPolicy, ConnId, Permission};

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
}

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
    grants: HashMap<ConnId, Grant>,
    max_connections_per_school: usize,
    /// Which school speaks as which peer id, so one school cannot pass
    /// itself off as another's peer: open connections, and when the last
    /// one closed (the id stays the school's for a while after).
    peers: HashMap<String, PeerClaim>,
    peer_of: HashMap<ConnId, String>,
    /// Each school's public signing keys, oldest first, and whose each
    /// key is.
    signing_keys: HashMap<SchoolId, Vec<PublicKey>>,
    key_owners: HashMap<PublicKey, SchoolId>,
}

struct PeerClaim {
    school: SchoolId,
    open: usize,
    last_seen_ms: u64,
}

/// How long a peer id stays its school's after its last connection
/// closes: long enough for a dropped client to come back under it.
pub const PEER_ID_KEPT_MS: u64 = 24 * 60 * 60 * 1000;
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
            grants: HashMap::new(),
            max_connections_per_school,
            peers: HashMap::new(),
            peer_of: HashMap::new(),
            signing_keys: HashMap::new(),
            key_owners: HashMap::new(),
        }
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

    /// The partnership a document belongs to, if anyone's.
    pub fn owner(&self, document_id: &DocumentId) -> Option<&PartnershipId> {
        self.owners.get(document_id)
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
            Some(partnership) => match school.memberships.get(partnership) {
                Some(Role::Member) => Permission::ReadWrite,
                Some(Role::Viewer) => Permission::Read,
                None => Permission::None,
            },
            None => match &grant.home {
                Some(home) if school.memberships.get(home) == Some(&Role::Member) => {
                    Permission::Create
                }
                _ => Permission::None,
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
        let home = grant.home.clone().ok_or_else(|| {
            format!(
                "document {document_id} is new, and {} belongs to several partnerships: connect with the invite address of the partnership it belongs to (it names one), then sync again",
                grant.school_name
            )
        })?;
        self.owners.insert(*document_id, home.clone());
        self.documents
            .entry(home.clone())
            .or_default()
            .insert(*document_id);
        Ok(Some(Owner {
            partnership: home,
            claimed_by: grant.school_id.clone(),
        }))
    }

    fn unclaim(&mut self, document_id: &DocumentId) {
        if let Some(partnership) = self.owners.remove(document_id)
            && let Some(documents) = self.documents.get_mut(&partnership)
        {
            documents.remove(document_id);
        }
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
                claim.school = school;
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
                        school,
                        open: 1,
                        last_seen_ms: now_ms,
                    },
                );
            }
        }
        self.peer_of.insert(conn, peer_id.to_string());
        Ok(())
    }

    fn disconnected(&mut self, conn: ConnId, now_ms: u64) {
        self.grants.remove(&conn);
        if let Some(peer_id) = self.peer_of.remove(&conn)
            && let Some(claim) = self.peers.get_mut(&peer_id)
        {
            claim.open = claim.open.saturating_sub(1);
            claim.last_seen_ms = now_ms;
        }
    }

    fn register_changed(&mut self, register: Arc<Register>) -> Vec<(ConnId, String)> {
        self.register = register;
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
