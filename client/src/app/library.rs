//! The app's documents: each one the school holds, kept in memory between
//! edits (a [`Held`] copy, bounded in bytes), read into the model's views
//! for pages, and edited through the store so every edit is on disk
//! before the page hears it was saved.
//!
//! Changes from elsewhere (partners through the sync, the command line in
//! another process) reach a held copy through [`Store::catch_up`], which
//! every read runs first: what a page shows is never older than the file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use automerge::{ActorId, AutoCommit, ChangeHash, ReadDoc};
use partnerplan_model::history::{Authors, RelayNames};
use partnerplan_model::signing::{KnownKeys, Signer};
use partnerplan_model::{Author, doc, read};
use partnerplan_model::{DocView, Kind, ModelError};
use partnerplan_sync::store::{Held, Write};
use partnerplan_sync::{DocumentId, Store, StoreError};
use tokio::sync::broadcast;

use crate::error::ClientError;
use crate::school::{DATABASE_FILE, person_actor};
use crate::sync::{KnownPartnership, META_PARTNERSHIPS};

/// The most stored bytes of documents kept in memory at once; past it the
/// least recently used are dropped (and read again when next needed).
pub const HELD_BYTES: usize = 64 * 1024 * 1024;

/// One document as the home page lists it.
#[derive(Debug, Clone)]
pub struct Summary {
    pub id: DocumentId,
    pub kind: Option<Kind>,
    pub title: String,
    /// Who made the latest change, and when (seconds since 1970).
    pub last_change: Option<(String, i64)>,
}

/// The school's documents, shared by every request of the app.
pub struct Library {
    inner: Mutex<Inner>,
    changed: broadcast::Sender<DocumentId>,
}

struct Inner {
    store: Store,
    held: HashMap<DocumentId, Entry>,
    held_bytes: usize,
    clock: u64,
    /// Each document's count of changes the relay has not acknowledged,
    /// with what it was counted from (the document's newest chunk and a
    /// digest of its sync state with the relay): the indicator asks every
    /// second, and a document neither changed nor synced since is not
    /// read again. One entry (some 60 bytes) per document on disk.
    unconfirmed: HashMap<DocumentId, (i64, u64, usize)>,
}

struct Entry {
    held: Held,
    used: u64,
}

/// Why an edit from a page was not made: the model's sentence, or the store's.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// This school may only read its partnership's documents: an edit
    /// made here would never be shared, so none is made.
    #[error(
        "your school can read this partnership's documents but not change them, so nothing was changed. Ask your lead school if your school should be a member."
    )]
    ReadOnly,
    /// Another school's document shared with the partnership to read
    /// (the local authority's comments).
    #[error(
        "this is the local authority's document, shared with your partnership to read: your school can read it but not change it, so nothing was changed."
    )]
    Shared,
    #[error(
        "this computer holds no such document, so nothing was changed. It may not have arrived from your partners yet: go back to the list of documents."
    )]
    NoSuchDocument,
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl EditError {
    /// The sentence for the app's pages (the model's own, without
    /// commands to type).
    pub fn for_page(&self) -> String {
        match self {
            EditError::Model(error) => error.for_page(),
            other => other.to_string(),
        }
    }
}

impl Library {
    pub fn open(dir: &Path) -> Result<Library, ClientError> {
        let store = Store::open(dir.join(DATABASE_FILE))?;
        let (changed, _) = broadcast::channel(256);
        Ok(Library {
            inner: Mutex::new(Inner {
                store,
                held: HashMap::new(),
                held_bytes: 0,
                clock: 0,
                unconfirmed: HashMap::new(),
            }),
            changed,
        })
    }

    /// Hears which documents change (an edit here, or one that arrived).
    pub fn subscribe(&self) -> broadcast::Receiver<DocumentId> {
        self.changed.subscribe()
    }

    /// Says a document changed elsewhere (the sync stored a partner's
    /// change, or another process wrote it): pages showing it refresh.
    pub fn changed_elsewhere(&self, id: DocumentId) {
        let _ = self.changed.send(id);
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.lock().store.meta(key)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lock().store.set_meta(key, value)
    }

    /// The last chunk stored in the file, by any process.
    pub fn last_stored(&self) -> Result<i64, StoreError> {
        self.lock().store.last_chunk_seq()
    }

    /// The documents stored since chunk `seq`, and the last chunk now.
    pub fn stored_after(&self, seq: i64) -> Result<(Vec<DocumentId>, i64), StoreError> {
        let chunks = self.lock().store.chunks_after(seq)?;
        let last = chunks.last().map_or(seq, |c| c.seq);
        let mut documents: Vec<DocumentId> = chunks.into_iter().map(|c| c.document_id).collect();
        documents.sort();
        documents.dedup();
        Ok((documents, last))
    }

    /// Starts keeping a document in sync (a partner's, newly listed).
    pub fn track(&self, id: DocumentId) -> Result<(), StoreError> {
        self.lock()
            .store
            .write(&[Write::Track { document_id: id }])
            .map(|_| ())
    }

    /// The school's partnerships as the relay last listed them.
    pub fn partnerships(&self) -> Vec<KnownPartnership> {
        KnownPartnership::read(self.meta(META_PARTNERSHIPS).ok().flatten().as_deref())
    }

    /// Whether this school may change the document: not where it is only
    /// a viewer of the partnership the relay lists it in (a local
    /// authority reads the partnerships it views and writes only its
    /// own), and not at all where its home partnership is one it views.
    /// A document the relay has not listed (one made here) is the home
    /// partnership's.
    pub fn can_edit(&self, id: &DocumentId) -> bool {
        self.writable(Some(id)).is_ok()
    }

    /// The documents `ids` that this computer holds and that are of one
    /// of `kinds`, read into views under one lock. Documents of other
    /// kinds are not read beyond their kind.
    pub fn read_kinds(
        &self,
        ids: &[DocumentId],
        kinds: &[Kind],
    ) -> Result<Vec<(DocumentId, DocView)>, ClientError> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for id in ids {
            let read = inner.with(id, |doc| match doc::kind_of(doc) {
                Ok((kind, _)) if kinds.contains(&kind) => read::read(doc).ok(),
                _ => None,
            })?;
            if let Some(Some(view)) = read {
                out.push((*id, view));
            }
        }
        Ok(out)
    }

    /// The ids of every document this computer holds.
    pub fn document_ids(&self) -> Result<Vec<DocumentId>, ClientError> {
        Ok(self.lock().store.document_ids()?)
    }

    /// Every document this school holds, newest change first.
    pub fn list(&self) -> Result<Vec<Summary>, ClientError> {
        let mut inner = self.lock();
        let ids = inner.store.document_ids()?;
        let names = inner.store.actor_names()?;
        let mut out = Vec::new();
        for id in ids {
            let summary = inner.with(&id, |doc| {
                let (kind, title) = match doc::kind_of(doc) {
                    Ok((kind, _)) => (Some(kind), title_of(doc)),
                    Err(_) => (None, title_of(doc)),
                };
                Summary {
                    id,
                    kind,
                    title,
                    last_change: last_change(doc, &names),
                }
            })?;
            if let Some(summary) = summary {
                out.push(summary);
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.last_change.as_ref().map(|(_, t)| *t)));
        Ok(out)
    }

    /// The document as a page shows it, and the version it shows.
    pub fn read(&self, id: &DocumentId) -> Result<Option<(DocView, Vec<ChangeHash>)>, ClientError> {
        let mut inner = self.lock();
        let read = inner.with(id, |doc| {
            let view = read::read(doc);
            (view, doc.get_heads())
        })?;
        match read {
            None => Ok(None),
            Some((Ok(view), heads)) => Ok(Some((view, heads))),
            Some((Err(error), _)) => Err(ClientError::Other(error.to_string())),
        }
    }

    /// The schools the relay named for actors, for history.
    pub fn actor_names(&self) -> Result<RelayNames, StoreError> {
        self.lock().store.actor_names()
    }

    /// A document's title, as people name it (empty if it has none).
    pub fn title(&self, id: &DocumentId) -> Result<Option<String>, ClientError> {
        Ok(self.lock().with(id, |doc| title_of(doc))?)
    }

    /// Runs `f` on the held document (for history and other reads).
    pub fn with_doc<T>(
        &self,
        id: &DocumentId,
        f: impl FnOnce(&mut AutoCommit) -> T,
    ) -> Result<Option<T>, ClientError> {
        Ok(self.lock().with(id, f)?)
    }

    /// Makes one edit as `who` at this school, against the version `at`
    /// (the one the page showed) if given, and saves it. Returns what the
    /// edit returned and the change made (the version right after it).
    pub fn edit<T>(
        &self,
        id: &DocumentId,
        base: &ActorId,
        who: &Author,
        at: Option<&[ChangeHash]>,
        message: String,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T, ModelError>,
    ) -> Result<(T, Option<ChangeHash>), EditError> {
        self.writable(Some(id))?;
        let actor = person_actor(base, who.person.as_deref());
        let result = {
            let mut inner = self.lock();
            if !inner.ensure(id)? {
                return Err(EditError::NoSuchDocument);
            }
            let Inner { store, held, .. } = &mut *inner;
            let Some(entry) = held.get_mut(id) else {
                return Err(EditError::NoSuchDocument);
            };
            store.change_held(id, &mut entry.held, at, &actor, Some(message), |doc| {
                doc::kind_of(doc).map_err(EditError::from)?;
                edit(doc).map_err(EditError::from)
            })?
        };
        let _ = self.changed.send(*id);
        Ok(result)
    }

    /// The comments this school wrote to a partnership it views (by id):
    /// its own document of them, if it made one here.
    pub fn comments_to(&self, partnership: &str) -> Result<Option<DocumentId>, ClientError> {
        crate::comments::document_for(&self.lock().store, partnership)
    }

    /// Writes one comment to a partnership this school views
    /// (`crate::comments::write`), and says the document changed.
    pub fn comment(
        &self,
        partnership: &KnownPartnership,
        base: &ActorId,
        who: &Author,
        values: &[(String, String)],
    ) -> Result<DocumentId, ClientError> {
        let id = crate::comments::write(&mut self.lock().store, base, partnership, who, values)?;
        let _ = self.changed.send(id);
        Ok(id)
    }

    /// Makes a new document with `create`, saved before this returns.
    pub fn create(
        &self,
        base: &ActorId,
        who: &Author,
        message: String,
        create: impl FnOnce(&mut AutoCommit) -> Result<(), ModelError>,
    ) -> Result<DocumentId, EditError> {
        self.writable(None)?;
        let id = DocumentId::random();
        let actor = person_actor(base, who.person.as_deref());
        self.lock()
            .store
            .change(&id, &actor, Some(message), |doc| {
                create(doc).map_err(EditError::from)
            })?;
        let _ = self.changed.send(id);
        Ok(id)
    }

    /// How many local changes the relay (whose storage is
    /// `relay_storage`) has not yet confirmed, over every document.
    pub fn unconfirmed(&self, relay_storage: Option<&str>) -> Result<usize, ClientError> {
        let mut inner = self.lock();
        let seqs = inner.store.last_seq_by_document()?;
        let states = match relay_storage {
            Some(storage) => inner.store.sync_states_with(storage)?,
            None => HashMap::new(),
        };
        inner.unconfirmed.retain(|id, _| seqs.contains_key(id));
        let mut total = 0;
        for (id, seq) in seqs {
            let state = states.get(&id).map(Vec::as_slice).unwrap_or_default();
            let digest = digest(state);
            if let Some(&(counted_seq, counted_digest, count)) = inner.unconfirmed.get(&id)
                && counted_seq == seq
                && counted_digest == digest
            {
                total += count;
                continue;
            }
            let shared = automerge::sync::State::decode(state)
                .map(|state| state.shared_heads)
                .unwrap_or_default();
            let count = inner
                .with(&id, |doc| doc.get_changes(&shared).len())?
                .unwrap_or(0);
            inner.unconfirmed.insert(id, (seq, digest, count));
            total += count;
        }
        Ok(total)
    }

    /// How this school signs (its key is in `dir`).
    pub fn signer(&self, dir: &Path) -> Result<Signer, ClientError> {
        crate::signatures::signer(&self.lock().store, dir)
    }

    /// The keys every signature shown is checked against.
    pub fn known_keys(&self, dir: &Path) -> Result<KnownKeys, ClientError> {
        crate::signatures::known_keys(&self.lock().store, dir)
    }

    /// A viewer's edits are refused here, before anything is written,
    /// so a viewer never holds a private version that looks real: of a
    /// new document, by its role at home; of `id`, by its role where the
    /// relay lists it (`school::may_edit`).
    fn writable(&self, id: Option<&DocumentId>) -> Result<(), EditError> {
        let inner = self.lock();
        if !crate::school::may_edit(&inner.store, id)? {
            return Err(match id {
                Some(id) if crate::school::shared_with_us(&inner.store, id)? => EditError::Shared,
                _ => EditError::ReadOnly,
            });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic in one request must not stop every later one: the held
        // copies are caught up with the file before each use anyway.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Makes sure the document is held and up to date. Returns whether
    /// the school holds it at all.
    fn ensure(&mut self, id: &DocumentId) -> Result<bool, StoreError> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(entry) = self.held.get_mut(id) {
            let before = entry.held.bytes;
            self.store.catch_up(id, &mut entry.held)?;
            entry.used = clock;
            self.held_bytes += entry.held.bytes - before;
        } else {
            let Some(held) = self.store.hold(id)? else {
                return Ok(false);
            };
            self.held_bytes += held.bytes;
            self.held.insert(*id, Entry { held, used: clock });
        }
        self.evict(id);
        Ok(true)
    }

    /// Drops the least recently used copies past the bound, never `keep`.
    fn evict(&mut self, keep: &DocumentId) {
        while self.held_bytes > HELD_BYTES && self.held.len() > 1 {
            let Some(oldest) = self
                .held
                .iter()
                .filter(|(id, _)| *id != keep)
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(entry) = self.held.remove(&oldest) {
                self.held_bytes -= entry.held.bytes;
            }
        }
    }

    fn with<T>(
        &mut self,
        id: &DocumentId,
        f: impl FnOnce(&mut AutoCommit) -> T,
    ) -> Result<Option<T>, StoreError> {
        if !self.ensure(id)? {
            return Ok(None);
        }
        Ok(self.held.get_mut(id).map(|e| f(&mut e.held.doc)))
    }
}

/// A digest of a sync state, to tell whether it changed.
fn digest(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn title_of(doc: &AutoCommit) -> String {
    match doc.get(automerge::ROOT, "title") {
        Ok(Some((automerge::Value::Object(automerge::ObjType::Text), text))) => {
            doc.text(&text).unwrap_or_default()
        }
        Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
            automerge::ScalarValue::Str(s) => s.to_string(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// The newest of the document's latest changes: who made it, and when.
fn last_change(doc: &mut AutoCommit, relay_names: &RelayNames) -> Option<(String, i64)> {
    let heads = doc.get_heads();
    let authors = Authors::of(doc, relay_names);
    heads
        .iter()
        .filter_map(|h| doc.get_change_by_hash(h))
        .max_by_key(|c| c.timestamp())
        .map(|change| {
            let who = match authors.of_actor(&change.actor_id().to_hex_string()) {
                (Some(person), Some(school)) => format!("{person} ({school})"),
                (None, Some(school)) => school,
                _ => "another school".to_string(),
            };
            (who, change.timestamp())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use partnerplan_sync::store::Write;

    fn edit(library: &Library, id: &DocumentId, value: &str) {
        let actor = automerge::ActorId::from(&[7u8; 16][..]);
        library
            .lock()
            .store
            .change(id, &actor, None, |doc| {
                doc.put(automerge::ROOT, "title", value).unwrap();
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    /// Tells the library the relay has everything up to `heads`.
    fn relay_has(library: &Library, id: &DocumentId, heads: Vec<automerge::ChangeHash>) {
        let mut state = automerge::sync::State::new();
        state.shared_heads = heads;
        library
            .lock()
            .store
            .write(&[Write::SyncState {
                document_id: *id,
                storage_id: "relay".into(),
                state: state.encode(),
            }])
            .unwrap();
    }

    fn heads(library: &Library, id: &DocumentId) -> Vec<automerge::ChangeHash> {
        library
            .lock()
            .with(id, |doc| doc.get_heads())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_count_of_unshared_changes_follows_edits_and_the_relays_acknowledgements() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path()).unwrap();
        let (a, b) = (DocumentId::random(), DocumentId::random());
        assert_eq!(library.unconfirmed(Some("relay")).unwrap(), 0);
        edit(&library, &a, "one");
        edit(&library, &a, "two");
        edit(&library, &b, "three");
        assert_eq!(library.unconfirmed(Some("relay")).unwrap(), 3);
        assert_eq!(library.unconfirmed(None).unwrap(), 3, "no relay yet");
        // Asked again with nothing changed: the same answer (from memory).
        assert_eq!(library.unconfirmed(Some("relay")).unwrap(), 3);

        relay_has(&library, &a, heads(&library, &a));
        assert_eq!(library.unconfirmed(Some("relay")).unwrap(), 1, "only b's");
        edit(&library, &a, "four");
        assert_eq!(library.unconfirmed(Some("relay")).unwrap(), 2);
        relay_has(&library, &b, heads(&library, &b));
        relay_has(&library, &a, heads(&library, &a));
        assert_eq!(library.unconfirmed(Some("relay")).unwrap(), 0);
        // Another relay (a restored or new one) has acknowledged nothing.
        assert_eq!(library.unconfirmed(Some("another relay")).unwrap(), 4);
    }
}
