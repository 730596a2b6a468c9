//! The client's one error type. Every message is a sentence that tells a
//! school's office what happened and what to do.

use std::path::PathBuf;

use partnerplan_model::ModelError;
use partnerplan_sync::StoreError;
use partnerplan_sync::document_id::DocumentIdError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "there is no partnerplan data in {dir}. Run `partnerplan --data {dir} init --school \"Your School\" --relay ws://host:7171` first."
    )]
    NotInitialized { dir: PathBuf },
    #[error("{dir} already holds this school's partnerplan data; nothing was changed.")]
    AlreadyInitialized { dir: PathBuf },
    #[error(
        "no relay is set for this school. Run `partnerplan init --relay ws://host:7171` with your lead school's relay address."
    )]
    NoRelay,
    #[error("that invite cannot be used: {0}.")]
    BadInvite(String),
    #[error(
        "the certificate file {path} cannot be used: {detail}. It must be a PEM file holding your relay's certificate authority."
    )]
    BadCaFile { path: PathBuf, detail: String },
    #[error("“{url}” is not a relay address: it must start with ws:// or wss://.")]
    BadRelayUrl { url: String },
    #[error("{0}. A document URL looks like automerge:4NMNnkMhL8jXrdJ9jamS2tRB2iVn.")]
    BadDocument(#[from] DocumentIdError),
    #[error(
        "this school has no copy of {url} yet. Run `partnerplan open {url}` and then `partnerplan sync` to fetch it from the relay."
    )]
    UnknownDocument { url: String },
    #[error(
        "“{path}” is not a field name: use names separated by dots, such as status or actions.0.status."
    )]
    BadField { path: String },
    #[error("cannot edit {path}: {reason}.")]
    BadEdit { path: String, reason: String },
    #[error(
        "your school can read its partnership's documents but not change them, so nothing was changed: the relay would not share a viewer's changes. Ask your lead school if your school should be a member."
    )]
    ReadOnly,
    #[error(
        "this document is another school's, shared with your partnership to read (the local authority's comments): your school can read it but not change it, so nothing was changed."
    )]
    SharedReadOnly,
    #[error("{0}")]
    Store(#[from] StoreError),
    /// What the document model refused, in its own sentence.
    #[error("{0}")]
    Model(#[from] ModelError),
    /// The document named by `--partnership` cannot list a new one.
    #[error("{url}, given to --partnership, cannot list the new document: {error}")]
    Listing { url: String, error: ModelError },
    /// An import that stopped before writing anything: `reason` says
    /// where and why.
    #[error("{reason} Nothing was imported.")]
    NotImported { reason: String },
    #[error(
        "the relay at {url} could not be reached ({detail}). Your edits are kept here and will be sent when it can be reached."
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "the relay at {url} presented a certificate this computer does not trust ({detail}). If your relay uses its own certificate authority, run `partnerplan join <invite> --ca-file <the authority's PEM file>`. Your edits are kept here."
    )]
    Untrusted { url: String, detail: String },
    #[error("the relay at {url} closed the connection: {reason}. Your edits are kept here.")]
    Refused { url: String, reason: String },
    #[error(
        "syncing did not finish within {seconds} seconds; still waiting for {waiting}. Your edits are kept here and will be sent next time."
    )]
    Timeout { seconds: u64, waiting: String },
    /// The relay refused this school's changes to some documents for
    /// good (`reason` is its sentence): saying "they will be sent next
    /// time" would be false.
    #[error(
        "the relay refused this school's changes to {documents}, so they have not been shared, and syncing again will not share them (they stay on this computer). The relay said: {reason}."
    )]
    ChangesRefused { documents: String, reason: String },
    #[error("{0}")]
    Other(String),
}

impl From<automerge::AutomergeError> for ClientError {
    fn from(error: automerge::AutomergeError) -> Self {
        ClientError::Other(format!("the document could not be changed: {error}"))
    }
}
