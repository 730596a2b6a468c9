//! Who may see what, at run time. Every `request`, `sync` and `ephemeral`
//! for a document passes through [`RelayPolicy::permission`], the one
//! function that answers "may this connection see this document".
//!
//! - A connection is bound, when it opens, to the school whose token it
//!   presented ([`Access::authenticate`]), and to a *home* partnership for
//!   the documents it creates: the invite's `partnership`, or the school's
//!   only partnership.
//! - A document belongs to the partnership of the school that sent its
//!   first changes, for good. Members read and write it, viewers read it,
//!   anyone else is told it does not exist (the same answer as for a
//!   document that really does not exist, so ids cannot be probed).
//! - When the register changes (a school removed, a token rotated), the
//!   connections that lost rights are cut at once with a sentence saying
//!   why; they reconnect with whatever rights they still have.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use partnerplan_sync::{AccessPolicy, ConnId, DocumentId, Permission};
use tokio::sync::mpsc;

use crate::directory::{Directory, PartnershipId, Role, SchoolId, Snapshot, TokenHash, hash_token};

/// What a connection was granted when it opened.
#[derive(Debug, Clone)]
pub struct Grant {
    pub school_id: SchoolId,
    pub school_name: String,
    token_hash: TokenHash,
    /// Where documents this connection creates belong.
    home: Option<PartnershipId>,
    /// The school's partnerships when the connection opened.
    memberships: HashMap<PartnershipId, Role>,
}

struct Open {
    grant: Grant,
    kick: mpsc::UnboundedSender<String>,
}

/// The relay's view of the register and of who is connected, shared by
/// the HTTP side, the engine's policy and the register watcher.
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

struct Inner {
    /// The register on disk, to notice the admin commands' changes.
    directory: Mutex<Directory>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Document owners, written only by the relay itself.
    owners: RwLock<HashMap<DocumentId, PartnershipId>>,
    open: Mutex<HashMap<ConnId, Open>>,
    max_connections_per_school: usize,
}

impl Access {
    pub fn new(
        directory: Directory,
        max_connections_per_school: usize,
    ) -> Result<Access, crate::directory::DirectoryError> {
        let mut snapshot = directory.snapshot()?;
        let owners = std::mem::take(&mut snapshot.owners);
        Ok(Access {
            inner: Arc::new(Inner {
                directory: Mutex::new(directory),
                snapshot: RwLock::new(Arc::new(snapshot)),
                owners: RwLock::new(owners),
                open: Mutex::new(HashMap::new()),
                max_connections_per_school,
            }),
        })
    }

    /// Reloads the register if an admin command changed it. Returns
    /// whether it did. The register lock is held until the new copy is in
    /// place, so two threads refreshing at once cannot install an older
    /// copy over a newer one.
    pub fn refresh(&self) -> bool {
        let directory = self.inner.directory.lock().expect("register lock");
        let seen = self.snapshot().version;
        match directory.version() {
            Ok(version) if version > seen => match directory.snapshot() {
                Ok(mut snapshot) => {
                    snapshot.owners.clear(); // the relay keeps its own
                    tracing::info!("the register changed; applying it");
                    self.reload(snapshot);
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "could not read the changed register");
                    false
                }
            },
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(%error, "could not read the register's version");
                false
            }
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.read().expect("snapshot lock").clone()
    }

    /// Decides whether a connection presenting `token` may open, and as
    /// whom. `Err` is the sentence the connection is refused with.
    pub fn authenticate(
        &self,
        token: Option<&str>,
        partnership: Option<&str>,
    ) -> Result<Grant, String> {
        let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
            return Err("this relay needs an access token: connect with the invite your lead school gave you (its address ends in &token=…)".into());
        };
        let token_hash = hash_token(token);
        // The register may have changed a moment ago (a school invited, a
        // token rotated): one small query makes sure we judge by the latest.
        self.refresh();
        let snapshot = self.snapshot();
        let Some(school_id) = snapshot.by_token.get(&token_hash) else {
            return Err("the access token is not valid: it may have been replaced or revoked. Ask your lead school for a new invite".into());
        };
        let school = &snapshot.schools[school_id];
        if school.memberships.is_empty() {
            return Err(format!(
                "{} is not in any partnership on this relay any more; ask your lead school",
                school.name
            ));
        }
        let home = match partnership {
            Some(wanted) => {
                let id = snapshot
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
        let open = self.inner.open.lock().expect("connections lock");
        let already = open
            .values()
            .filter(|o| &o.grant.school_id == school_id)
            .count();
        if already >= self.inner.max_connections_per_school {
            return Err(format!(
                "{} already has {already} connections open to this relay, the most allowed; close one (another `partnerplan sync --watch`?) and try again",
                school.name
            ));
        }
        Ok(Grant {
            school_id: school_id.clone(),
            school_name: school.name.clone(),
            token_hash,
            home,
            memberships: school.memberships.clone(),
        })
    }

    /// Records an open connection; `kick` receives the reason if it must be cut.
    ///
    /// Checked again here, under the connections lock: between
    /// [`authenticate`](Self::authenticate) and now the token may have been
    /// replaced, or the school's other connections may have filled its
    /// allowance; then the connection is told why and cut at once.
    pub fn opened(&self, conn: ConnId, grant: Grant, kick: mpsc::UnboundedSender<String>) {
        let mut open = self.inner.open.lock().expect("connections lock");
        let already = open
            .values()
            .filter(|o| o.grant.school_id == grant.school_id)
            .count();
        let snapshot = self.snapshot();
        let current = snapshot
            .schools
            .get(&grant.school_id)
            .is_some_and(|s| s.token_hash == grant.token_hash);
        if !current {
            let _ = kick.send(
                "the access token is not valid: it may have been replaced or revoked. Ask your lead school for a new invite".into(),
            );
        } else if already >= self.inner.max_connections_per_school {
            let _ = kick.send(format!(
                "{} already has {already} connections open to this relay, the most allowed; close one (another `partnerplan sync --watch`?) and try again",
                grant.school_name
            ));
        }
        open.insert(conn, Open { grant, kick });
    }

    pub fn closed(&self, conn: ConnId) {
        self.inner
            .open
            .lock()
            .expect("connections lock")
            .remove(&conn);
    }

    fn grant(&self, conn: ConnId) -> Option<Grant> {
        self.inner
            .open
            .lock()
            .expect("connections lock")
            .get(&conn)
            .map(|o| o.grant.clone())
    }

    /// Called for every subscriber on every change, so it reads the grant
    /// in place rather than copying it.
    fn permission(&self, conn: ConnId, document_id: &DocumentId) -> Permission {
        let open = self.inner.open.lock().expect("connections lock");
        let Some(Open { grant, .. }) = open.get(&conn) else {
            return Permission::None;
        };
        let snapshot = self.snapshot();
        let Some(school) = snapshot.schools.get(&grant.school_id) else {
            return Permission::None;
        };
        if school.token_hash != grant.token_hash {
            return Permission::None;
        }
        let owner = self
            .inner
            .owners
            .read()
            .expect("owners lock")
            .get(document_id)
            .cloned();
        match owner {
            Some(partnership) => match school.memberships.get(&partnership) {
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

    /// Takes in a new register and cuts the connections that lost rights.
    fn reload(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        *self.inner.snapshot.write().expect("snapshot lock") = snapshot.clone();
        let open = self.inner.open.lock().expect("connections lock");
        for (conn, open) in open.iter() {
            let grant = &open.grant;
            let reason = match snapshot.schools.get(&grant.school_id) {
                None => Some(format!("{} was removed from this relay by the lead school", grant.school_name)),
                Some(school) if school.token_hash != grant.token_hash => Some(
                    "your school's access token was replaced; ask your lead school for the new invite".to_string(),
                ),
                Some(school) => grant
                    .memberships
                    .iter()
                    .find(|(id, role)| school.memberships.get(*id) != Some(role))
                    .map(|(id, _)| {
                        let name = snapshot.partnerships.get(id).cloned().unwrap_or_default();
                        format!("{}'s place in {name} was changed by the lead school; it reconnects with its current rights", grant.school_name)
                    }),
            };
            if let Some(reason) = reason {
                tracing::info!(conn, "cutting a connection whose rights changed");
                let _ = open.kick.send(reason);
            }
        }
    }
}

/// The engine's policy: [`Access`] plus the register, to record claims.
pub struct RelayPolicy {
    access: Access,
    directory: Directory,
    /// Which school speaks as which peer id, so one school cannot pass
    /// itself off as another's peer: open connections, and when the last
    /// one closed (the id stays the school's for a while after).
    peers: HashMap<String, PeerClaim>,
    peer_of: HashMap<ConnId, String>,
}

struct PeerClaim {
    school: SchoolId,
    open: usize,
    last_seen: Instant,
}

/// How long a peer id stays its school's after its last connection
/// closes: long enough for a dropped client to come back under it.
const PEER_ID_KEPT: Duration = Duration::from_secs(24 * 60 * 60);
/// The most peer ids remembered; the oldest unused go first past this.
const MAX_PEER_IDS: usize = 100_000;

impl RelayPolicy {
    pub fn new(access: Access, directory: Directory) -> RelayPolicy {
        RelayPolicy {
            access,
            directory,
            peers: HashMap::new(),
            peer_of: HashMap::new(),
        }
    }
}

impl AccessPolicy for RelayPolicy {
    fn permission(&self, conn: ConnId, document_id: &DocumentId) -> Permission {
        self.access.permission(conn, document_id)
    }

    fn claim(&mut self, conn: ConnId, document_id: &DocumentId) -> Result<(), String> {
        let grant = self.access.grant(conn).ok_or("the connection has closed")?;
        let home = grant.home.ok_or_else(|| {
            format!(
                "document {document_id} is new, and {} belongs to several partnerships: connect with the invite address of the partnership it belongs to (it names one), then sync again",
                grant.school_name
            )
        })?;
        let owner = self.directory.claim(document_id, &home, &grant.school_id).map_err(|error| {
            tracing::error!(%error, "could not record a new document's partnership");
            "the relay could not record the new document just now; it is kept on your side and will be sent again".to_string()
        })?;
        self.access
            .inner
            .owners
            .write()
            .expect("owners lock")
            .insert(*document_id, owner.clone());
        if owner == home {
            Ok(())
        } else {
            Err(format!(
                "document {document_id} belongs to another partnership"
            ))
        }
    }

    fn admit(&mut self, conn: ConnId, peer_id: &str) -> Result<(), String> {
        let grant = self.access.grant(conn).ok_or("the connection has closed")?;
        let now = Instant::now();
        match self.peers.get_mut(peer_id) {
            Some(claim)
                if claim.school != grant.school_id
                    && (claim.open > 0 || now.duration_since(claim.last_seen) < PEER_ID_KEPT) =>
            {
                return Err(format!(
                    "the peer id “{}” belongs to another school; pick a new random peer id",
                    peer_id.chars().take(64).collect::<String>()
                ));
            }
            Some(claim) => {
                claim.school = grant.school_id;
                claim.open += 1;
                claim.last_seen = now;
            }
            None => {
                if self.peers.len() >= MAX_PEER_IDS {
                    self.peers.retain(|_, c| {
                        c.open > 0 || now.duration_since(c.last_seen) < PEER_ID_KEPT
                    });
                }
                self.peers.insert(
                    peer_id.to_string(),
                    PeerClaim {
                        school: grant.school_id,
                        open: 1,
                        last_seen: now,
                    },
                );
            }
        }
        self.peer_of.insert(conn, peer_id.to_string());
        Ok(())
    }

    fn disconnected(&mut self, conn: ConnId) {
        if let Some(peer_id) = self.peer_of.remove(&conn)
            && let Some(claim) = self.peers.get_mut(&peer_id)
        {
            claim.open = claim.open.saturating_sub(1);
            claim.last_seen = Instant::now();
        }
    }
}

/// Watches the register for changes made by the admin commands while the
/// relay runs. Stops when `stop` is set.
pub fn watch_directory(access: Access, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("partnerplan-register".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                access.refresh();
            }
        })
        .expect("the register watcher can start")
}
