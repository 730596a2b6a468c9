//! What the school's app (`client/src/app`) and the relay's admin pages
//! (`server/src/admin`) share to guard a page served over HTTP: a
//! password kept only as an Argon2id hash, login sessions, a secret
//! token per page, and the check that a change comes from the page's own
//! origin. Pure functions and small state; no HTTP types, so both servers
//! call them from their own guard.

pub mod guard;
pub mod password;
