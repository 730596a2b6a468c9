//! Authenticating a connection as it opens: its token names a school in
//! the register, and its address may name the partnership it creates
//! documents in. That is all the HTTP side decides. What an open
//! connection may do with each document is decided inside the engine by
//! [`PartnershipPolicy`](partnerplan_sync::access::PartnershipPolicy),
//! which checks the grant again as the connection registers, and cuts it
//! if the register later takes its rights away.

use std::sync::Arc;

use partnerplan_sync::access::{Grant, Register};
use partnerplan_sync::engine::EngineSender;
use tokio::sync::watch;

use crate::directory::hash_token;

/// What the HTTP side needs to authenticate: the register the engine last
/// published, and the engine, to ask it to look for a newer one.
#[derive(Clone)]
pub struct Access {
    engine: EngineSender,
    register: watch::Receiver<Arc<Register>>,
}

impl Access {
    pub fn new(engine: EngineSender, register: watch::Receiver<Arc<Register>>) -> Access {
        Access { engine, register }
    }

    /// Decides whether a connection presenting `token` may open, and as
    /// whom. `Err` is the sentence the connection is refused with.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        partnership: Option<&str>,
    ) -> Result<Grant, String> {
        let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
            return Err("this relay needs an access token: connect with the invite your lead school gave you (its address ends in &token=…)".into());
        };
        let credential = hash_token(token);
        // The register may have changed a moment ago (a school invited, a
        // token rotated): one small query makes sure we judge by the latest.
        self.engine.refresh_register().await;
        let register = self.register.borrow().clone();
        register.authenticate(&credential, partnership)
    }
}
