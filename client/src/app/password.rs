//! The password that guards the app when it is served beyond this
//! computer (`--listen` on the school's network): kept only as an
//! Argon2id hash in the school's database, checked at the login page,
//! and remembered by a session cookie for this run of the app. Hashing,
//! checking and sessions are `partnerplan-web`'s, shared with the relay's
//! admin pages.

use std::net::SocketAddr;

pub use partnerplan_web::password::{PasswordCheck, PasswordGate, Sessions, hash};

/// The `meta` key holding the hash.
pub const META_PASSWORD: &str = "app.password";

/// Only the computer itself may use the app without a password.
pub fn needs_password(listen: &SocketAddr) -> bool {
    partnerplan_web::password::needs_password(listen.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_computer_goes_without_a_password() {
        assert!(!needs_password(&"127.0.0.1:7272".parse().unwrap()));
        assert!(!needs_password(&"[::1]:7272".parse().unwrap()));
        assert!(needs_password(&"0.0.0.0:7272".parse().unwrap()));
        assert!(needs_password(&"192.168.1.20:7272".parse().unwrap()));
    }
}
