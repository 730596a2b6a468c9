//! The one place that decides whether a connection may see or change a
//! document. Every `request`, `sync` and `ephemeral` passes through
//! [`RelayPolicy::may_access`].
//!
//! Today every connected school may see every document, as with the
//! reference automerge-repo sync server; the partnerships issue replaces
//! this with schools, partnerships and roles.

use partnerplan_shared::{AccessPolicy, ConnId, DocumentId, Permission};

pub struct RelayPolicy;

impl AccessPolicy for RelayPolicy {
    fn permission(&self, _conn: ConnId, _document_id: &DocumentId) -> Permission {
        Permission::ReadWrite
    }
}
