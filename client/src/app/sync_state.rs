//! What the sync indicator says, from what the in-process sync records
//! and from the changes the relay has not yet confirmed.

use crate::status::Receiving;

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
    /// The titles of documents whose changes the relay refused: they
    /// are not shared, and will not be by syncing again.
    pub refused: Vec<String>,
    /// The titles of documents whose changes the relay could not take
    /// for now (it was busy, or the school's daily allowance ran out):
    /// they go again by themselves.
    pub held: Vec<String>,
    /// While the partnership's documents are still arriving: how many
    /// documents and bytes of those the relay listed ("12 of 40
    /// documents, 1.2 of 5.0 MB").
    pub receiving: Option<Receiving>,
}

impl SyncState {
    /// The indicator's class and sentence, and the moment it ends with
    /// (shown in the reader's own time by the page).
    pub fn describe(&self) -> (&'static str, String, Option<i64>) {
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
                None,
            );
        }
        if !self.refused.is_empty() {
            let titles: Vec<String> = self.refused.iter().map(|t| format!("“{t}”")).collect();
            return (
                "refused",
                format!(
                    "Not shared: the relay refused this school's changes to {}, so they stay on this computer. Ask your lead school for help",
                    titles.join(", ")
                ),
                None,
            );
        }
        if !self.held.is_empty() {
            let titles: Vec<String> = self.held.iter().map(|t| format!("“{t}”")).collect();
            return (
                "offline",
                format!(
                    "Waiting: the relay cannot take this school's changes to {} just now, so they stay on this computer and are sent again by themselves",
                    titles.join(", ")
                ),
                None,
            );
        }
        if let Some(receiving) = self.receiving.filter(|r| !r.complete()) {
            return if self.connected {
                (
                    "sharing",
                    format!("Receiving {}", receiving.describe()),
                    None,
                )
            } else {
                (
                    "offline",
                    format!(
                        "Offline: {} received so far; the rest follow when the line is back",
                        receiving.describe()
                    ),
                    None,
                )
            };
        }
        if !self.connected {
            return if self.unconfirmed > 0 {
                (
                    "offline",
                    format!(
                        "Offline: {} on this computer only",
                        changes(self.unconfirmed)
                    ),
                    None,
                )
            } else {
                match self.last_success {
                    Some(t) => (
                        "offline",
                        "Offline: everything was shared by".into(),
                        Some(t),
                    ),
                    None => ("offline", "Offline: nothing shared yet".into(), None),
                }
            };
        }
        if self.unconfirmed > 0 {
            return ("sharing", "Sharing…".into(), None);
        }
        match self.last_success {
            Some(t) => ("shared", "Shared with partners at".into(), Some(t)),
            // Connected, but never yet in sync: a first join before the
            // relay has listed anything is not "shared".
            None => ("sharing", "Sharing…".into(), None),
        }
    }

    /// Whether `seconds` falls today (UTC), so the time alone says it.
    pub fn today(&self, seconds: i64) -> bool {
        seconds.div_euclid(86_400) == crate::status::now_unix().div_euclid(86_400)
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
            refused: Vec::new(),
            held: Vec::new(),
            receiving: None,
        };
        assert_eq!(
            state.describe().1,
            "Offline: 3 changes on this computer only"
        );
        state.connected = true;
        assert_eq!(state.describe().1, "Sharing…");
        state.unconfirmed = 0;
        let now = crate::status::now_unix();
        state.last_success = Some(now);
        assert_eq!(
            state.describe(),
            ("shared", "Shared with partners at".into(), Some(now))
        );
        assert!(state.today(now), "today's moments show only the time");
        state.last_success = None;
        assert_eq!(state.describe().1, "Sharing…", "never in sync yet");
        state.last_success = Some(now);
        state.receiving = Some(Receiving {
            documents: 40,
            documents_done: 12,
            bytes: 5_000_000,
            bytes_done: 1_200_000,
        });
        assert_eq!(
            state.describe().1,
            "Receiving 12 of 40 documents, 1.2 of 5.0 MB"
        );
        state.connected = false;
        assert_eq!(
            state.describe().1,
            "Offline: 12 of 40 documents, 1.2 of 5.0 MB received so far; the rest follow when the line is back"
        );
        state.connected = true;
        state.receiving = state.receiving.map(|r| Receiving {
            documents_done: 40,
            bytes_done: r.bytes,
            ..r
        });
        assert_eq!(state.describe().0, "shared");
        assert!(!state.today(now - 2 * 86_400));
        // Changes the relay refused are never "shared" nor "sharing".
        state.unconfirmed = 2;
        state.held = vec!["Action plan".into()];
        assert_eq!(
            state.describe(),
            (
                "offline",
                "Waiting: the relay cannot take this school's changes to “Action plan” just now, so they stay on this computer and are sent again by themselves".into(),
                None
            )
        );
        state.refused = vec!["Action plan".into()];
        let (class, text, _) = state.describe();
        assert_eq!(class, "refused");
        assert_eq!(
            text,
            "Not shared: the relay refused this school's changes to “Action plan”, so they stay on this computer. Ask your lead school for help"
        );
    }
}
