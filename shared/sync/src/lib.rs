//! What the partnerplan relay and client share to sync: document ids, the
//! automerge-repo wire protocol, the sans-IO sync core, the SQLite
//! document store and the engine thread that drives the core against the
//! store. It knows nothing of what the documents say (that is
//! `partnerplan-model`).

pub mod access;
pub mod authors;
pub mod chunk_size;
pub mod clock;
pub mod compact;
pub mod document_id;
pub mod engine;
pub mod invite;
pub mod message;
mod pacing;
pub mod peer_text;
pub mod repo;
mod resting;
pub mod store;

pub use document_id::DocumentId;
pub use message::{Message, PeerId, PeerMetadata};
pub use repo::{AccessPolicy, ConnId, Effect, Event, Permission, Repo, RepoConfig, SyncProgress};
pub use store::{Store, StoreError};
