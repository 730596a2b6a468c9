//! What the sync indicator says, from what the in-process sync records
//! and from the changes the relay has not yet confirmed.

use partnerplan_model::when::format_time;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncState {
    /// Whether this school has joined a partnership (has a relay).
    pub joined: bool,
    pub connected: bool,
    /// Local changes the relay has not confirmed.
    pub unconfirmed: usize,
    /// When everything was last confirmed (seconds since 1970).
    pub last_success: Option<i64>,
    /// What the last failure said, for the indicator's tooltip.
    pub last_error: Option<String>,
}

impl SyncState {
    /// The indicator's class and sentence.
    pub fn describe(&self) -> (&'static str, String) {
        let changes = |n: usize| {
            if n == 1 {
                "1 change".to_string()
            } else {
                format!("{n} changes")
            }
        };
        if !self.joined {
            return (
                "offline",
                "Not joined to a partnership yet: changes stay on this computer".into(),
            );
        }
        if !self.connected {
            return if self.unconfirmed > 0 {
                (
                    "offline",
                    format!(
                        "Offline: {} on this computer only",
                        changes(self.unconfirmed)
                    ),
                )
            } else {
                (
                    "offline",
                    match self.last_success {
                        Some(t) => format!("Offline: everything was shared by {}", at(t)),
                        None => "Offline: nothing shared yet".into(),
                    },
                )
            };
        }
        if self.unconfirmed > 0 {
            return ("sharing", "Sharing…".into());
        }
        (
            "shared",
            match self.last_success {
                Some(t) => format!("Shared with partners at {}", at(t)),
                None => "Shared with partners".into(),
            },
        )
    }
}

/// "14:02" today, or the date and time before.
fn at(seconds: i64) -> String {
    let text = format_time(seconds);
    let today = format_time(crate::status::now_unix());
    match (text.split_once(' '), today.split_once(' ')) {
        (Some((day, time)), Some((today, _))) if day == today => time.to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indicator_speaks_plainly() {
        let mut state = SyncState {
            joined: true,
            connected: false,
            unconfirmed: 3,
            last_success: None,
            last_error: None,
        };
        assert_eq!(
            state.describe().1,
            "Offline: 3 changes on this computer only"
        );
        state.connected = true;
        assert_eq!(state.describe().1, "Sharing…");
        state.unconfirmed = 0;
        state.last_success = Some(crate::status::now_unix());
        assert!(state.describe().1.starts_with("Shared with partners at "));
        assert!(!state.describe().1.contains('-'), "today's time only");
    }
}
