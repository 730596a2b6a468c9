//! Who is connected now, and when each school last synced, for the admin
//! pages and `/metrics`.
//!
//! Each open connection has an entry (bounded by the connections the
//! relay lets in); its connection task keeps the time of its last message
//! in an atomic, so a message costs no lock. When a connection closes, its
//! school's last sync and client are kept in the store's `meta` (through
//! the engine) under [`last_sync_key`], so they outlive a restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use partnerplan_sync::access::SchoolId;
use partnerplan_sync::clock::unix_seconds;

/// The `meta` key that keeps a school's last sync: a JSON
/// [`LastSync`].
pub fn last_sync_key(school: &SchoolId) -> String {
    format!("school.last_sync.{school}")
}

/// The most of a client's own name kept, in characters.
pub const CLIENT_CHARS: usize = 64;

/// A school's last sync as kept in `meta`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LastSync {
    /// Unix seconds of the last message from the school.
    pub at: i64,
    /// What its client said it was (see [`Client`]).
    pub client: String,
}

/// One open connection, as its task sees it.
pub struct Live {
    last_message: AtomicI64,
}

impl Live {
    /// A message arrived from this connection.
    pub fn touch(&self) {
        self.last_message.store(unix_seconds(), Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Entry {
    school_id: SchoolId,
    school_name: String,
    opened_at: i64,
    client: Option<String>,
    live: Arc<Live>,
}

/// What a connection says it is, in words for the admin page.
pub fn client_words(client: Option<&str>) -> String {
    match client {
        Some(client) => client.to_string(),
        // Our client always says; automerge-repo's JavaScript peers never do.
        None => "another automerge-repo client (JavaScript)".to_string(),
    }
}

/// One open connection, for the admin page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Connection {
    pub school_id: SchoolId,
    pub school: String,
    pub opened_at: i64,
    /// Unix seconds of its last message; `opened_at` if none yet.
    pub last_message: i64,
    pub client: String,
}

#[derive(Default)]
pub struct Activity {
    open: Mutex<HashMap<u64, Entry>>,
}

impl Activity {
    /// A connection of `school_id` was let in.
    pub fn opened(&self, conn: u64, school_id: &SchoolId, school_name: &str) -> Arc<Live> {
        let now = unix_seconds();
        let live = Arc::new(Live {
            last_message: AtomicI64::new(now),
        });
        self.lock().insert(
            conn,
            Entry {
                school_id: school_id.clone(),
                school_name: school_name.to_string(),
                opened_at: now,
                client: None,
                live: live.clone(),
            },
        );
        live
    }

    /// The connection's `join` named its client (or did not). Any
    /// school's program may say anything here: what is kept is one line
    /// of at most [`CLIENT_CHARS`].
    pub fn joined(&self, conn: u64, client: Option<String>) {
        let client = client.map(|c| {
            c.chars()
                .filter(|c| !c.is_control())
                .take(CLIENT_CHARS)
                .collect()
        });
        if let Some(entry) = self.lock().get_mut(&conn) {
            entry.client = client;
        }
    }

    /// The connection closed: what to keep as its school's last sync.
    pub fn closed(&self, conn: u64) -> Option<(SchoolId, LastSync)> {
        let entry = self.lock().remove(&conn)?;
        let at = entry.live.last_message.load(Ordering::Relaxed);
        Some((
            entry.school_id,
            LastSync {
                at,
                client: client_words(entry.client.as_deref()),
            },
        ))
    }

    /// Every open connection, the oldest first.
    pub fn connections(&self) -> Vec<Connection> {
        let mut list: Vec<Connection> = self
            .lock()
            .values()
            .map(|e| Connection {
                school_id: e.school_id.clone(),
                school: e.school_name.clone(),
                opened_at: e.opened_at,
                last_message: e.live.last_message.load(Ordering::Relaxed),
                client: client_words(e.client.as_deref()),
            })
            .collect();
        list.sort_by(|a, b| (a.opened_at, &a.school).cmp(&(b.opened_at, &b.school)));
        list
    }

    /// How many schools have a connection open.
    pub fn schools_connected(&self) -> usize {
        let open = self.lock();
        let mut schools: Vec<&SchoolId> = open.values().map(|e| &e.school_id).collect();
        schools.sort();
        schools.dedup();
        schools.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_come_and_go_with_their_client_and_last_message() {
        let activity = Activity::default();
        let a = "a".to_string();
        let live = activity.opened(1, &a, "Hilltop");
        activity.opened(2, &a, "Hilltop");
        activity.opened(3, &"b".to_string(), "Bank Road");
        activity.joined(1, Some("partnerplan 0.1.0".into()));
        assert_eq!(activity.schools_connected(), 2);
        live.touch();
        let list = activity.connections();
        assert_eq!(list.len(), 3);
        assert!(list.iter().any(|c| c.client == "partnerplan 0.1.0"));
        assert!(list.iter().any(|c| c.client.contains("JavaScript")));
        let (school, last) = activity.closed(1).unwrap();
        assert_eq!(school, "a");
        assert_eq!(last.client, "partnerplan 0.1.0");
        assert!(activity.closed(1).is_none());
        activity.closed(2);
        assert_eq!(activity.schools_connected(), 1);
    }

    #[test]
    fn a_clients_name_is_kept_short_and_on_one_line() {
        let activity = Activity::default();
        activity.opened(1, &"a".to_string(), "Hilltop");
        activity.joined(1, Some(format!("evil\n{}", "x".repeat(10_000_000))));
        let client = &activity.connections()[0].client;
        assert_eq!(client.chars().count(), CLIENT_CHARS);
        assert!(client.starts_with("evilxxx"));
        let (_, last) = activity.closed(1).unwrap();
        assert_eq!(last.client.len(), CLIENT_CHARS);
    }
}
