//! What `partnerplan status` tells: whether the background sync runs and
//! is connected, which documents hold changes the relay has not yet
//! confirmed, and when the last sync succeeded.

use automerge::sync;
use partnerplan_model::when::format_utc;
use partnerplan_sync::DocumentId;
use serde::Serialize;

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
    /// Documents whose changes the relay refused, as the background sync
    /// last heard: they are not shared, and syncing again will not share
    /// them.
    pub refused: Vec<Refused>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Refused {
    pub url: String,
    /// The relay's words.
    pub reason: String,
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
    Ok(Status {
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
        lines.push(format!(
            "The relay refused this school's changes to {}, so they are not shared, and syncing again will not share them. It said: {}.",
            refused.url, refused.reason
        ));
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
