//! A school's data directory: its SQLite file and its settings (name,
//! relay address, the Automerge actor its edits are made under), the
//! relay token and the school's signing key, each in a file only its
//! owner can read.

use std::path::{Path, PathBuf};

use automerge::ActorId;
use ed25519_dalek::SigningKey;
use partnerplan_sync::DocumentId;
use partnerplan_sync::Store;

use crate::error::ClientError;

pub const DATABASE_FILE: &str = "school.sqlite";
/// The relay access token, beside the database, readable only by its owner.
pub const TOKEN_FILE: &str = "relay-token";
/// The school's private Ed25519 signing key (its 32-byte seed, hex),
/// kept like the token: its signatures are sealed with it, and its public
/// half goes to the relay, which publishes it to partners.
pub const SIGNING_KEY_FILE: &str = "signing-key";

/// An opened school data directory.
pub struct School {
    pub dir: PathBuf,
    pub store: Store,
}

impl School {
    /// Creates the data directory for a school.
    pub fn init(dir: &Path, name: &str, relay: Option<&str>) -> Result<School, ClientError> {
        if let Some(relay) = relay {
            check_relay_url(relay)?;
        }
        make_private_dir(dir)?;
        let path = dir.join(DATABASE_FILE);
        // The file may exist without a school in it (the app made it
        // before the school joined): only a named school is set up.
        let mut school = School {
            dir: dir.to_path_buf(),
            store: Store::open(&path)?,
        };
        if school.name()?.is_some() {
            return Err(ClientError::AlreadyInitialized {
                dir: dir.to_path_buf(),
            });
        }
        school.store.set_meta("school_name", name)?;
        let actor = ActorId::random();
        school.store.set_meta("actor_id", &actor.to_hex_string())?;
        school.store.storage_id()?;
        signing_key(dir)?;
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
        let url = check_relay_url(url)?;
        self.store.set_meta("relay_url", url)?;
        Ok(())
    }

    /// Takes an invite from the lead school: the relay address with the
    /// school's secret token (`wss://host/?partnership=…&token=pp_…`).
    /// The address goes in the database; the token in a file only this
    /// user can read. `ca_file` trusts a school's own certificate
    /// authority for a relay with a self-signed certificate.
    pub fn join(&mut self, invite: &str, ca_file: Option<&Path>) -> Result<String, ClientError> {
        let invite = invite.trim();
        let (url, token) = split_invite(invite)?;
        if let Some(ca_file) = ca_file {
            crate::tls::check_ca_file(ca_file)?;
            let absolute = std::fs::canonicalize(ca_file).unwrap_or_else(|_| ca_file.to_path_buf());
            self.store
                .set_meta("relay_ca_file", &absolute.to_string_lossy())?;
        }
        self.set_relay(&url)?;
        write_private(&self.dir.join(TOKEN_FILE), token.as_bytes())?;
        // A school set up before signing keys existed gets one now.
        signing_key(&self.dir)?;
        Ok(url)
    }

    /// Refuses an edit when this school may only read: see [`is_viewer`].
    pub fn editable(&self) -> Result<(), ClientError> {
        if is_viewer(&self.store)? {
            return Err(ClientError::ReadOnly);
        }
        Ok(())
    }

    /// Refuses an edit of the document `id` when this school may only
    /// read it: see [`may_edit`].
    pub fn editable_doc(&self, id: &DocumentId) -> Result<(), ClientError> {
        if !may_edit(&self.store, Some(id))? {
            return Err(if shared_with_us(&self.store, id)? {
                ClientError::SharedReadOnly
            } else {
                ClientError::ReadOnly
            });
        }
        Ok(())
    }

    /// The token from the invite, if the school has joined.
    pub fn token(&self) -> Result<Option<String>, ClientError> {
        let path = self.dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(token) => Ok(Some(token.trim().to_string()).filter(|t| !t.is_empty())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ClientError::Other(format!(
                "could not read {}: {error}",
                path.display()
            ))),
        }
    }

    /// The extra certificate authority trusted for this school's relay.
    pub fn ca_file(&self) -> Result<Option<PathBuf>, ClientError> {
        Ok(self.store.meta("relay_ca_file")?.map(PathBuf::from))
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

/// The school's signing key in `dir`, made (and kept, readable only by
/// this user) the first time it is needed: at `init` or `join`, or for a
/// school set up before signing keys existed.
pub fn signing_key(dir: &Path) -> Result<SigningKey, ClientError> {
    let path = dir.join(SIGNING_KEY_FILE);
    let damaged = || {
        ClientError::Other(format!(
            "the signing key in {} is damaged, so this school cannot sign. Restore the file from a backup of this folder; if there is none, move it aside and sign again to make a new key (signatures made with the old one still check out at partners that know it).",
            path.display()
        ))
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let seed = hex::decode(text.trim()).map_err(|_| damaged())?;
            let seed = <[u8; 32]>::try_from(seed.as_slice()).map_err(|_| damaged())?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            write_private(&path, format!("{}\n", hex::encode(seed)).as_bytes())?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(error) => Err(ClientError::Other(format!(
            "could not read {}: {error}",
            path.display()
        ))),
    }
}

/// Whether this school may only read its partnership's documents, as
/// the relay last said (the sync keeps its role in `meta`). A viewer's
/// edits are refused before anything is written: the relay would never
/// take them, so they would only be a private version that looks real.
pub fn is_viewer(store: &Store) -> Result<bool, partnerplan_sync::StoreError> {
    Ok(store.meta(crate::sync::META_ROLE)?.as_deref() == Some("viewer"))
}

/// Whether this school may change the document `id` (`None`: a new one,
/// which belongs to its home partnership). A document made here for a
/// partnership it views (a local authority's comments to it, kept in the
/// store's claims) is its own to write. Where the relay lists the
/// document, the school's role in the partnerships listing it decides: a
/// member of any of them may, a school that only views them may not (a
/// local authority is a member of its own partnership and views the
/// ones it oversees), and nobody may change one the relay lists as
/// another school's alone (a local authority's comments). A document the
/// relay has not listed (one made here) is the home partnership's:
/// [`is_viewer`].
pub fn may_edit(
    store: &Store,
    id: Option<&DocumentId>,
) -> Result<bool, partnerplan_sync::StoreError> {
    if let Some(id) = id {
        if store.claims()?.iter().any(|(claimed, _)| claimed == id) {
            return Ok(true);
        }
        let partnerships = crate::sync::KnownPartnership::read(
            store.meta(crate::sync::META_PARTNERSHIPS)?.as_deref(),
        );
        let listing: Vec<_> = partnerships
            .iter()
            .filter(|p| p.document_ids().any(|d| d == *id))
            .collect();
        if !listing.is_empty() {
            return Ok(listing.iter().any(|p| !p.viewer() && !p.is_shared(id)));
        }
    }
    Ok(!is_viewer(store)?)
}

/// Whether the relay lists `id` as another school's alone, shared with one
/// of this school's partnerships to read (a local authority's comments).
pub fn shared_with_us(
    store: &Store,
    id: &DocumentId,
) -> Result<bool, partnerplan_sync::StoreError> {
    if store.claims()?.iter().any(|(claimed, _)| claimed == id) {
        return Ok(false);
    }
    let partnerships =
        crate::sync::KnownPartnership::read(store.meta(crate::sync::META_PARTNERSHIPS)?.as_deref());
    Ok(partnerships.iter().any(|p| p.is_shared(id)))
}

/// Makes the school's data folder, readable only by its owner: it holds
/// every document and the relay token. An existing folder keeps its
/// permissions.
pub fn make_private_dir(dir: &Path) -> Result<(), ClientError> {
    let existed = dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| {
        ClientError::Other(format!(
            "could not make the data folder {}: {e}. Choose another with --data.",
            dir.display()
        ))
    })?;
    #[cfg(unix)]
    if !existed {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// The Automerge actor for this school's edits made by `person`: the
/// school's own actor, or one derived from it for each named person, so
/// the document's `actors` map can say for ever which person at which
/// school made each change (one actor per data directory could name only
/// the latest person).
pub fn person_actor(school: &ActorId, person: Option<&str>) -> ActorId {
    let Some(person) = person.map(str::trim).filter(|p| !p.is_empty()) else {
        return school.clone();
    };
    // FNV-1a: stable across versions and machines, no dependency.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in person.to_lowercase().bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut bytes: Vec<u8> = school.to_bytes().iter().take(8).copied().collect();
    bytes.extend_from_slice(&hash.to_be_bytes());
    ActorId::from(bytes)
}

/// A relay address this school may keep: ws:// or wss://, and never one
/// holding the secret token (addresses are shown in status and errors).
fn check_relay_url(url: &str) -> Result<&str, ClientError> {
    let url = url.trim();
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(ClientError::BadRelayUrl { url: url.into() });
    }
    if split_invite(url).is_ok() {
        return Err(ClientError::BadInvite(
            "that address holds this school's secret token; give the whole line to `partnerplan join` instead, which keeps the token private".into(),
        ));
    }
    Ok(url)
}

/// Splits `…?partnership=P&school=S&token=T` into the address without the
/// token (nor the school's name), and the token.
fn split_invite(invite: &str) -> Result<(String, String), ClientError> {
    let invite = partnerplan_sync::invite::parse(invite).map_err(ClientError::BadInvite)?;
    Ok((invite.relay_url, invite.token))
}

/// The school's name an invite carries, if it does.
pub fn invite_school(invite: &str) -> Option<String> {
    partnerplan_sync::invite::parse(invite).ok()?.school
}

/// Writes a secret so that only this user can read it, and makes sure it
/// is on disk.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    let failed =
        |e: std::io::Error| ClientError::Other(format!("could not write {}: {e}", path.display()));
    let temporary = path.with_extension("new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).map_err(failed)?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_splits_into_address_and_token() {
        let (url, token) =
            split_invite("wss://relay.example/?partnership=abc&token=pp_123").unwrap();
        assert_eq!(url, "wss://relay.example/?partnership=abc");
        assert_eq!(token, "pp_123");
        assert!(matches!(
            split_invite("ws://relay/?partnership=abc"),
            Err(ClientError::BadInvite(_))
        ));
        assert!(matches!(
            split_invite("relay/?token=x"),
            Err(ClientError::BadInvite(_))
        ));
    }

    #[test]
    fn a_relay_address_with_a_token_is_refused_so_the_token_stays_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut school = School::init(&dir.path().join("a"), "Hilltop", None).unwrap();
        let error = school
            .set_relay("ws://relay/?partnership=p&token=pp_secret")
            .unwrap_err();
        assert!(error.to_string().contains("partnerplan join"), "{error}");
        assert_eq!(school.relay().unwrap(), None);
        let error = School::init(&dir.path().join("b"), "B", Some("ws://r/?token=pp_x"))
            .err()
            .unwrap();
        assert!(error.to_string().contains("secret token"), "{error}");
        assert!(
            !dir.path().join("b").join(DATABASE_FILE).exists(),
            "nothing was set up"
        );
    }
}
