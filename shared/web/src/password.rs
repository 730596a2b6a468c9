//! A password that guards pages served beyond this computer: kept only as
//! an Argon2id hash, checked at a login page, and remembered by a session
//! cookie for this run of the program.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::guard::{constant_time_eq, new_secret};

/// The most sessions kept at once; the oldest go first past it.
const MAX_SESSIONS: usize = 256;

/// Wrong passwords allowed a minute before logins pause.
pub const WRONG_PASSWORDS_PER_MINUTE: usize = 10;
const WRONG_PASSWORD_WINDOW: Duration = Duration::from_secs(60);

/// The shortest password accepted, in characters.
pub const MIN_CHARS: usize = 10;

/// Only the computer itself may be served without a password.
pub fn needs_password(ip: IpAddr) -> bool {
    !ip.is_loopback()
}

/// The Argon2id hash (PHC string, salted) of a new password; a sentence
/// if the password is too short.
pub fn hash(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_CHARS {
        return Err(format!(
            "choose a password of at least {MIN_CHARS} characters; a short sentence is easy to remember"
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("the password could not be kept: {e}"))
}

/// Whether `password` is the one `stored` is the hash of. Slow on purpose
/// (tens of milliseconds): call it off the async threads.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Who has logged in during this run: at most [`MAX_SESSIONS`] session
/// tokens (64 bytes each), the oldest forgotten first.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<VecDeque<String>>,
}

impl Sessions {
    /// A new session; its token goes in the cookie.
    pub fn start(&self) -> String {
        let token = new_secret();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_SESSIONS {
            open.pop_front();
        }
        open.push_back(token.clone());
        token
    }

    pub fn valid(&self, token: &str) -> bool {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.iter().any(|known| constant_time_eq(known, token))
    }

    /// Logs a session out.
    pub fn end(&self, token: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|known| !constant_time_eq(known, token));
    }

    /// Logs every session out (the password changed).
    pub fn end_all(&self) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// What a password given at a login page turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Right,
    Wrong,
    /// Too many wrong ones in the last minute: not even checked.
    TooMany,
}

/// The wrong passwords of the last minute, at most
/// [`WRONG_PASSWORDS_PER_MINUTE`] of them: whether another guess may be
/// checked now. Pure: the caller says what time it is.
#[derive(Default)]
pub struct WrongPasswords {
    times: VecDeque<Instant>,
}

impl WrongPasswords {
    pub fn may_try(&mut self, now: Instant) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > WRONG_PASSWORD_WINDOW)
        {
            self.times.pop_front();
        }
        self.times.len() < WRONG_PASSWORDS_PER_MINUTE
    }

    pub fn wrong(&mut self, now: Instant) {
        if self.times.len() >= WRONG_PASSWORDS_PER_MINUTE {
            self.times.pop_front();
        }
        self.times.push_back(now);
    }
}

/// Where every password given at a login page is checked: one at a time
/// (each check takes tens of milliseconds and some 19 MiB, so a flood of
/// guesses cannot exhaust the computer, and each is counted before the
/// next is checked), and none once [`WRONG_PASSWORDS_PER_MINUTE`] wrong
/// ones came in the last minute.
pub struct PasswordGate {
    turn: tokio::sync::Semaphore,
    wrong: Mutex<WrongPasswords>,
}

impl Default for PasswordGate {
    fn default() -> Self {
        PasswordGate {
            turn: tokio::sync::Semaphore::new(1),
            wrong: Mutex::new(WrongPasswords::default()),
        }
    }
}

impl PasswordGate {
    /// Checks `given` against the hash `stored`, off the async threads.
    pub async fn check(&self, given: String, stored: String) -> PasswordCheck {
        let Ok(_turn) = self.turn.acquire().await else {
            return PasswordCheck::TooMany;
        };
        if !self.wrong().may_try(Instant::now()) {
            return PasswordCheck::TooMany;
        }
        let right = tokio::task::spawn_blocking(move || verify(&given, &stored))
            .await
            .unwrap_or(false);
        if right {
            PasswordCheck::Right
        } else {
            self.wrong().wrong(Instant::now());
            PasswordCheck::Wrong
        }
    }

    fn wrong(&self) -> std::sync::MutexGuard<'_, WrongPasswords> {
        self.wrong.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_computer_goes_without_a_password() {
        assert!(!needs_password("127.0.0.1".parse().unwrap()));
        assert!(!needs_password("::1".parse().unwrap()));
        assert!(needs_password("0.0.0.0".parse().unwrap()));
        assert!(needs_password("192.168.1.20".parse().unwrap()));
    }

    #[test]
    fn a_password_is_kept_as_a_hash_and_checked() {
        assert!(hash("short").is_err());
        let stored = hash("the hall is booked for Tuesday").unwrap();
        assert!(!stored.contains("hall"));
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("the hall is booked for Tuesday", &stored));
        assert!(!verify("the hall is booked for Monday", &stored));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn sessions_are_bounded_and_end() {
        let sessions = Sessions::default();
        let first = sessions.start();
        assert!(sessions.valid(&first));
        for _ in 0..MAX_SESSIONS {
            sessions.start();
        }
        assert!(!sessions.valid(&first), "the oldest is forgotten");
        let last = sessions.start();
        sessions.end(&last);
        assert!(!sessions.valid(&last));
        assert!(!sessions.valid(""));
        let (a, b) = (sessions.start(), sessions.start());
        sessions.end_all();
        assert!(!sessions.valid(&a) && !sessions.valid(&b));
    }

    #[test]
    fn ten_wrong_passwords_in_a_minute_pause_the_checks_for_the_rest_of_it() {
        let mut wrong = WrongPasswords::default();
        let start = Instant::now();
        for i in 0..WRONG_PASSWORDS_PER_MINUTE {
            assert!(wrong.may_try(start + Duration::from_secs(i as u64)));
            wrong.wrong(start + Duration::from_secs(i as u64));
        }
        assert!(!wrong.may_try(start + Duration::from_secs(30)));
        assert!(!wrong.may_try(start + Duration::from_secs(60)));
        // A minute after the first, one more guess may be checked.
        assert!(wrong.may_try(start + Duration::from_secs(61)));
        wrong.wrong(start + Duration::from_secs(61));
        assert!(!wrong.may_try(start + Duration::from_secs(61)));
    }
}
