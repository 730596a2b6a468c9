//! The password that guards the app when it is served beyond this
//! computer (`--listen` on the school's network): kept only as an
//! Argon2id hash in the school's database, checked at the login page,
//! and remembered by a session cookie for this run of the app.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;

/// The `meta` key holding the hash.
pub const META_PASSWORD: &str = "app.password";

/// The most sessions kept at once; the oldest go first past it.
const MAX_SESSIONS: usize = 256;

/// Only the computer itself may use the app without a password.
pub fn needs_password(listen: &SocketAddr) -> bool {
    !listen.ip().is_loopback()
}

pub fn hash(password: &str) -> Result<String, String> {
    if password.chars().count() < 10 {
        return Err(
            "choose a password of at least 10 characters; a short sentence is easy to remember"
                .into(),
        );
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("the password could not be kept: {e}"))
}

pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Who has logged in during this run of the app.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<Vec<String>>,
}

impl Sessions {
    pub fn start(&self) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_SESSIONS {
            open.remove(0);
        }
        open.push(token.clone());
        token
    }

    pub fn valid(&self, token: &str) -> bool {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let known: HashSet<&str> = open.iter().map(String::as_str).collect();
        known.contains(token)
    }
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

    #[test]
    fn a_password_is_kept_as_a_hash_and_checked() {
        assert!(hash("short").is_err());
        let stored = hash("the hall is booked for Tuesday").unwrap();
        assert!(!stored.contains("hall"));
        assert!(verify("the hall is booked for Tuesday", &stored));
        assert!(!verify("the hall is booked for Monday", &stored));
        assert!(!verify("anything", "not a hash"));
    }
}
