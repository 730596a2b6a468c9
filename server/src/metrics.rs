//! What the relay counts for `GET /metrics`, and the Prometheus text
//! format it is read in.
//!
//! Counters are plain atomics the network tasks and the engine's notice
//! callback bump as things happen; gauges that describe state (documents
//! stored, storage size, the last backup) are read when scraped. Nothing
//! here takes a lock on a connection's path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why the relay refused or cut a connection, as the `reason` label of
/// `partnerplan_relay_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It came without a token.
    NoToken,
    /// Its token names no school, or not the partnership its address names.
    BadToken,
    /// The access policy closed it: too many connections for its school,
    /// rights taken away, or a message that broke the protocol.
    Policy,
    /// It sent more messages a second than allowed.
    TooManyMessages,
    /// It sent a message over the size limit.
    TooBig,
    /// It sent a text frame.
    TextFrame,
    /// It could not keep up with what the relay sent it.
    TooSlow,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::NoToken,
        Refusal::BadToken,
        Refusal::Policy,
        Refusal::TooManyMessages,
        Refusal::TooBig,
        Refusal::TextFrame,
        Refusal::TooSlow,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::BadToken => "bad_token",
            Refusal::Policy => "policy",
            Refusal::TooManyMessages => "too_many_messages",
            Refusal::TooBig => "too_big",
            Refusal::TextFrame => "text_frame",
            Refusal::TooSlow => "too_slow",
        }
    }
}

/// Upper bounds of the sync latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The relay's counters, shared by every task.
#[derive(Default)]
pub struct Metrics {
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    /// Counts per bucket (not cumulative), then one for above the last.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn refused(&self, why: Refusal) {
        let i = Refusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.refusals[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn sent(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One message's sync latency: from reaching the engine to its changes
    /// stored and the answers handed to connections.
    pub fn synced(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn open_connections(&self) -> u64 {
        let opened = self.connections_opened.load(Ordering::Relaxed);
        opened.saturating_sub(self.connections_closed.load(Ordering::Relaxed))
    }
}

/// What is read when scraped, beside the counters.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub schools_connected: usize,
    pub documents_loaded: usize,
    /// Out of memory while connected schools subscribe to them.
    pub documents_resting: usize,
    pub documents_stored: u64,
    pub storage_bytes: u64,
    /// Seconds since the last backup finished; `None` if there never was one.
    pub last_backup_age: Option<i64>,
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn render(metrics: &Metrics, state: &State) -> String {
    let mut out = String::with_capacity(4096);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut one = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    one(
        "partnerplan_relay_connections",
        "gauge",
        "WebSocket connections open now.",
        metrics.open_connections().to_string(),
    );
    one(
        "partnerplan_relay_connections_opened_total",
        "counter",
        "WebSocket connections let in since the relay started.",
        load(&metrics.connections_opened).to_string(),
    );
    one(
        "partnerplan_relay_schools_connected",
        "gauge",
        "Schools with at least one connection open now.",
        state.schools_connected.to_string(),
    );
    one(
        "partnerplan_relay_documents_loaded",
        "gauge",
        "Documents held in memory now.",
        state.documents_loaded.to_string(),
    );
    one(
        "partnerplan_relay_documents_resting",
        "gauge",
        "Documents out of memory while connected schools subscribe to them.",
        state.documents_resting.to_string(),
    );
    one(
        "partnerplan_relay_documents_stored",
        "gauge",
        "Documents in the relay's database.",
        state.documents_stored.to_string(),
    );
    one(
        "partnerplan_relay_received_bytes_total",
        "counter",
        "Bytes of protocol messages received from connections.",
        load(&metrics.bytes_in).to_string(),
    );
    one(
        "partnerplan_relay_sent_bytes_total",
        "counter",
        "Bytes of protocol messages sent to connections.",
        load(&metrics.bytes_out).to_string(),
    );
    one(
        "partnerplan_relay_received_messages_total",
        "counter",
        "Protocol messages received from connections.",
        load(&metrics.messages_in).to_string(),
    );
    one(
        "partnerplan_relay_sent_messages_total",
        "counter",
        "Protocol messages sent to connections.",
        load(&metrics.messages_out).to_string(),
    );
    one(
        "partnerplan_relay_storage_bytes",
        "gauge",
        "Size of the relay's database on disk, with its write-ahead log.",
        state.storage_bytes.to_string(),
    );
    one(
        "partnerplan_relay_last_backup_age_seconds",
        "gauge",
        "Seconds since the last backup finished; +Inf if there has been none.",
        state
            .last_backup_age
            .map(|age| age.max(0).to_string())
            .unwrap_or_else(|| "+Inf".into()),
    );

    let name = "partnerplan_relay_refusals_total";
    let _ = writeln!(
        out,
        "# HELP {name} Connections refused or cut by the relay, by reason."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (i, why) in Refusal::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "{name}{{reason=\"{}\"}} {}",
            why.label(),
            load(&metrics.refusals[i])
        );
    }

    let name = "partnerplan_relay_sync_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a message reaching the relay's engine to its changes stored and the answers handed to connections."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += load(&metrics.latency_buckets[i]);
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += load(&metrics.latency_buckets[LATENCY_BUCKETS.len()]);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let sum = load(&metrics.latency_sum_micros) as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {cumulative}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.synced(Duration::from_micros(500));
        metrics.synced(Duration::from_millis(20));
        metrics.synced(Duration::from_secs(60));
        metrics.refused(Refusal::TooBig);
        let text = render(&metrics, &State::default());
        assert!(text.contains("partnerplan_relay_sync_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("partnerplan_relay_sync_seconds_bucket{le=\"0.025\"} 2\n"));
        assert!(text.contains("partnerplan_relay_sync_seconds_bucket{le=\"30\"} 2\n"));
        assert!(text.contains("partnerplan_relay_sync_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("partnerplan_relay_sync_seconds_count 3\n"));
        assert!(text.contains("partnerplan_relay_refusals_total{reason=\"too_big\"} 1\n"));
        assert!(text.contains("partnerplan_relay_last_backup_age_seconds +Inf\n"));
    }
}
