//! The relay's core (built from its database as `Relay::start` builds it,
//! with the relay's real access policy) fed arbitrary frames on four
//! schools' connections (members and a viewer of two partnerships, one
//! school in both with a different role in each), with the clock moving,
//! connections dropping and the register changing. Besides never
//! panicking or hanging, `Session` checks every effect: no document,
//! presence, listing or actor's school reaches a school outside its
//! partnership; changes are kept only from a member, made under its own
//! school's actors; every frame sent can be read; every connection closed
//! is told why; nothing stays in memory once everyone has left.

#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use partnerplan_fuzz::{Relay, Session};

fn relay() -> &'static Mutex<Relay> {
    static RELAY: OnceLock<Mutex<Relay>> = OnceLock::new();
    RELAY.get_or_init(|| Mutex::new(Relay::new()))
}

fuzz_target!(|data: &[u8]| {
    let mut relay = relay().lock().unwrap_or_else(|e| e.into_inner());
    Session::new(&mut relay).run(data);
});
