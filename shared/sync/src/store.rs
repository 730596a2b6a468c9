//! The SQLite file that holds a peer's documents: each document as a
//! list of chunks (Automerge snapshots and incremental changes) and the
//! sync state it last shared with each peer's storage.
//!
//! Writes go in transactions, so a pulled plug leaves either the whole
//! write or none of it; the file runs in WAL mode with `synchronous=FULL`,
//! so a committed write survives power loss. Several processes of one
//! school (the command line and the background sync) share one file.
//!
//! The store never overwrites a file that is not ours or that it cannot
//! read: it says which file and what is wrong, and stops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use automerge::{AutoCommit, Automerge, ChangeHash};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::access::{
    AccessRecord, Credential, Kept, Owner, PEER_ID_KEPT_MS, PartnershipId, Register, Role, School,
    SchoolId, SchoolKey,
};
use crate::document_id::DocumentId;
use crate::message::{NamedActor, PublicKey};

/// Marks a SQLite file as ours (`PRAGMA application_id`): "PPLN".
const APPLICATION_ID: i32 = 0x5050_4C4E;
/// 1: documents, sync states, tracked documents, meta. 2: the relay's
/// register (partnerships, schools, memberships, document owners) joins
/// them, so one file, one check and one version cover both. 3: when each
/// document last changed (`document_changes`, for the relay's admin
/// pages), the schools' public signing keys (`signing_keys`), what the
/// relay's access policy keeps across restarts (each actor's school,
/// peer-id claims, the schools a restore waits for), and on a client the
/// schools the relay named for actors.
const SCHEMA_VERSION: i32 = 3;

/// `meta` key a restore sets to [`BINDINGS_INCOMPLETE`] when it could not
/// carry over the actor bindings of the database it replaced.
pub const RESTORE_BINDINGS: &str = "restore.bindings";
pub const BINDINGS_INCOMPLETE: &str = "incomplete";

/// A document with more chunks than this is compacted into one snapshot.
pub const COMPACT_AFTER_CHUNKS: i64 = 64;

/// Why the store could not do what was asked. Each is a sentence that says
/// what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path} is not a partnerplan database ({detail}). It was left untouched: move it aside or choose another data directory."
    )]
    NotOurs { path: PathBuf, detail: String },
    #[error(
        "{path} is damaged ({detail}). It was left untouched: restore it from a backup, or move it aside and sync again from the relay."
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} was written by a newer partnerplan (schema {found}, this one reads up to {SCHEMA_VERSION}). Update partnerplan."
    )]
    TooNew { path: PathBuf, found: i32 },
    #[error(
        "the disk holding {path} is full, so the last change was not saved. Free some space and try again; everything saved before is intact."
    )]
    DiskFull { path: PathBuf },
    #[error(
        "{path} is busy in another program for too long. Try again; if it persists, stop other partnerplan processes using this data directory."
    )]
    Busy { path: PathBuf },
    #[error("could not use {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error(
        "the change was made to a version of the document this computer does not hold, so it was not saved. Reload the page and make it again."
    )]
    UnknownVersion,
}

/// One write, applied with others in a single transaction.
#[derive(Debug, Clone)]
pub enum Write {
    Chunk {
        document_id: DocumentId,
        data: Vec<u8>,
    },
    SyncState {
        document_id: DocumentId,
        storage_id: String,
        state: Vec<u8>,
    },
    Track {
        document_id: DocumentId,
    },
    /// A new document's owner; an earlier one is never replaced.
    Owner {
        document_id: DocumentId,
        owner: Owner,
    },
    /// A value in the small key/value `meta` table (status, health).
    Meta {
        key: String,
        value: String,
    },
    /// One snapshot in place of the document's chunks up to `upto_seq`
    /// (those after stay; automerge loads chunks in any order).
    Compacted {
        document_id: DocumentId,
        upto_seq: i64,
        data: Vec<u8>,
    },
    /// What the relay's access policy keeps across restarts.
    Access(AccessRecord),
    /// Which school each of these actors belongs to, as the relay named
    /// them (the client keeps them for history).
    ActorNames(Vec<NamedActor>),
    /// A school's public signing key; one kept is never replaced.
    SigningKey {
        key: SchoolKey,
    },
    /// On a client: a document made here for a partnership (by id) other
    /// than the home one, which the sync names to the relay before its
    /// first changes. One kept is never replaced.
    Claim {
        document_id: DocumentId,
        partnership: String,
    },
}

/// A stored chunk, with its place in the file's order of writes.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    pub seq: i64,
    pub document_id: DocumentId,
    pub data: Vec<u8>,
}

/// One school's or one relay's document database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Leave compacting to the caller (`to_compact`, `Write::Compacted`)
    /// rather than doing it inside each write.
    compact_later: bool,
}

impl Store {
    /// Opens the database at `path`, creating it (and its directory) if
    /// there is none. An existing file that is not ours or is damaged is an
    /// error and is left as it is.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        let existed = path.exists()
            && std::fs::metadata(&path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(&path, e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| classify(&path, e))?;
        let mut store = Store {
            conn,
            path,
            compact_later: false,
        };
        store.check_and_migrate(existed)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_and_migrate(&mut self, existed: bool) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        // Reading the header is the first thing that fails on a file that
        // is not SQLite at all.
        let app_id: i32 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(err)?;
        let version: i32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if existed {
            let tables: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(err)?;
            if app_id != APPLICATION_ID && tables > 0 {
                return Err(StoreError::NotOurs {
                    path,
                    detail: "it is a SQLite database that belongs to another program".into(),
                });
            }
            let check: String = self
                .conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(err)?;
            if check != "ok" {
                return Err(StoreError::Corrupt {
                    path,
                    detail: check,
                });
            }
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path,
                found: version,
            });
        }
        self.conn
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(err)?;
        if version < 1 {
            self.conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                     CREATE TABLE IF NOT EXISTS chunks (
                         seq INTEGER PRIMARY KEY AUTOINCREMENT,
                         document_id TEXT NOT NULL,
                         data BLOB NOT NULL
                     );
                     CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document_id, seq);
                     CREATE TABLE IF NOT EXISTS sync_states (
                         document_id TEXT NOT NULL,
                         peer_storage_id TEXT NOT NULL,
                         state BLOB NOT NULL,
                         PRIMARY KEY (document_id, peer_storage_id)
                     );
                     CREATE TABLE IF NOT EXISTS tracked (
                         seq INTEGER PRIMARY KEY AUTOINCREMENT,
                         document_id TEXT NOT NULL UNIQUE
                     );
                     PRAGMA application_id = {APPLICATION_ID};
                     PRAGMA user_version = 1;
                     COMMIT;"
                ))
                .map_err(err)?;
        }
        if version < 2 {
            // Relays made before version 2 already have these tables (the
            // register made them itself), hence IF NOT EXISTS.
            self.conn
                .execute_batch(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS partnerships (
                         id TEXT PRIMARY KEY,
                         name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                         created_at INTEGER NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS schools (
                         id TEXT PRIMARY KEY,
                         name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                         token_hash BLOB NOT NULL UNIQUE,
                         created_at INTEGER NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS memberships (
                         school_id TEXT NOT NULL REFERENCES schools (id) ON DELETE CASCADE,
                         partnership_id TEXT NOT NULL REFERENCES partnerships (id),
                         role TEXT NOT NULL CHECK (role IN ('member', 'viewer')),
                         joined_at INTEGER NOT NULL,
                         PRIMARY KEY (school_id, partnership_id)
                     );
                     CREATE TABLE IF NOT EXISTS document_owners (
                         document_id TEXT PRIMARY KEY,
                         partnership_id TEXT NOT NULL REFERENCES partnerships (id),
                         claimed_by TEXT NOT NULL,
                         claimed_at INTEGER NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS directory_version (
                         id INTEGER PRIMARY KEY CHECK (id = 1),
                         version INTEGER NOT NULL
                     );
                     INSERT OR IGNORE INTO directory_version (id, version) VALUES (1, 1);
                     PRAGMA user_version = 2;
                     COMMIT;",
                )
                .map_err(err)?;
        }
        if version < 3 || !has_tables(&self.conn, VERSION_3_TABLES).map_err(err)? {
            // Each step of version 3 is idempotent (IF NOT EXISTS), so the
            // tables several changes add meet in one step; it runs again
            // on a version 3 file that lacks one (made while they met).
            self.conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS document_changes (
                         document_id TEXT PRIMARY KEY,
                         changed_at INTEGER NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS actor_schools (
                         actor BLOB PRIMARY KEY,
                         school_id TEXT NOT NULL,
                         bound_at INTEGER NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS peer_claims (
                         peer_id TEXT PRIMARY KEY,
                         school_id TEXT NOT NULL,
                         last_seen_ms INTEGER NOT NULL
                     );
                     CREATE INDEX IF NOT EXISTS peer_claims_by_age ON peer_claims (last_seen_ms);
                     CREATE TABLE IF NOT EXISTS restore_waits_for (
                         school_id TEXT PRIMARY KEY,
                         until_ms INTEGER NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS actor_names (
                         actor BLOB PRIMARY KEY,
                         school TEXT NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS signing_keys (
                         public_key BLOB PRIMARY KEY,
                         school_id TEXT NOT NULL,
                         registered_at INTEGER NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS document_writers (
                         document_id TEXT PRIMARY KEY,
                         school_id TEXT NOT NULL
                     );
                     CREATE TABLE IF NOT EXISTS claims (
                         document_id TEXT PRIMARY KEY,
                         partnership_id TEXT NOT NULL
                     );
                     PRAGMA user_version = {SCHEMA_VERSION};
                     COMMIT;"
                ))
                .map_err(err)?;
        }
        Ok(())
    }

    /// Hands the checked connection to the relay's admin commands, which
    /// write the register with their own statements.
    pub fn into_connection(self) -> Connection {
        self.conn
    }

    /// The register's version: it changes whenever an admin command
    /// changes who may see what.
    pub fn register_version(&self) -> Result<i64, StoreError> {
        register_version(&self.conn).map_err(|e| classify(&self.path, e))
    }

    /// The register, read whole.
    pub fn register(&self) -> Result<Register, StoreError> {
        read_register(&self.conn).map_err(|e| classify(&self.path, e))
    }

    /// Which partnership each document belongs to.
    pub fn owners(&self) -> Result<HashMap<DocumentId, PartnershipId>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare("SELECT document_id, partnership_id FROM document_owners")
            .map_err(err)?;
        let mut owners = HashMap::new();
        for row in stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(err)?
        {
            let (document, partnership) = row.map_err(err)?;
            if let Ok(document) = document.parse() {
                owners.insert(document, partnership);
            }
        }
        Ok(owners)
    }

    /// The documents one school writes alone (a viewer's own, shared with
    /// the partnership that owns it), with that school.
    pub fn writers(&self) -> Result<Vec<(DocumentId, SchoolId)>, StoreError> {
        self.id_pairs("SELECT document_id, school_id FROM document_writers")
    }

    /// On a client: the documents made here for a partnership other than
    /// the home one, with that partnership's id.
    pub fn claims(&self) -> Result<Vec<(DocumentId, String)>, StoreError> {
        self.id_pairs("SELECT document_id, partnership_id FROM claims")
    }

    /// Rows of (document id, text), skipping ids that do not parse.
    fn id_pairs(&self, sql: &str) -> Result<Vec<(DocumentId, String)>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, value) = row.map_err(err)?;
            if let Ok(id) = id.parse() {
                out.push((id, value));
            }
        }
        Ok(out)
    }

    /// What the relay's access policy kept before it last stopped: each
    /// actor's school, peer-id claims, and the schools a restore waits for.
    pub fn kept_access(&self) -> Result<Kept, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut kept = Kept::default();
        let mut stmt = self
            .conn
            .prepare("SELECT actor, school_id FROM actor_schools")
            .map_err(err)?;
        for row in stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
        {
            kept.actors.push(row.map_err(err)?);
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT peer_id, school_id, last_seen_ms FROM peer_claims ORDER BY last_seen_ms DESC",
            )
            .map_err(err)?;
        for row in stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)))
            .map_err(err)?
        {
            let (peer_id, school, at): (String, String, i64) = row.map_err(err)?;
            kept.peers.push((peer_id, school, at.max(0) as u64));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT school_id, until_ms FROM restore_waits_for")
            .map_err(err)?;
        for row in stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))
            .map_err(err)?
        {
            let (school, until): (String, i64) = row.map_err(err)?;
            kept.restored.push((school, until.max(0) as u64));
        }
        kept.bindings_incomplete =
            self.meta(RESTORE_BINDINGS)?.as_deref() == Some(BINDINGS_INCOMPLETE);
        Ok(kept)
    }

    /// The school of each Automerge actor the relay named (a client's
    /// store), keyed by the actor id in hex: what history names schools by.
    pub fn actor_names(&self) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT actor, school FROM actor_names")
            .map_err(err)?;
        let mut names = std::collections::BTreeMap::new();
        for row in stmt
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?
        {
            let (actor, school) = row.map_err(err)?;
            names.insert(automerge::ActorId::from(actor).to_hex_string(), school);
        }
        Ok(names)
    }

    /// Every school's public signing keys, oldest first.
    pub fn signing_keys(&self) -> Result<Vec<(PublicKey, SchoolId)>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare("SELECT public_key, school_id FROM signing_keys ORDER BY registered_at, rowid")
            .map_err(err)?;
        let mut keys = Vec::new();
        for row in stmt
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?
        {
            let (key, school) = row.map_err(err)?;
            if let Ok(key) = PublicKey::try_from(key.as_slice()) {
                keys.push((key, school));
            }
        }
        Ok(keys)
    }

    /// This store's id on the wire (`storageId`): made once, kept forever.
    pub fn storage_id(&mut self) -> Result<String, StoreError> {
        if let Some(id) = self.meta("storage_id")? {
            return Ok(id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('storage_id', ?1)",
                params![id],
            )
            .map_err(|e| classify(&self.path, e))?;
        Ok(self.meta("storage_id")?.unwrap_or(id))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| classify(&self.path, e))
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(|e| classify(&self.path, e))?;
        Ok(())
    }

    /// Every chunk of one document, oldest first, and the sync states kept
    /// for it by peer storage id.
    #[allow(clippy::type_complexity)]
    pub fn load(
        &self,
        document_id: &DocumentId,
    ) -> Result<(Vec<Vec<u8>>, Vec<(String, Vec<u8>)>), StoreError> {
        let err = |e| classify(&self.path, e);
        let key = document_id.to_string();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM chunks WHERE document_id = ?1 ORDER BY seq")
            .map_err(err)?;
        let chunks = stmt
            .query_map(params![key], |r| r.get::<_, Vec<u8>>(0))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT peer_storage_id, state FROM sync_states WHERE document_id = ?1")
            .map_err(err)?;
        let states = stmt
            .query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok((chunks, states))
    }

    /// The document assembled from its chunks, if it has any.
    pub fn load_document(&self, document_id: &DocumentId) -> Result<Option<Automerge>, StoreError> {
        let (chunks, _) = self.load(document_id)?;
        if chunks.is_empty() {
            return Ok(None);
        }
        assemble(&chunks)
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("document {document_id} cannot be read: {detail}"),
            })
    }

    /// The sync state kept for one document and one peer storage.
    pub fn sync_state(
        &self,
        document_id: &DocumentId,
        storage_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT state FROM sync_states WHERE document_id = ?1 AND peer_storage_id = ?2",
                params![document_id.to_string(), storage_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| classify(&self.path, e))
    }

    /// Applies every write in one transaction, then compacts any document
    /// that has grown too many chunks. Returns the seqs of chunks written.
    pub fn write(&mut self, writes: &[Write]) -> Result<Vec<i64>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut seqs = Vec::new();
        let mut touched = Vec::new();
        for write in writes {
            match write {
                Write::Chunk { document_id, data } => {
                    tx.prepare_cached("INSERT INTO chunks (document_id, data) VALUES (?1, ?2)")
                        .and_then(|mut s| s.execute(params![document_id.to_string(), data]))
                        .map_err(err)?;
                    seqs.push(tx.last_insert_rowid());
                    touched.push(*document_id);
                }
                Write::SyncState {
                    document_id,
                    storage_id,
                    state,
                } => {
                    tx.prepare_cached(
                        "INSERT INTO sync_states (document_id, peer_storage_id, state) VALUES (?1, ?2, ?3)
                         ON CONFLICT (document_id, peer_storage_id) DO UPDATE SET state = excluded.state",
                    )
                    .and_then(|mut s| s.execute(params![document_id.to_string(), storage_id, state]))
                    .map_err(err)?;
                }
                Write::Track { document_id } => {
                    tx.prepare_cached("INSERT OR IGNORE INTO tracked (document_id) VALUES (?1)")
                        .and_then(|mut s| s.execute(params![document_id.to_string()]))
                        .map_err(err)?;
                }
                Write::Owner { document_id, owner } => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO document_owners (document_id, partnership_id, claimed_by, claimed_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            document_id.to_string(),
                            owner.partnership,
                            owner.claimed_by,
                            unix_seconds()
                        ])
                    })
                    .map_err(err)?;
                    if let Some(writer) = &owner.writer {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO document_writers (document_id, school_id) VALUES (?1, ?2)",
                        )
                        .and_then(|mut s| s.execute(params![document_id.to_string(), writer]))
                        .map_err(err)?;
                    }
                }
                Write::Claim {
                    document_id,
                    partnership,
                } => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO claims (document_id, partnership_id) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute(params![document_id.to_string(), partnership]))
                    .map_err(err)?;
                }
                Write::Compacted {
                    document_id,
                    upto_seq,
                    data,
                } => {
                    let key = document_id.to_string();
                    tx.execute(
                        "DELETE FROM chunks WHERE document_id = ?1 AND seq <= ?2",
                        params![key, upto_seq],
                    )
                    .map_err(err)?;
                    tx.execute(
                        "INSERT INTO chunks (document_id, data) VALUES (?1, ?2)",
                        params![key, data],
                    )
                    .map_err(err)?;
                }
                Write::SigningKey { key } => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO signing_keys (public_key, school_id, registered_at)
                         VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![&key.key[..], key.school, unix_seconds()]))
                    .map_err(err)?;
                }
                Write::Meta { key, value } => {
                    tx.prepare_cached(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .and_then(|mut s| s.execute(params![key, value]))
                    .map_err(err)?;
                }
                Write::Access(record) => write_access(&tx, record).map_err(err)?,
                Write::ActorNames(actors) => {
                    for named in actors {
                        tx.prepare_cached(
                            "INSERT INTO actor_names (actor, school) VALUES (?1, ?2)
                             ON CONFLICT (actor) DO UPDATE SET school = excluded.school",
                        )
                        .and_then(|mut s| s.execute(params![named.actor, named.school]))
                        .map_err(err)?;
                    }
                }
            }
        }
        touched.sort();
        touched.dedup();
        let now = unix_seconds();
        for document_id in touched {
            // When it last changed: one small row per document a turn,
            // beside the chunks it wrote.
            tx.prepare_cached(
                "INSERT INTO document_changes (document_id, changed_at) VALUES (?1, ?2)
                 ON CONFLICT (document_id) DO UPDATE SET changed_at = excluded.changed_at",
            )
            .and_then(|mut s| s.execute(params![document_id.to_string(), now]))
            .map_err(err)?;
            if !self.compact_later {
                compact_if_needed(&tx, &document_id).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(seqs)
    }

    /// From now on writes do not compact documents inside their
    /// transaction: the caller asks [`Store::to_compact`] after writing,
    /// makes the snapshot where it stalls nothing, and writes it back as
    /// [`Write::Compacted`]. (The relay's engine: loading and saving a
    /// large document took it over a second.)
    pub fn compact_later(&mut self) {
        self.compact_later = true;
    }

    /// Whether [`Store::compact_later`] was asked for.
    pub fn compacts_later(&self) -> bool {
        self.compact_later
    }

    /// The document's chunks, if it has more than [`COMPACT_AFTER_CHUNKS`].
    pub fn to_compact(&self, document_id: &DocumentId) -> Result<Option<ToCompact>, StoreError> {
        let err = |e| classify(&self.path, e);
        let key = document_id.to_string();
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM chunks WHERE document_id = ?1",
                params![key],
                |r| r.get(0),
            )
            .map_err(err)?;
        if count <= COMPACT_AFTER_CHUNKS {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, data FROM chunks WHERE document_id = ?1 ORDER BY seq")
            .map_err(err)?;
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let upto_seq = rows.last().map(|(seq, _)| *seq).unwrap_or(0);
        Ok(Some(ToCompact {
            document_id: *document_id,
            upto_seq,
            chunks: rows.into_iter().map(|(_, data)| data).collect(),
        }))
    }

    /// Makes a local edit: loads the document's latest state, lets `edit`
    /// change it as `actor`, and appends the change, all in one write
    /// transaction so concurrent editors of one file never interleave.
    /// The document is tracked for syncing. Returns what `edit` returned.
    pub fn change<T, E: From<StoreError>>(
        &mut self,
        document_id: &DocumentId,
        actor: &automerge::ActorId,
        message: Option<String>,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction(|changes| changes.change(document_id, actor, message, edit))
    }

    /// Several edits, to one document or several, in one transaction:
    /// all of them are saved, or (if any fails) none.
    pub fn transaction<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut Changes<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        let mut changes = Changes { tx, path: &path };
        let result = work(&mut changes)?;
        changes.tx.commit().map_err(|e| classify(&path, e))?;
        Ok(result)
    }

    /// The document assembled once, for a long-running process to keep
    /// in memory between edits; `None` if it has no chunks.
    pub fn hold(&self, document_id: &DocumentId) -> Result<Option<Held>, StoreError> {
        let mut held = Held {
            doc: AutoCommit::new(),
            seen: 0,
            bytes: 0,
        };
        catch_up(&self.conn, &self.path, document_id, &mut held)?;
        Ok((held.seen > 0).then_some(held))
    }

    /// Brings a held document up to date with what any process of this
    /// school has stored since. Returns whether anything arrived.
    pub fn catch_up(&self, document_id: &DocumentId, held: &mut Held) -> Result<bool, StoreError> {
        catch_up(&self.conn, &self.path, document_id, held)
    }

    /// A local edit of a held document, like [`change`](Self::change)
    /// but without assembling the document again: it catches up with
    /// what other processes stored, then edits. With `at`, the edit is
    /// made against that version (the one a page showed), so changes
    /// that arrived since are kept beside it rather than overwritten.
    /// Returns what `edit` returned and the hash of the change made.
    #[allow(clippy::too_many_arguments)]
    pub fn change_held<T, E: From<StoreError>>(
        &mut self,
        document_id: &DocumentId,
        held: &mut Held,
        at: Option<&[ChangeHash]>,
        actor: &automerge::ActorId,
        message: Option<String>,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<(T, Option<ChangeHash>), E> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        let result = edit_held(&tx, &path, document_id, held, at, actor, message, edit);
        match result {
            Ok(done) => {
                tx.commit().map_err(|e| classify(&path, e))?;
                Ok(done)
            }
            Err(error) => {
                drop(tx);
                // What memory holds may now differ from the file: read it
                // again rather than keep an edit that was never saved.
                if let Some(fresh) = self.hold(document_id)? {
                    *held = fresh;
                }
                Err(error)
            }
        }
    }

    /// Chunks written after `seq`, in order: how one process sees what
    /// another wrote.
    pub fn chunks_after(&self, seq: i64) -> Result<Vec<StoredChunk>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, document_id, data FROM chunks WHERE seq > ?1 ORDER BY seq")
            .map_err(err)?;
        let rows = stmt
            .query_map(params![seq], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(err)?;
        let mut chunks = Vec::new();
        for row in rows {
            let (seq, id, data) = row.map_err(err)?;
            if let Ok(document_id) = id.parse() {
                chunks.push(StoredChunk {
                    seq,
                    document_id,
                    data,
                });
            }
        }
        Ok(chunks)
    }

    /// The highest chunk seq in the file.
    pub fn last_chunk_seq(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT coalesce(max(seq), 0) FROM chunks", [], |r| r.get(0))
            .map_err(|e| classify(&self.path, e))
    }

    /// Documents marked for syncing after `seq`, with their seqs.
    pub fn tracked_after(&self, seq: i64) -> Result<Vec<(i64, DocumentId)>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, document_id FROM tracked WHERE seq > ?1 ORDER BY seq")
            .map_err(err)?;
        let rows = stmt
            .query_map(params![seq], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, id) = row.map_err(err)?;
            if let Ok(id) = id.parse() {
                out.push((seq, id));
            }
        }
        Ok(out)
    }

    /// The bytes stored for each document, for listings' sizes.
    pub fn document_sizes(&self) -> Result<HashMap<DocumentId, u64>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare("SELECT document_id, SUM(length(data)) FROM chunks GROUP BY document_id")
            .map_err(err)?;
        let sizes = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(err)?
            .filter_map(|r| {
                let (id, size) = r.ok()?;
                Some((id.parse().ok()?, size.max(0) as u64))
            })
            .collect();
        Ok(sizes)
    }

    /// Each document's newest chunk seq: a document whose seq has not
    /// moved has not changed.
    pub fn last_seq_by_document(&self) -> Result<HashMap<DocumentId, i64>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT document_id, max(seq) FROM chunks GROUP BY document_id")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(err)?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, seq) = row.map_err(err)?;
            if let Ok(id) = id.parse() {
                out.insert(id, seq);
            }
        }
        Ok(out)
    }

    /// Every document's sync state with one peer (by its storage id).
    pub fn sync_states_with(
        &self,
        storage_id: &str,
    ) -> Result<HashMap<DocumentId, Vec<u8>>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT document_id, state FROM sync_states WHERE peer_storage_id = ?1")
            .map_err(err)?;
        let rows = stmt
            .query_map(params![storage_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(err)?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, state) = row.map_err(err)?;
            if let Ok(id) = id.parse() {
                out.insert(id, state);
            }
        }
        Ok(out)
    }

    /// Every document that has at least one chunk.
    pub fn document_ids(&self) -> Result<Vec<DocumentId>, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT document_id FROM chunks ORDER BY document_id")
            .map_err(err)?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(err)?
            .filter_map(|r| r.ok()?.parse().ok())
            .collect();
        Ok(ids)
    }

    /// Caps the file's size, so tests can fill the "disk".
    #[cfg(test)]
    pub(crate) fn limit_pages(&mut self, extra_pages: i64) {
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        self.conn
            .execute_batch(&format!("PRAGMA max_page_count = {}", pages + extra_pages))
            .unwrap();
    }
}

/// What [`check_copy`] found in a copy of a database.
#[derive(Debug, Clone)]
pub struct CopySummary {
    pub documents: i64,
    pub schema: i32,
}

/// Checks, without changing it, that the file at `path` is a whole
/// partnerplan database this version can open: ours (`application_id`),
/// not from a newer version, passing `PRAGMA quick_check`, with the
/// tables [`Store::open`] expects. Backups and restores use it.
pub fn check_copy(path: &Path) -> Result<CopySummary, StoreError> {
    let err = |e| classify(path, e);
    if !path.is_file() {
        return Err(StoreError::Io {
            path: path.to_path_buf(),
            detail: "there is no such file".into(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    if app_id != APPLICATION_ID {
        return Err(StoreError::NotOurs {
            path: path.to_path_buf(),
            detail: "it does not carry partnerplan's mark".into(),
        });
    }
    let schema: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if schema > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: schema,
        });
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(err)?;
    if check != "ok" {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: check,
        });
    }
    let documents: i64 = conn
        .query_row("SELECT count(DISTINCT document_id) FROM chunks", [], |r| {
            r.get(0)
        })
        .map_err(err)?;
    conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
        .map_err(err)?;
    Ok(CopySummary { documents, schema })
}

use crate::clock::unix_seconds;

/// Keeps one of the access policy's records. An actor's first school
/// stays its school; a peer id's claim moves with its last use, and
/// claims unused for longer than they are kept go.
fn write_access(tx: &rusqlite::Transaction<'_>, record: &AccessRecord) -> rusqlite::Result<()> {
    match record {
        AccessRecord::ActorBound { actor, school } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO actor_schools (actor, school_id, bound_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![actor, school, unix_seconds()])?;
        }
        AccessRecord::PeerSeen {
            peer_id,
            school,
            at_ms,
        } => {
            let at = i64::try_from(*at_ms).unwrap_or(i64::MAX);
            tx.prepare_cached(
                "INSERT INTO peer_claims (peer_id, school_id, last_seen_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer_id) DO UPDATE SET school_id = excluded.school_id,
                     last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
            )?
            .execute(params![peer_id, school, at])?;
            let expired = at.saturating_sub(PEER_ID_KEPT_MS as i64);
            tx.prepare_cached("DELETE FROM peer_claims WHERE last_seen_ms < ?1")?
                .execute(params![expired])?;
        }
    }
    Ok(())
}

/// The tables the version 3 step makes.
const VERSION_3_TABLES: &[&str] = &[
    "document_changes",
    "actor_schools",
    "peer_claims",
    "restore_waits_for",
    "actor_names",
    "signing_keys",
    "document_writers",
    "claims",
];

/// Whether the database holds every one of these tables.
fn has_tables(conn: &Connection, tables: &[&str]) -> rusqlite::Result<bool> {
    let mut stmt = conn
        .prepare_cached("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
    for table in tables {
        let found: i64 = stmt.query_row([table], |r| r.get(0))?;
        if found == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn register_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT version FROM directory_version WHERE id = 1",
        [],
        |r| r.get(0),
    )
}

/// Reads the register from a relay database (a [`Store`]'s, or the
/// connection the admin commands took from one).
pub fn read_register(conn: &Connection) -> rusqlite::Result<Register> {
    let mut register = Register {
        version: register_version(conn)?,
        ..Register::default()
    };
    let mut stmt = conn.prepare("SELECT id, name FROM partnerships")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (id, name): (String, String) = row?;
        register.partnerships.insert(id, name);
    }
    let mut stmt = conn.prepare("SELECT id, name, token_hash FROM schools")?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })? {
        let (id, name, hash) = row?;
        let Ok(credential) = Credential::try_from(hash.as_slice()) else {
            continue;
        };
        register.schools.insert(
            id,
            School {
                name,
                credential,
                memberships: HashMap::new(),
            },
        );
    }
    let mut stmt = conn.prepare("SELECT school_id, partnership_id, role FROM memberships")?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })? {
        let (school, partnership, role) = row?;
        if let Some(school) = register.schools.get_mut(&school) {
            school.memberships.insert(partnership, Role::parse(&role));
        }
    }
    Ok(register)
}

/// Builds a document from its chunks.
pub fn assemble(chunks: &[Vec<u8>]) -> Result<Automerge, String> {
    match crate::repo::assemble(chunks) {
        (doc, None) => Ok(doc),
        (_, Some(reason)) => Err(reason),
    }
}

/// A document's chunks up to `upto_seq`, to be replaced by one snapshot
/// made elsewhere (see [`Store::compact_later`]).
pub struct ToCompact {
    pub document_id: DocumentId,
    pub upto_seq: i64,
    pub chunks: Vec<Vec<u8>>,
}

impl ToCompact {
    /// The snapshot that replaces the chunks: heavy (the whole document
    /// is loaded and saved), so run where it stalls nothing. `None` if
    /// the chunks cannot be read; they are then left alone.
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        assemble(&self.chunks).ok().map(|doc| doc.save())
    }
}

/// A document kept in memory by a long-running process (the app), and
/// the last of its stored chunks it has applied.
pub struct Held {
    pub doc: AutoCommit,
    seen: i64,
    /// How many stored bytes it was built from: what a cache bounds.
    pub bytes: usize,
}

/// Edits to documents inside one transaction of [`Store::transaction`].
pub struct Changes<'a> {
    tx: rusqlite::Transaction<'a>,
    path: &'a Path,
}

impl Changes<'_> {
    /// Keeps, in this transaction, that `document_id` (made here) is for
    /// `partnership` (by id) rather than the home one: the sync names it
    /// to the relay before its first changes ([`Write::Claim`]).
    pub fn claim(&mut self, document_id: &DocumentId, partnership: &str) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT OR IGNORE INTO claims (document_id, partnership_id) VALUES (?1, ?2)",
                params![document_id.to_string(), partnership],
            )
            .map(|_| ())
            .map_err(|e| classify(self.path, e))
    }

    /// One edit, as [`Store::change`] describes, inside this transaction.
    pub fn change<T, E: From<StoreError>>(
        &mut self,
        document_id: &DocumentId,
        actor: &automerge::ActorId,
        message: Option<String>,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut held = Held {
            doc: AutoCommit::new(),
            seen: 0,
            bytes: 0,
        };
        edit_held(
            &self.tx,
            self.path,
            document_id,
            &mut held,
            None,
            actor,
            message,
            edit,
        )
        .map(|(result, _)| result)
    }
}

fn catch_up(
    conn: &Connection,
    path: &Path,
    document_id: &DocumentId,
    held: &mut Held,
) -> Result<bool, StoreError> {
    let err = |e| classify(path, e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, data FROM chunks WHERE document_id = ?1 AND seq > ?2 ORDER BY seq",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map(params![document_id.to_string(), held.seen], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(err)?;
    let mut arrived = false;
    for row in rows {
        let (seq, data) = row.map_err(err)?;
        held.doc
            .load_incremental(&data)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("document {document_id} cannot be read: {e}"),
            })?;
        held.seen = seq;
        held.bytes += data.len();
        arrived = true;
    }
    Ok(arrived)
}

/// The one way a local edit is made: inside `tx`, catch up with the
/// file, edit as `actor` (at `at`, if given), append the change.
#[allow(clippy::too_many_arguments)]
fn edit_held<T, E: From<StoreError>>(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    document_id: &DocumentId,
    held: &mut Held,
    at: Option<&[ChangeHash]>,
    actor: &automerge::ActorId,
    message: Option<String>,
    edit: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
) -> Result<(T, Option<ChangeHash>), E> {
    let err = |e| classify(path, e);
    catch_up(tx, path, document_id, held)?;
    let doc = &mut held.doc;
    doc.set_actor(actor.clone());
    let before = doc.get_heads();
    if let Some(heads) = at {
        if let Some(missing) = heads.iter().find(|h| doc.get_change_by_hash(h).is_none()) {
            tracing::warn!(document = %document_id, version = %missing, "an edit named a version this store does not hold");
            return Err(StoreError::UnknownVersion.into());
        }
        doc.isolate(heads);
    }
    let result = edit(doc);
    let result = match result {
        Ok(result) => result,
        Err(error) => {
            doc.rollback();
            if at.is_some() {
                doc.integrate();
            }
            return Err(error);
        }
    };
    let mut options = automerge::transaction::CommitOptions::default().with_time(unix_seconds());
    if let Some(message) = message {
        options = options.with_message(message);
    }
    let hash = doc.commit_with(options);
    if at.is_some() {
        doc.integrate();
    }
    let data = doc.save_after(&before);
    let key = document_id.to_string();
    if !data.is_empty() {
        tx.execute(
            "INSERT INTO chunks (document_id, data) VALUES (?1, ?2)",
            params![key, data],
        )
        .map_err(err)?;
        held.seen = tx.last_insert_rowid();
        held.bytes += data.len();
    }
    tx.execute(
        "INSERT OR IGNORE INTO tracked (document_id) VALUES (?1)",
        params![key],
    )
    .map_err(err)?;
    if let Some(seq) = compact_if_needed(tx, document_id).map_err(err)? {
        // The snapshot holds exactly what memory holds.
        held.seen = seq;
    }
    Ok((result, hash))
}

/// Replaces a document's chunks with one snapshot once it has many. The
/// snapshot is built from the chunks in the file, inside the transaction,
/// so it is right whichever process wrote them. Chunks that cannot be read
/// are left alone. Returns the snapshot's seq if it compacted.
fn compact_if_needed(
    tx: &rusqlite::Transaction<'_>,
    document_id: &DocumentId,
) -> rusqlite::Result<Option<i64>> {
    let key = document_id.to_string();
    let count: i64 = tx.query_row(
        "SELECT count(*) FROM chunks WHERE document_id = ?1",
        params![key],
        |r| r.get(0),
    )?;
    if count <= COMPACT_AFTER_CHUNKS {
        return Ok(None);
    }
    let mut stmt =
        tx.prepare_cached("SELECT seq, data FROM chunks WHERE document_id = ?1 ORDER BY seq")?;
    let rows: Vec<(i64, Vec<u8>)> = stmt
        .query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let chunks: Vec<Vec<u8>> = rows.iter().map(|(_, data)| data.clone()).collect();
    let Ok(doc) = assemble(&chunks) else {
        tracing::warn!(document = %document_id, "a document's stored chunks could not be read; it was not compacted");
        return Ok(None);
    };
    let last_seq = rows.last().map(|(seq, _)| *seq).unwrap_or(0);
    tx.execute(
        "DELETE FROM chunks WHERE document_id = ?1 AND seq <= ?2",
        params![key, last_seq],
    )?;
    tx.execute(
        "INSERT INTO chunks (document_id, data) VALUES (?1, ?2)",
        params![key, doc.save()],
    )?;
    Ok(Some(tx.last_insert_rowid()))
}

/// Turns SQLite's error into one that says what to do.
fn classify(path: &Path, error: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        let detail = message.clone().unwrap_or_else(|| failure.to_string());
        return match failure.code {
            ErrorCode::NotADatabase => StoreError::NotOurs {
                path,
                detail: "it is not a SQLite database".into(),
            },
            ErrorCode::DatabaseCorrupt => StoreError::Corrupt { path, detail },
            ErrorCode::DiskFull => StoreError::DiskFull { path },
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy { path },
            _ => StoreError::Io { path, detail },
        };
    }
    StoreError::Io {
        path,
        detail: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, ReadDoc};

    fn chunk_with(doc: &mut AutoCommit, key: &str, value: i64) -> Vec<u8> {
        let before = doc.get_heads();
        doc.put(ROOT, key, value).unwrap();
        doc.save_after(&before)
    }

    #[test]
    fn chunks_survive_reopening_and_compact_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("school.sqlite");
        let id = DocumentId::random();
        let mut doc = AutoCommit::new();
        {
            let mut store = Store::open(&path).unwrap();
            for i in 0..(COMPACT_AFTER_CHUNKS + 10) {
                let data = chunk_with(&mut doc, &format!("k{i}"), i);
                store
                    .write(&[Write::Chunk {
                        document_id: id,
                        data,
                    }])
                    .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        let (chunks, _) = store.load(&id).unwrap();
        assert!(
            chunks.len() < (COMPACT_AFTER_CHUNKS as usize),
            "compacted: {}",
            chunks.len()
        );
        let loaded = store.load_document(&id).unwrap().unwrap();
        for i in 0..(COMPACT_AFTER_CHUNKS + 10) {
            let (value, _) = loaded.get(ROOT, format!("k{i}")).unwrap().unwrap();
            assert_eq!(value.as_i64(), Some(i));
        }
        assert_eq!(store.document_ids().unwrap(), vec![id]);
    }

    #[test]
    fn signing_keys_are_kept_for_their_first_school_across_a_reopen_and_a_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        {
            // A relay database from before signing keys (schema 2).
            let store = Store::open(&path).unwrap();
            store
                .conn
                .execute_batch("DROP TABLE signing_keys; PRAGMA user_version = 2;")
                .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let key = |school: &str, byte: u8| Write::SigningKey {
            key: SchoolKey {
                school: school.into(),
                key: [byte; 32],
            },
        };
        store.write(&[key("a", 1), key("b", 2)]).unwrap();
        store.write(&[key("b", 1)]).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.signing_keys().unwrap(),
            vec![([1; 32], "a".to_string()), ([2; 32], "b".to_string())]
        );
    }

    #[test]
    fn the_first_owner_of_a_document_stays_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("relay.sqlite")).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO partnerships (id, name, created_at) VALUES ('north', 'North', 0), ('south', 'South', 0);",
            )
            .unwrap();
        let id = DocumentId::random();
        for (partnership, school) in [("north", "a"), ("south", "b")] {
            store
                .write(&[Write::Owner {
                    document_id: id,
                    owner: Owner {
                        partnership: partnership.into(),
                        claimed_by: school.into(),
                        writer: Some(school.into()),
                    },
                }])
                .unwrap();
        }
        assert_eq!(store.owners().unwrap()[&id], "north");
        assert_eq!(
            store.writers().unwrap(),
            vec![(id, "a".to_string())],
            "the first writer stays its writer"
        );
    }

    #[test]
    fn a_claim_is_kept_with_its_document_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("school.sqlite");
        let mut store = Store::open(&path).unwrap();
        let id = DocumentId::random();
        store
            .write(&[
                Write::Track { document_id: id },
                Write::Claim {
                    document_id: id,
                    partnership: "north".into(),
                },
                Write::Claim {
                    document_id: id,
                    partnership: "south".into(),
                },
            ])
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.claims().unwrap(), vec![(id, "north".to_string())]);
        assert_eq!(store.tracked_after(0).unwrap().len(), 1);
    }

    #[test]
    fn a_version_3_file_missing_a_version_3_table_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        Store::open(&path)
            .unwrap()
            .into_connection()
            .execute_batch("DROP TABLE actor_schools; DROP TABLE peer_claims;")
            .unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.kept_access().unwrap(), Kept::default());
    }

    #[test]
    fn the_storage_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite");
        let first = Store::open(&path).unwrap().storage_id().unwrap();
        let second = Store::open(&path).unwrap().storage_id().unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("school.sqlite");
        let junk = b"These are the governors' minutes, not a database. ".repeat(200);
        std::fs::write(&path, &junk).unwrap();
        let error = Store::open(&path).err().expect("refused");
        let text = error.to_string();
        assert!(
            text.contains("school.sqlite") && text.contains("not a partnerplan database"),
            "{text}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }

    #[test]
    fn another_programs_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE pupils (name TEXT); INSERT INTO pupils VALUES ('Ada');")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let error = Store::open(&path).err().expect("refused");
        assert!(
            error.to_string().contains("belongs to another program"),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_damaged_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("school.sqlite");
        {
            let mut store = Store::open(&path).unwrap();
            let mut doc = AutoCommit::new();
            for i in 0..200 {
                let data = chunk_with(&mut doc, &format!("key-{i}"), i);
                store
                    .write(&[Write::Chunk {
                        document_id: DocumentId::random(),
                        data,
                    }])
                    .unwrap();
            }
            store
                .conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        // Scribble over the second page onwards, keeping the header.
        for b in bytes.iter_mut().skip(4096).take(8192) {
            *b = 0x5a;
        }
        std::fs::write(&path, &bytes).unwrap();
        let error = Store::open(&path).err().expect("refused");
        let text = error.to_string();
        assert!(text.contains("school.sqlite"), "{text}");
        assert!(
            text.contains("damaged") || text.contains("not a partnerplan database"),
            "{text}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "left untouched");
    }

    fn ok() -> Result<(), StoreError> {
        Ok(())
    }

    fn text_of(doc: &AutoCommit) -> String {
        let (_, text) = doc.get(ROOT, "notes").unwrap().unwrap();
        doc.text(&text).unwrap()
    }

    #[test]
    fn a_held_document_sees_other_processes_edits_and_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("school.sqlite");
        let id = DocumentId::random();
        let actor = automerge::ActorId::random();
        let mut app = Store::open(&path).unwrap();
        let mut cli = Store::open(&path).unwrap();
        cli.change(&id, &actor, None, |doc| {
            let text = doc
                .put_object(ROOT, "notes", automerge::ObjType::Text)
                .unwrap();
            doc.splice_text(&text, 0, 0, "Peer review").unwrap();
            ok()
        })
        .unwrap();
        let mut held = app.hold(&id).unwrap().expect("stored");
        assert_eq!(text_of(&held.doc), "Peer review");

        // The command line, another process, appends; the app catches up.
        cli.change(&id, &actor, None, |doc| {
            let (_, text) = doc.get(ROOT, "notes").unwrap().unwrap();
            doc.splice_text(&text, 11, 0, " of writing").unwrap();
            ok()
        })
        .unwrap();
        assert!(app.catch_up(&id, &mut held).unwrap());
        assert_eq!(text_of(&held.doc), "Peer review of writing");
        assert!(!app.catch_up(&id, &mut held).unwrap(), "nothing new");

        // An edit of the held copy lands in the file.
        let (_, hash) = app
            .change_held(&id, &mut held, None, &actor, None, |doc| {
                let (_, text) = doc.get(ROOT, "notes").unwrap().unwrap();
                doc.splice_text(&text, 0, 0, "Termly ").unwrap();
                ok()
            })
            .unwrap();
        assert!(hash.is_some());
        let stored = AutoCommit::load(&cli.load_document(&id).unwrap().unwrap().save()).unwrap();
        assert_eq!(text_of(&stored), "Termly Peer review of writing");
    }

    #[test]
    fn an_edit_against_an_older_version_keeps_what_arrived_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("school.sqlite");
        let id = DocumentId::random();
        let actor = automerge::ActorId::random();
        let partner = automerge::ActorId::random();
        let mut store = Store::open(&path).unwrap();
        store
            .change(&id, &actor, None, |doc| {
                doc.put(ROOT, "status", "red").unwrap();
                let text = doc
                    .put_object(ROOT, "notes", automerge::ObjType::Text)
                    .unwrap();
                doc.splice_text(&text, 0, 0, "abc").unwrap();
                ok()
            })
            .unwrap();
        let mut held = store.hold(&id).unwrap().unwrap();
        let shown = held.doc.get_heads();
        // A partner's edits arrive after the page was shown.
        let mut other = Store::open(&path).unwrap();
        other
            .change(&id, &partner, None, |doc| {
                doc.put(ROOT, "status", "green").unwrap();
                let (_, text) = doc.get(ROOT, "notes").unwrap().unwrap();
                doc.splice_text(&text, 3, 0, "XYZ").unwrap();
                ok()
            })
            .unwrap();
        // The page's edit, against the version it showed.
        let (_, hash) = store
            .change_held(&id, &mut held, Some(&shown), &actor, None, |doc| {
                assert_eq!(text_of(doc), "abc", "the edit sees the version shown");
                doc.put(ROOT, "status", "amber").unwrap();
                let (_, text) = doc.get(ROOT, "notes").unwrap().unwrap();
                doc.splice_text(&text, 0, 0, "1").unwrap();
                ok()
            })
            .unwrap();
        let hash = hash.unwrap();
        assert_eq!(text_of(&held.doc), "1abcXYZ", "both texts kept");
        let statuses = held.doc.get_all(ROOT, "status").unwrap();
        assert_eq!(statuses.len(), 2, "two statuses set at once are a conflict");
        // The version right after the edit is exactly what the page had.
        let (_, text) = held.doc.get(ROOT, "notes").unwrap().unwrap();
        assert_eq!(held.doc.text_at(&text, &[hash]).unwrap(), "1abc");
    }

    #[test]
    fn a_failed_edit_leaves_the_held_copy_as_the_file_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let id = DocumentId::random();
        let actor = automerge::ActorId::random();
        let mut store = Store::open(dir.path().join("school.sqlite")).unwrap();
        store
            .change(&id, &actor, None, |doc| {
                doc.put(ROOT, "a", 1).unwrap();
                ok()
            })
            .unwrap();
        let mut held = store.hold(&id).unwrap().unwrap();
        let failed: Result<((), _), StoreError> =
            store.change_held(&id, &mut held, None, &actor, None, |doc| {
                doc.put(ROOT, "a", 2).unwrap();
                doc.commit();
                doc.put(ROOT, "b", 3).unwrap();
                Err(StoreError::UnknownVersion)
            });
        assert!(failed.is_err());
        let a: i64 = match held.doc.get(ROOT, "a").unwrap().unwrap().0 {
            automerge::Value::Scalar(s) => s.as_i64().unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(a, 1, "nothing unsaved stays in memory");
        assert!(held.doc.get(ROOT, "b").unwrap().is_none());
    }

    #[test]
    fn a_transaction_over_several_documents_saves_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (DocumentId::random(), DocumentId::random());
        let actor = automerge::ActorId::random();
        let mut store = Store::open(dir.path().join("school.sqlite")).unwrap();
        let failed: Result<(), StoreError> = store.transaction(|changes| {
            changes
                .change(&one, &actor, None, |doc| {
                    doc.put(ROOT, "a", 1).unwrap();
                    ok()
                })
                .unwrap();
            changes.change(&two, &actor, None, |_| Err(StoreError::UnknownVersion))
        });
        assert!(failed.is_err());
        assert!(store.load_document(&one).unwrap().is_none(), "none saved");
        store
            .transaction(|changes| {
                changes
                    .change(&one, &actor, None, |doc| {
                        doc.put(ROOT, "a", 1).unwrap();
                        ok()
                    })
                    .unwrap();
                changes.change(&two, &actor, None, |doc| {
                    doc.put(ROOT, "b", 2).unwrap();
                    ok()
                })
            })
            .unwrap();
        assert!(store.load_document(&one).unwrap().is_some());
        assert!(store.load_document(&two).unwrap().is_some());
    }
}

#[cfg(test)]
mod compact_later_tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;

    /// The relay's way: writes leave compacting to the caller, which makes
    /// the snapshot elsewhere and writes it back; chunks written meanwhile
    /// stay, and the document reads the same.
    #[test]
    fn a_snapshot_made_elsewhere_replaces_the_chunks_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("relay.sqlite")).unwrap();
        store.compact_later();
        let id = DocumentId::random();
        let mut doc = AutoCommit::new();
        let write = |doc: &mut AutoCommit, store: &mut Store, i: i64| {
            let before = doc.get_heads();
            doc.put(ROOT, "count", i).unwrap();
            let data = doc.save_after(&before);
            store
                .write(&[Write::Chunk {
                    document_id: id,
                    data,
                }])
                .unwrap();
        };
        for i in 0..=COMPACT_AFTER_CHUNKS {
            write(&mut doc, &mut store, i);
        }
        let job = store.to_compact(&id).unwrap().expect("past the threshold");
        assert_eq!(
            job.chunks.len() as i64,
            COMPACT_AFTER_CHUNKS + 1,
            "not compacted inline"
        );
        let snapshot = job.snapshot().unwrap();
        // Written while the snapshot was being made.
        write(&mut doc, &mut store, 1000);
        store
            .write(&[Write::Compacted {
                document_id: id,
                upto_seq: job.upto_seq,
                data: snapshot,
            }])
            .unwrap();
        let (chunks, _) = store.load(&id).unwrap();
        assert_eq!(chunks.len(), 2, "the snapshot and the later chunk");
        let stored = store.load_document(&id).unwrap().unwrap();
        assert_eq!(stored.get_heads(), doc.get_heads());
        assert!(store.to_compact(&id).unwrap().is_none());
    }
}
