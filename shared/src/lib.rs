//! What the partnerplan relay and client share: document ids, the
//! automerge-repo wire protocol, the sans-IO sync core and the SQLite
//! document store.

pub mod document_id;
pub mod message;
pub mod repo;

pub use document_id::DocumentId;
pub use message::{Message, PeerId, PeerMetadata};
pub use repo::{AccessPolicy, ConnId, Effect, Event, Permission, Repo, RepoConfig, SyncProgress};
pub mod store;
pub use store::{Store, StoreError};
pub mod engine;
pub mod model;
