//! The wall clock, read in one place. The sans-IO core (`repo`,
//! `access`) never calls it: drivers pass time in through events.

/// Seconds since 1970 (0 if the clock is before it).
pub fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since 1970 (0 if the clock is before it): the time the
/// engine hands the core, so what the policy keeps across restarts (when a
/// peer id was last used) compares with the time after one.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
