//! The relay's register of who may see what: partnerships; schools with
//! their access tokens (kept only as SHA-256 hashes); which school is in
//! which partnership, as a member or a viewer; and which partnership each
//! document belongs to.
//!
//! It lives in `relay.sqlite` beside the documents (the store's schema
//! holds its tables). The admin commands change it while the relay runs,
//! and bump `directory_version`; the relay's engine notices within a
//! quarter of a second and hands the new [`Register`] to its access
//! policy. The relay itself writes only document owners, through the
//! engine, with each document's first chunk.

use std::path::{Path, PathBuf};

pub use partnerplan_sync::access::{Credential, PartnershipId, Register, Role, SchoolId};
use partnerplan_sync::{Store, StoreError};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::DATABASE_FILE;
use crate::activity::{LastSync, last_sync_key};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{}", crate::store_sentence(.0))]
    Store(#[from] StoreError),
    #[error(
        "there is no partnership called “{0}”. `partnerplan-relay partnership list` shows them."
    )]
    NoSuchPartnership(String),
    #[error("a partnership called “{0}” already exists.")]
    PartnershipExists(String),
    #[error(
        "there is no school called “{0}” on this relay. `partnerplan-relay school list` shows them."
    )]
    NoSuchSchool(String),
    #[error("{school} is already in {partnership} as a {role}.")]
    AlreadyMember {
        school: String,
        partnership: String,
        role: &'static str,
    },
    #[error("{school} is not in {partnership}.")]
    NotMember { school: String, partnership: String },
    #[error("{school} is already a {role} of {partnership}.")]
    SameRole {
        school: String,
        partnership: String,
        role: &'static str,
    },
    #[error("a name cannot be empty.")]
    EmptyName,
    #[error("a name can be at most {NAME_CHARS} characters; shorten it.")]
    NameTooLong,
    #[error(
        "a name cannot contain line breaks, tabs or other control characters; type it on one line."
    )]
    NameNotOneLine,
    #[error("could not use the relay's register in {path}: {detail}")]
    Sqlite { path: PathBuf, detail: String },
}

/// The longest name a partnership or a school may have, in characters:
/// names go into every listing, page and invite.
pub const NAME_CHARS: usize = 100;

/// A partnership's or a school's name as given: trimmed, one line, not
/// empty, at most [`NAME_CHARS`].
fn checked_name(name: &str) -> Result<&str, DirectoryError> {
    let name = name.trim();
    if name.is_empty() {
        Err(DirectoryError::EmptyName)
    } else if name.chars().any(char::is_control) {
        Err(DirectoryError::NameNotOneLine)
    } else if name.chars().count() > NAME_CHARS {
        Err(DirectoryError::NameTooLong)
    } else {
        Ok(name)
    }
}

/// A new school's invite, or a new token: shown once, never stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invite {
    pub school: String,
    pub partnership: String,
    pub role: Role,
    /// The relay address to connect to, naming the partnership.
    pub url: String,
    pub token: String,
    /// The relay's own address, and the partnership's id, for [`Invite::line`].
    #[serde(skip)]
    relay: String,
    #[serde(skip)]
    partnership_id: Option<String>,
}

impl Invite {
    /// The one line a school pastes into `partnerplan join` or the app's
    /// join page (see `partnerplan_sync::invite`): the relay, the
    /// partnership, the school's name and its token. Also a URL the
    /// JavaScript automerge-repo client can connect to as it is.
    pub fn line(&self) -> String {
        partnerplan_sync::invite::line(
            &self.relay,
            self.partnership_id.as_deref(),
            &self.school,
            &self.token,
        )
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PartnershipSummary {
    pub id: String,
    pub name: String,
    pub schools: usize,
    pub documents: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SchoolSummary {
    pub id: SchoolId,
    pub name: String,
    /// Partnership name and role.
    pub partnerships: Vec<(String, Role)>,
    /// When it last synced, and with which client, as kept when its last
    /// connection closed (the admin page adds connections open now).
    pub last_sync: Option<LastSync>,
}

/// One document on the relay, for the admin pages and `document list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DocumentSummary {
    /// The automerge URL schools open it by.
    pub url: String,
    pub partnership: String,
    /// The school that first wrote it, if it is still on the relay.
    pub created_by: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change stored; `None` before the relay
    /// kept these (schema 3).
    pub changed_at: Option<i64>,
    /// What its chunks take in the database.
    pub bytes: u64,
}

/// The relay's data as the admin pages and `status` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StorageStatus {
    pub documents: u64,
    /// The database with its write-ahead log, on disk.
    pub bytes: u64,
    /// The last backup, as `backup` and scheduled backups record it.
    pub last_backup: Option<String>,
    pub last_backup_file: Option<String>,
    /// The last failed scheduled backup: `<time> <sentence>`.
    pub last_backup_failure: Option<String>,
}

/// The register, open on relay.sqlite.
pub struct Directory {
    conn: Connection,
    path: PathBuf,
}

impl Directory {
    /// Opens the register in a relay data directory, creating the database
    /// if there is none. A file that is not ours is refused untouched.
    pub fn open(data_dir: &Path) -> Result<Directory, DirectoryError> {
        let path = data_dir.join(DATABASE_FILE);
        // The store checks the file is ours, creates it and its tables.
        let conn = Store::open(&path)?.into_connection();
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| sqlite(&path, e))?;
        Ok(Directory { conn, path })
    }

    /// Opens the register of a relay that is running, whose engine has
    /// already checked the file: a second connection, as the admin
    /// commands have, without checking the whole file again.
    pub fn beside_running(data_dir: &Path) -> Result<Directory, DirectoryError> {
        let path = data_dir.join(DATABASE_FILE);
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sqlite(&path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| sqlite(&path, e))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| sqlite(&path, e))?;
        Ok(Directory { conn, path })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> DirectoryError + '_ {
        |e| sqlite(&self.path, e)
    }

    /// Changes whenever an admin command changes who may see what.
    pub fn version(&self) -> Result<i64, DirectoryError> {
        self.conn
            .query_row(
                "SELECT version FROM directory_version WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    pub fn register(&self) -> Result<Register, DirectoryError> {
        partnerplan_sync::store::read_register(&self.conn).map_err(self.err())
    }

    /// The address written into invites: what the relay last served at.
    pub fn public_url(&self) -> Result<Option<String>, DirectoryError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'public_url'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())
    }

    /// A value of the store's `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, DirectoryError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())
    }

    /// Keeps a value in the store's `meta` table (the admin password's
    /// hash); the running relay reads it from there.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), DirectoryError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// The relay address invites name: `given`, or what the relay last
    /// served at.
    pub fn relay_url(&self, given: Option<String>) -> Result<String, DirectoryError> {
        if let Some(url) = given {
            return Ok(url);
        }
        Ok(self
            .public_url()?
            .unwrap_or_else(|| "ws://127.0.0.1:7171".into()))
    }

    pub fn create_partnership(&mut self, name: &str) -> Result<PartnershipSummary, DirectoryError> {
        let name = checked_name(name)?;
        if self.find_partnership(name)?.is_some() {
            return Err(DirectoryError::PartnershipExists(name.into()));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tx = self.conn.transaction().map_err(|e| sqlite(&self.path, e))?;
        tx.execute(
            "INSERT INTO partnerships (id, name, created_at) VALUES (?1, ?2, ?3)",
            params![id, name, now()],
        )
        .map_err(|e| sqlite(&self.path, e))?;
        bump(&tx).map_err(|e| sqlite(&self.path, e))?;
        tx.commit().map_err(|e| sqlite(&self.path, e))?;
        Ok(PartnershipSummary {
            id,
            name: name.into(),
            schools: 0,
            documents: 0,
        })
    }

    /// Adds a school to a partnership. A school new to this relay gets a
    /// token, returned in its invite; one already here keeps its token
    /// (`None`) and can now also sync this partnership's documents. Also
    /// returns the school's name and the partnership's relay address.
    pub fn add_school(
        &mut self,
        partnership: &str,
        school: &str,
        role: Role,
        relay_url: &str,
    ) -> Result<(Option<Invite>, String, String), DirectoryError> {
        let school = checked_name(school)?;
        let (partnership_id, partnership_name) = self
            .find_partnership(partnership)?
            .ok_or_else(|| DirectoryError::NoSuchPartnership(partnership.into()))?;
        let existing = self.find_school(school)?;
        let path = self.path.clone();
        let err = |e| sqlite(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let (school_id, school_name, token) = match existing {
            Some((id, name)) => {
                let role_now: Option<String> = tx
                    .query_row(
                        "SELECT role FROM memberships WHERE school_id = ?1 AND partnership_id = ?2",
                        params![id, partnership_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err)?;
                if let Some(role_now) = role_now {
                    return Err(DirectoryError::AlreadyMember {
                        school: name,
                        partnership: partnership_name,
                        role: Role::parse(&role_now).as_str(),
                    });
                }
                (id, name, None)
            }
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let token = new_token();
                tx.execute(
                    "INSERT INTO schools (id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, school, hash_token(&token).to_vec(), now()],
                )
                .map_err(err)?;
                (id, school.to_string(), Some(token))
            }
        };
        tx.execute(
            "INSERT INTO memberships (school_id, partnership_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
            params![school_id, partnership_id, role.as_str(), now()],
        )
        .map_err(err)?;
        bump(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        let url = invite_url(relay_url, &partnership_id);
        let invite = token.map(|token| Invite {
            school: school_name.clone(),
            partnership: partnership_name.clone(),
            role,
            url: url.clone(),
            token,
            relay: relay_url.to_string(),
            partnership_id: Some(partnership_id.clone()),
        });
        Ok((invite, school_name, url))
    }

    /// Takes a school out of one partnership, or with `None` off the relay
    /// altogether (its token stops working).
    pub fn remove_school(
        &mut self,
        school: &str,
        partnership: Option<&str>,
    ) -> Result<String, DirectoryError> {
        let (school_id, school_name) = self
            .find_school(school)?
            .ok_or_else(|| DirectoryError::NoSuchSchool(school.into()))?;
        let path = self.path.clone();
        let err = |e| sqlite(&path, e);
        let partnership = match partnership {
            Some(p) => Some(
                self.find_partnership(p)?
                    .ok_or_else(|| DirectoryError::NoSuchPartnership(p.into()))?,
            ),
            None => None,
        };
        let tx = self.conn.transaction().map_err(err)?;
        match partnership {
            Some((id, name)) => {
                let removed = tx
                    .execute(
                        "DELETE FROM memberships WHERE school_id = ?1 AND partnership_id = ?2",
                        params![school_id, id],
                    )
                    .map_err(err)?;
                if removed == 0 {
                    return Err(DirectoryError::NotMember {
                        school: school_name,
                        partnership: name,
                    });
                }
            }
            None => {
                tx.execute(
                    "DELETE FROM memberships WHERE school_id = ?1",
                    params![school_id],
                )
                .map_err(err)?;
                tx.execute("DELETE FROM schools WHERE id = ?1", params![school_id])
                    .map_err(err)?;
                tx.execute(
                    "DELETE FROM meta WHERE key = ?1",
                    params![last_sync_key(&school_id)],
                )
                .map_err(err)?;
            }
        }
        bump(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(school_name)
    }

    /// Gives a school a new token; the old one stops working at once.
    pub fn rotate_token(
        &mut self,
        school: &str,
        relay_url: &str,
    ) -> Result<Invite, DirectoryError> {
        let (school_id, school_name) = self
            .find_school(school)?
            .ok_or_else(|| DirectoryError::NoSuchSchool(school.into()))?;
        let token = new_token();
        let path = self.path.clone();
        let err = |e| sqlite(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "UPDATE schools SET token_hash = ?1 WHERE id = ?2",
            params![hash_token(&token).to_vec(), school_id],
        )
        .map_err(err)?;
        bump(&tx).map_err(err)?;
        // The invite names the partnership the school joined first, as
        // its first invite did: the home of the documents it creates.
        let home: Option<(String, String, String)> = tx
            .query_row(
                "SELECT m.partnership_id, p.name, m.role FROM memberships m
                 JOIN partnerships p ON p.id = m.partnership_id
                 WHERE m.school_id = ?1 ORDER BY m.joined_at, m.rowid LIMIT 1",
                params![school_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(err)?;
        tx.commit().map_err(err)?;
        let (url, partnership, role) = match &home {
            Some((id, name, role)) => (invite_url(relay_url, id), name.clone(), Role::parse(role)),
            None => (
                format!("{}/", relay_url.trim_end_matches('/')),
                String::new(),
                Role::Member,
            ),
        };
        Ok(Invite {
            school: school_name,
            partnership,
            role,
            url,
            token,
            relay: relay_url.to_string(),
            partnership_id: home.map(|(id, _, _)| id),
        })
    }

    pub fn partnerships(&self) -> Result<Vec<PartnershipSummary>, DirectoryError> {
        let err = self.err();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.id, p.name,
                        (SELECT count(*) FROM memberships m WHERE m.partnership_id = p.id),
                        (SELECT count(*) FROM document_owners d WHERE d.partnership_id = p.id)
                 FROM partnerships p ORDER BY p.name",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PartnershipSummary {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    schools: r.get::<_, i64>(2)? as usize,
                    documents: r.get::<_, i64>(3)? as usize,
                })
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        Ok(rows)
    }

    pub fn schools(&self, partnership: Option<&str>) -> Result<Vec<SchoolSummary>, DirectoryError> {
        let register = self.register()?;
        let only = match partnership {
            Some(p) => Some(
                register
                    .partnership(p)
                    .cloned()
                    .ok_or_else(|| DirectoryError::NoSuchPartnership(p.into()))?,
            ),
            None => None,
        };
        let last_syncs = self.last_syncs()?;
        let mut schools: Vec<SchoolSummary> = register
            .schools
            .iter()
            .filter(|(_, s)| only.as_ref().is_none_or(|p| s.memberships.contains_key(p)))
            .map(|(id, s)| {
                let mut partnerships: Vec<(String, Role)> = s
                    .memberships
                    .iter()
                    .map(|(id, role)| {
                        (
                            register.partnerships.get(id).cloned().unwrap_or_default(),
                            *role,
                        )
                    })
                    .collect();
                partnerships.sort_by(|a, b| a.0.cmp(&b.0));
                SchoolSummary {
                    id: id.clone(),
                    name: s.name.clone(),
                    partnerships,
                    last_sync: last_syncs.get(id).cloned(),
                }
            })
            .collect();
        schools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(schools)
    }

    /// Makes a school a member or a viewer of a partnership it is in.
    /// Returns the school's and the partnership's names.
    pub fn set_role(
        &mut self,
        school: &str,
        partnership: &str,
        role: Role,
    ) -> Result<(String, String), DirectoryError> {
        let (school_id, school_name) = self
            .find_school(school)?
            .ok_or_else(|| DirectoryError::NoSuchSchool(school.into()))?;
        let (partnership_id, partnership_name) = self
            .find_partnership(partnership)?
            .ok_or_else(|| DirectoryError::NoSuchPartnership(partnership.into()))?;
        let path = self.path.clone();
        let err = |e| sqlite(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let now: Option<String> = tx
            .query_row(
                "SELECT role FROM memberships WHERE school_id = ?1 AND partnership_id = ?2",
                params![school_id, partnership_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        match now.map(|r| Role::parse(&r)) {
            None => {
                return Err(DirectoryError::NotMember {
                    school: school_name,
                    partnership: partnership_name,
                });
            }
            Some(now) if now == role => {
                return Err(DirectoryError::SameRole {
                    school: school_name,
                    partnership: partnership_name,
                    role: role.as_str(),
                });
            }
            Some(_) => {}
        }
        tx.execute(
            "UPDATE memberships SET role = ?1 WHERE school_id = ?2 AND partnership_id = ?3",
            params![role.as_str(), school_id, partnership_id],
        )
        .map_err(err)?;
        bump(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok((school_name, partnership_name))
    }

    /// The documents of one partnership (by id or name), or of all, the
    /// most recently changed first.
    pub fn documents(
        &self,
        partnership: Option<&str>,
    ) -> Result<Vec<DocumentSummary>, DirectoryError> {
        let only = match partnership {
            Some(p) => Some(
                self.find_partnership(p)?
                    .ok_or_else(|| DirectoryError::NoSuchPartnership(p.into()))?
                    .0,
            ),
            None => None,
        };
        let err = self.err();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.document_id, p.name, s.name, o.claimed_at, c.changed_at,
                        (SELECT coalesce(sum(length(data)), 0) FROM chunks k WHERE k.document_id = o.document_id)
                 FROM document_owners o
                 JOIN partnerships p ON p.id = o.partnership_id
                 LEFT JOIN schools s ON s.id = o.claimed_by
                 LEFT JOIN document_changes c ON c.document_id = o.document_id
                 WHERE ?1 IS NULL OR o.partnership_id = ?1
                 ORDER BY coalesce(c.changed_at, o.claimed_at) DESC, o.document_id",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![only], |r| {
                let id: String = r.get(0)?;
                Ok(DocumentSummary {
                    url: format!("automerge:{id}"),
                    partnership: r.get(1)?,
                    created_by: r.get(2)?,
                    created_at: r.get(3)?,
                    changed_at: r.get(4)?,
                    bytes: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        Ok(rows)
    }

    /// A document's title, if it has one at its root (text or a string):
    /// read from its stored chunks, never used to decide anything.
    pub fn document_title(&self, url: &str) -> Result<Option<String>, DirectoryError> {
        let id = url.strip_prefix("automerge:").unwrap_or(url);
        let err = self.err();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM chunks WHERE document_id = ?1 ORDER BY seq")
            .map_err(&err)?;
        let chunks = stmt
            .query_map(params![id], |r| r.get::<_, Vec<u8>>(0))
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        let Ok(doc) = partnerplan_sync::store::assemble(&chunks) else {
            return Ok(None);
        };
        use automerge::ReadDoc;
        let title = match doc.get(automerge::ROOT, "title") {
            Ok(Some((automerge::Value::Object(automerge::ObjType::Text), text))) => {
                doc.text(&text).ok()
            }
            Ok(Some((automerge::Value::Scalar(value), _))) => value.as_str().map(str::to_string),
            _ => None,
        };
        Ok(title
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    /// The last sync of every school, as kept when connections closed.
    pub fn last_syncs(
        &self,
    ) -> Result<std::collections::HashMap<SchoolId, LastSync>, DirectoryError> {
        let err = self.err();
        let prefix = last_sync_key(&String::new());
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM meta WHERE key >= ?1 AND key < ?1 || '~'")
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![prefix], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, value)| {
                let school = key.strip_prefix(&prefix)?.to_string();
                Some((school, serde_json::from_str(&value).ok()?))
            })
            .collect())
    }

    /// How much the relay holds, and its last backup.
    pub fn storage(&self) -> Result<StorageStatus, DirectoryError> {
        let err = self.err();
        let documents: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM (SELECT DISTINCT document_id FROM chunks)",
                [],
                |r| r.get(0),
            )
            .map_err(&err)?;
        let meta = |key: &str| self.meta(key);
        let size = |suffix: &str| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        Ok(StorageStatus {
            documents: documents.max(0) as u64,
            bytes: size("") + size("-wal"),
            last_backup: meta(crate::backup::META_LAST)?,
            last_backup_file: meta(crate::backup::META_LAST_FILE)?,
            last_backup_failure: meta(crate::backup::META_LAST_FAILURE)?,
        })
    }

    fn find_partnership(
        &self,
        id_or_name: &str,
    ) -> Result<Option<(String, String)>, DirectoryError> {
        self.conn
            .query_row(
                "SELECT id, name FROM partnerships WHERE id = ?1 OR name = ?1 COLLATE NOCASE",
                params![id_or_name.trim()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())
    }

    fn find_school(&self, name: &str) -> Result<Option<(String, String)>, DirectoryError> {
        self.conn
            .query_row(
                "SELECT id, name FROM schools WHERE name = ?1 COLLATE NOCASE",
                params![name.trim()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())
    }
}

/// A long random secret: 32 bytes, as hex, with a prefix that makes it
/// recognisable if it ever leaks into the wrong place.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("pp_{hex}")
}

pub fn hash_token(token: &str) -> Credential {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn invite_url(relay_url: &str, partnership_id: &str) -> String {
    format!(
        "{}/?partnership={partnership_id}",
        relay_url.trim_end_matches('/')
    )
}

fn bump(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE directory_version SET version = version + 1 WHERE id = 1",
        [],
    )
    .map(|_| ())
}

fn now() -> i64 {
    partnerplan_sync::clock::unix_seconds()
}

fn sqlite(path: &Path, error: rusqlite::Error) -> DirectoryError {
    DirectoryError::Sqlite {
        path: path.to_path_buf(),
        detail: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schools_partnerships_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut directory = Directory::open(dir.path()).unwrap();
        let v0 = directory.version().unwrap();
        directory.create_partnership("Cluster North").unwrap();
        directory.create_partnership("Cluster South").unwrap();
        assert!(matches!(
            directory.create_partnership("cluster north"),
            Err(DirectoryError::PartnershipExists(_))
        ));
        let (invite, _, _) = directory
            .add_school("Cluster North", "Hilltop", Role::Member, "ws://relay:7171")
            .unwrap();
        let invite = invite.expect("a new school gets an invite");
        assert!(invite.token.starts_with("pp_") && invite.token.len() == 67);
        assert!(invite.url.starts_with("ws://relay:7171/?partnership="));
        // The same school in a second partnership keeps its token.
        let (again, _, _) = directory
            .add_school("Cluster South", "hilltop", Role::Viewer, "ws://relay:7171")
            .unwrap();
        assert!(again.is_none());
        let register = directory.register().unwrap();
        assert!(register.version > v0);
        let (_, school) = register.school_with(&hash_token(&invite.token)).unwrap();
        assert_eq!(school.memberships.len(), 2);
        assert!(school.memberships.values().any(|r| *r == Role::Viewer));

        // Only the hash is stored.
        let stored: i64 = directory
            .conn
            .query_row(
                "SELECT count(*) FROM schools WHERE token_hash = ?1",
                params![invite.token.as_bytes()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);

        let rotated = directory
            .rotate_token("Hilltop", "ws://relay:7171")
            .unwrap();
        let register = directory.register().unwrap();
        assert!(register.school_with(&hash_token(&invite.token)).is_none());
        assert!(register.school_with(&hash_token(&rotated.token)).is_some());

        directory
            .remove_school("Hilltop", Some("Cluster South"))
            .unwrap();
        assert_eq!(directory.schools(Some("Cluster South")).unwrap().len(), 0);
        directory.remove_school("Hilltop", None).unwrap();
        assert!(directory.register().unwrap().schools.is_empty());
        assert!(matches!(
            directory.remove_school("Hilltop", None),
            Err(DirectoryError::NoSuchSchool(_))
        ));
    }

    #[test]
    fn names_are_one_line_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut directory = Directory::open(dir.path()).unwrap();
        assert!(matches!(
            directory.create_partnership(&"x".repeat(NAME_CHARS + 1)),
            Err(DirectoryError::NameTooLong)
        ));
        assert!(matches!(
            directory.create_partnership("Cluster\nadmin action: forged"),
            Err(DirectoryError::NameNotOneLine)
        ));
        let long = "é".repeat(NAME_CHARS);
        directory.create_partnership(&long).unwrap();
        assert!(matches!(
            directory.add_school(&long, "Hill\ttop", Role::Member, "ws://relay"),
            Err(DirectoryError::NameNotOneLine)
        ));
        assert!(matches!(
            directory.add_school(&long, &"y".repeat(500), Role::Member, "ws://relay"),
            Err(DirectoryError::NameTooLong)
        ));
        assert!(directory.register().unwrap().schools.is_empty());
    }

    #[test]
    fn a_new_token_names_the_partnership_the_school_joined_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut directory = Directory::open(dir.path()).unwrap();
        // Ids chosen so the first partnership's sorts last.
        for (id, name) in [("ffff", "Home cluster"), ("0000", "Joined later")] {
            directory
                .conn
                .execute(
                    "INSERT INTO partnerships (id, name, created_at) VALUES (?1, ?2, 0)",
                    params![id, name],
                )
                .unwrap();
        }
        let url = "ws://relay:7171";
        directory
            .add_school("Home cluster", "Hilltop", Role::Member, url)
            .unwrap();
        directory
            .add_school("Joined later", "Hilltop", Role::Viewer, url)
            .unwrap();
        let rotated = directory.rotate_token("Hilltop", url).unwrap();
        assert_eq!(rotated.partnership, "Home cluster");
        assert_eq!(rotated.role, Role::Member);
        assert!(
            rotated.url.ends_with("?partnership=ffff"),
            "{}",
            rotated.url
        );
        assert!(rotated.line().contains("partnership=ffff"));
    }
}
