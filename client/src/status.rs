//! What `partnerplan status` tells: whether the background sync runs and
//! is connected, which documents hold changes the relay has not yet
//! confirmed, and when the last sync succeeded.

use automerge::sync;
use partnerplan_model::when::format_utc;
use partnerplan_sync::DocumentId;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::school::School;

/// Keys the sync process writes to the school's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKey {
    Pid,
    Heartbeat,
    Connected,
    LastError,
    LastSuccess,
    RelayStorageId,
    /// How far fetching the partnership's documents has got
    /// ([`Receiving`]); empty once everything listed has arrived.
    Receiving,
    /// The documents whose changes the relay refused on the current
    /// connection, as a JSON list of `{"url", "reason"}`.
    Refused,
}

impl StatusKey {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKey::Pid => "sync.pid",
            StatusKey::Heartbeat => "sync.heartbeat",
            StatusKey::Connected => "sync.connected",
            StatusKey::LastError => "sync.last_error",
            StatusKey::LastSuccess => "sync.last_success",
            StatusKey::RelayStorageId => "relay.storage_id",
            StatusKey::Receiving => "sync.receiving",
            StatusKey::Refused => "sync.refused",
        }
    }
}

/// A background sync whose heartbeat is older than this is not running.
const HEARTBEAT_STALE_SECS: i64 = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub school: String,
    pub relay: Option<String>,
    pub sync_running: bool,
    pub connected: bool,
    pub last_error: Option<String>,
    /// Seconds since the Unix epoch.
    pub last_success: Option<i64>,
    pub documents: usize,
    /// Documents with changes the relay has not confirmed.
    pub unconfirmed: Vec<Unconfirmed>,
    /// While the partnership's documents are still arriving (a school
    /// that just joined), how far that has got.
    pub receiving: Option<Receiving>,
    /// Documents whose changes the relay refused, as the background sync
    /// last heard: they are not shared, and syncing again will not share
    /// them.
    pub refused: Vec<Refused>,
}

/// How far a sync fetching the documents the relay listed has got: the
/// documents that have arrived whole, and their bytes as the relay
/// stores them. The sync keeps it in `meta`; `status`, the sync's own
/// output and the app's indicator say it with [`Receiving::describe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receiving {
    pub documents: usize,
    pub documents_done: usize,
    pub bytes: u64,
    pub bytes_done: u64,
}

impl Receiving {
    /// "12 of 40 documents, 1.2 of 5.0 MB" (the documents alone from a
    /// relay that does not give sizes).
    pub fn describe(&self) -> String {
        let documents = format!(
            "{} of {} document{}",
            self.documents_done,
            self.documents,
            if self.documents == 1 { "" } else { "s" }
        );
        if self.bytes == 0 {
            return documents;
        }
        let (done, total, unit) = if self.bytes >= 1_000_000 {
            (
                format!("{:.1}", self.bytes_done as f64 / 1e6),
                format!("{:.1}", self.bytes as f64 / 1e6),
                "MB",
            )
        } else {
            (
                (self.bytes_done.div_ceil(1000)).to_string(),
                (self.bytes.div_ceil(1000)).to_string(),
                "KB",
            )
        };
        format!("{documents}, {done} of {total} {unit}")
    }

    pub fn complete(&self) -> bool {
        self.documents_done >= self.documents
    }

    /// What is kept in `meta`.
    pub fn to_meta(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read back from `meta`; `None` when empty (nothing is arriving) or
    /// unreadable.
    pub fn from_meta(text: &str) -> Option<Receiving> {
        serde_json::from_str(text).ok()
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Refused {
    pub url: String,
    /// The relay's words.
    pub reason: String,
    /// The refusal passes (the relay was busy, or the school's daily
    /// allowance ran out): the running sync sends the changes again by
    /// itself once the relay's wait is over.
    #[serde(default)]
    pub passes: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unconfirmed {
    pub url: String,
    pub title: Option<String>,
    pub changes: usize,
}

pub use partnerplan_sync::clock::unix_seconds as now_unix;

pub fn status(school: &School) -> Result<Status, ClientError> {
    let store = &school.store;
    let meta = |key: StatusKey| -> Result<Option<String>, ClientError> {
        Ok(store.meta(key.as_str())?.filter(|v| !v.is_empty()))
    };
    let heartbeat = meta(StatusKey::Heartbeat)?.and_then(|v| v.parse::<i64>().ok());
    let sync_running = meta(StatusKey::Pid)?.is_some()
        && heartbeat.is_some_and(|beat| now_unix() - beat <= HEARTBEAT_STALE_SECS);
    let connected = sync_running && meta(StatusKey::Connected)?.as_deref() == Some("yes");
    let relay_storage = meta(StatusKey::RelayStorageId)?;
    let titles = crate::documents::list(school)?;
    let mut unconfirmed = Vec::new();
    for (id, title) in &titles {
        let changes = unconfirmed_changes(school, id, relay_storage.as_deref())?;
        if changes > 0 {
            unconfirmed.push(Unconfirmed {
                url: id.url(),
                title: title.clone(),
                changes,
            });
        }
    }
    let receiving = meta(StatusKey::Receiving)?
        .as_deref()
        .and_then(Receiving::from_meta)
        .filter(|r| !r.complete());
    Ok(Status {
        receiving,
        school: school.name()?.unwrap_or_default(),
        relay: school.relay()?,
        sync_running,
        connected,
        last_error: meta(StatusKey::LastError)?,
        last_success: meta(StatusKey::LastSuccess)?.and_then(|v| v.parse().ok()),
        documents: titles.len(),
        unconfirmed,
        refused: meta(StatusKey::Refused)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default(),
    })
}

/// How many of the document's changes the relay has not acknowledged,
/// judged from the sync state this school last shared with it.
fn unconfirmed_changes(
    school: &School,
    id: &DocumentId,
    relay_storage: Option<&str>,
) -> Result<usize, ClientError> {
    let Some(doc) = school.store.load_document(id)? else {
        return Ok(0);
    };
    let shared = match relay_storage {
        Some(storage) => school
            .store
            .sync_state(id, storage)?
            .and_then(|bytes| sync::State::decode(&bytes).ok())
            .map(|state| state.shared_heads)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(doc.get_changes(&shared).len())
}

/// The status in sentences.
pub fn describe(status: &Status) -> String {
    let mut lines = Vec::new();
    let relay = status.relay.as_deref().unwrap_or("(no relay set)");
    lines.push(format!("School: {}. Relay: {relay}.", status.school));
    if status.connected {
        lines.push(format!(
            "Connected to the relay at {relay}; changes are sent as they are made."
        ));
    } else if status.sync_running {
        let why = status
            .last_error
            .as_deref()
            .map(|e| format!(" Last problem: {e}"))
            .unwrap_or_default();
        lines.push(format!("Not connected: the background sync is running and will keep trying to reach {relay}.{why}"));
    } else {
        lines.push("Not connected: no background sync is running. Start one with `partnerplan sync --watch`, or sync once with `partnerplan sync`.".into());
    }
    if let Some(receiving) = &status.receiving {
        lines.push(if status.connected {
            format!(
                "Receiving {} from the relay.",
                receiving.describe()
            )
        } else {
            format!(
                "The partnership's documents have partly arrived: {}. The rest arrive when the sync runs again, without starting over.",
                receiving.describe()
            )
        });
    }
    if status.unconfirmed.is_empty() {
        lines.push(format!(
            "All {} document{} confirmed by the relay.",
            status.documents,
            if status.documents == 1 {
                " is"
            } else {
                "s are"
            }
        ));
    } else {
        lines.push(format!(
            "{} of {} documents hold changes the relay has not confirmed yet:",
            status.unconfirmed.len(),
            status.documents
        ));
        for doc in &status.unconfirmed {
            let title = doc
                .title
                .as_deref()
                .map(|t| format!(" “{t}”"))
                .unwrap_or_default();
            let plural = if doc.changes == 1 { "" } else { "s" };
            if status.refused.iter().any(|r| r.url == doc.url) {
                lines.push(format!(
                    "  {}{title}: {} change{plural} the relay refused; they stay on this computer",
                    doc.url, doc.changes
                ));
            } else {
                lines.push(format!(
                    "  {}{title}: {} change{plural} waiting to sync",
                    doc.url, doc.changes
                ));
            }
        }
    }
    for refused in &status.refused {
        lines.push(if refused.passes {
            format!(
                "The relay could not take this school's changes to {} for now; they stay on this computer, and the app's sync sends them again by itself while it runs (or the next `partnerplan sync` does). It said: {}.",
                refused.url, refused.reason
            )
        } else {
            format!(
                "The relay refused this school's changes to {}, so they are not shared, and syncing again will not share them. It said: {}.",
                refused.url, refused.reason
            )
        });
    }
    match status.last_success {
        Some(when) => lines.push(format!(
            "Last successful sync: {} ({}).",
            format_utc(when),
            ago(now_unix() - when)
        )),
        None => lines.push("No sync has succeeded yet.".into()),
    }
    lines.join("\n")
}

fn ago(seconds: i64) -> String {
    match seconds {
        s if s < 5 => "just now".into(),
        s if s < 120 => format!("{s} seconds ago"),
        s if s < 7200 => format!("{} minutes ago", s / 60),
        s if s < 172_800 => format!("{} hours ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_documents_and_megabytes() {
        let receiving = Receiving {
            documents: 40,
            documents_done: 12,
            bytes: 5_000_000,
            bytes_done: 1_200_000,
        };
        assert_eq!(receiving.describe(), "12 of 40 documents, 1.2 of 5.0 MB");
        assert_eq!(Receiving::from_meta(&receiving.to_meta()), Some(receiving));
        let small = Receiving {
            documents: 1,
            documents_done: 0,
            bytes: 640_000,
            bytes_done: 0,
        };
        assert_eq!(small.describe(), "0 of 1 document, 0 of 640 KB");
        assert_eq!(Receiving::from_meta(""), None);
        let unmeasured = Receiving { bytes: 0, ..small };
        assert_eq!(unmeasured.describe(), "0 of 1 document");
    }
}
