//! A school's data directory: its SQLite file and its settings (name,
//! relay address, the Automerge actor its edits are signed with).

use std::path::{Path, PathBuf};

use automerge::ActorId;
use partnerplan_shared::Store;

use crate::error::ClientError;

pub const DATABASE_FILE: &str = "school.sqlite";

/// An opened school data directory.
pub struct School {
    pub dir: PathBuf,
    pub store: Store,
}

impl School {
    /// Creates the data directory for a school.
    pub fn init(dir: &Path, name: &str, relay: Option<&str>) -> Result<School, ClientError> {
        let path = dir.join(DATABASE_FILE);
        if path.exists() {
            let school = School::open(dir)?;
            if school.name()?.is_some() {
                return Err(ClientError::AlreadyInitialized {
                    dir: dir.to_path_buf(),
                });
            }
        }
        let mut school = School {
            dir: dir.to_path_buf(),
            store: Store::open(&path)?,
        };
        school.store.set_meta("school_name", name)?;
        let actor = ActorId::random();
        school.store.set_meta("actor_id", &actor.to_hex_string())?;
        school.store.storage_id()?;
        if let Some(relay) = relay {
            school.set_relay(relay)?;
        }
        Ok(school)
    }

    /// Opens an existing data directory.
    pub fn open(dir: &Path) -> Result<School, ClientError> {
        let path = dir.join(DATABASE_FILE);
        if !path.exists() {
            return Err(ClientError::NotInitialized {
                dir: dir.to_path_buf(),
            });
        }
        let store = Store::open(&path)?;
        let school = School {
            dir: dir.to_path_buf(),
            store,
        };
        if school.name()?.is_none() {
            return Err(ClientError::NotInitialized {
                dir: dir.to_path_buf(),
            });
        }
        Ok(school)
    }

    pub fn name(&self) -> Result<Option<String>, ClientError> {
        Ok(self.store.meta("school_name")?)
    }

    pub fn relay(&self) -> Result<Option<String>, ClientError> {
        Ok(self.store.meta("relay_url")?)
    }

    pub fn set_relay(&mut self, url: &str) -> Result<(), ClientError> {
        let url = url.trim();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(ClientError::BadRelayUrl { url: url.into() });
        }
        self.store.set_meta("relay_url", url)?;
        Ok(())
    }

    /// The actor every edit from this school is recorded under.
    pub fn actor(&self) -> Result<ActorId, ClientError> {
        let hex = self
            .store
            .meta("actor_id")?
            .ok_or_else(|| ClientError::NotInitialized {
                dir: self.dir.clone(),
            })?;
        ActorId::try_from(hex.as_str()).map_err(|_| {
            ClientError::Other(format!(
                "the actor id stored in {} is damaged",
                self.dir.display()
            ))
        })
    }
}
