//! One WebSocket connection: frames in go to the engine, frames the
//! engine queues go out. Keeps the connection alive with pings and drops
//! it when the other side has gone silent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use partnerplan_sync::Message;
use partnerplan_sync::engine::{Input, OUTBOX_FRAMES, Outgoing};
use tokio::sync::mpsc;

use partnerplan_sync::access::Grant;

use crate::AppState;
use crate::metrics::Refusal;

/// WebSocket close code for a peer that broke the protocol (1008, policy).
const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code for a message over the size limit (1009).
const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code for a server going away (1001).
const CLOSE_GOING_AWAY: u16 = 1001;

/// How often (in bytes written) the engine hears how far a busy writer
/// has got, besides each time its queue empties.
const REPORT_WRITTEN: usize = 256 * 1024;

/// How long one frame may take to go out before the connection counts as
/// dead. Slow is fine: a peer is cut only when it takes nothing of a frame
/// for three keepalive periods, plus a second for each 16 KiB of it (a
/// peer reading at least 16 KiB a second is never cut for it).
fn write_deadline(keepalive: Duration, len: usize) -> Duration {
    keepalive * 3 + Duration::from_secs((len / (16 * 1024)) as u64)
}

pub async fn serve_connection(
    socket: WebSocket,
    state: Arc<AppState>,
    grant: Result<Grant, String>,
) {
    let conn = state
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let grant = match grant {
        Ok(grant) => grant,
        Err(reason) => {
            tracing::info!(conn, "refused a connection: {reason}");
            let _ = sink.send(error_frame(&state, &reason)).await;
            let _ = sink
                .send(WsMessage::Close(Some(CloseFrame {
                    code: CLOSE_POLICY,
                    reason: Utf8Bytes::from_static("refused; see the error message"),
                })))
                .await;
            // Let the peer read the error before the socket goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
            return;
        }
    };
    tracing::info!(conn, school = %grant.school_id(), "connection opened");
    let (outbox, mut outgoing) = mpsc::channel(OUTBOX_FRAMES);
    let (school_id, school_name) = (grant.school_id().clone(), grant.school_name().to_string());
    if !state.engine.send(Input::Open {
        conn,
        initiate: false,
        outbox,
        grant: Some(grant),
    }) {
        return;
    }
    let input = state.input.connection();
    let live = state.activity.opened(conn, &school_id, &school_name);
    state
        .metrics
        .connections_opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut shutdown = state.shutdown.clone();
    let keepalive = state.config.keepalive;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    // A connection that says nothing holds a place among its school's
    // connections: it has the handshake's deadline to send `join`.
    let join_within = state.config.handshake_timeout;
    let join_deadline = tokio::time::sleep(join_within);
    tokio::pin!(join_deadline);
    let mut heard = false;
    // Bytes written since the engine last heard, so it makes the sync
    // messages it held back for us (see `RelayConfig::outbox_bytes`).
    let mut written = 0usize;
    let close_reason: Option<(u16, String)> = loop {
        tokio::select! {
            // What the engine sends goes out before more is read from the
            // peer: a peer that does not read cannot make us queue more.
            biased;
            out = outgoing.recv() => match out {
                Some(Outgoing::Frame(bytes)) => {
                    let len = bytes.len();
                    state.metrics.sent(len);
                    let deadline = write_deadline(keepalive, len);
                    match tokio::time::timeout(deadline, sink.send(WsMessage::Binary(bytes.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => {
                            tracing::info!(conn, "closing a connection that stopped reading");
                            break None;
                        }
                    }
                    written += len;
                    if written >= REPORT_WRITTEN || outgoing.is_empty() {
                        state.engine.send(Input::Written { conn, bytes: std::mem::take(&mut written) });
                    }
                }
                Some(Outgoing::Close(reason)) => {
                    state.metrics.refused(Refusal::Policy);
                    break Some((CLOSE_POLICY, reason));
                }
                None => {
                    state.metrics.refused(Refusal::TooSlow);
                    break Some((CLOSE_POLICY, "the connection could not keep up".into()));
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    last_heard = Instant::now();
                    heard = true;
                    state.metrics.received(bytes.len());
                    live.touch();
                    if !state.budgets.spend(&school_id) {
                        state.metrics.refused(Refusal::TooManyMessages);
                        let reason = format!(
                            "too many messages: this relay takes at most {} a second from one school, over all its connections; your client will reconnect and carry on",
                            state.config.max_messages_per_second
                        );
                        tracing::warn!(conn, "closing a connection that sent too many messages");
                        let _ = sink.send(error_frame(&state, &reason)).await;
                        break Some((CLOSE_POLICY, reason));
                    }
                    // Waits while the engine holds this connection's share
                    // of its input (or everyone's): the peer's further
                    // frames wait in TCP meanwhile.
                    let reserved = input.reserve(bytes.len()).await;
                    if !state.engine.send(Input::Frame { conn, bytes: bytes.to_vec(), reserved: Some(reserved) }) {
                        break Some((CLOSE_GOING_AWAY, "the relay is shutting down".into()));
                    }
                }
                Some(Ok(WsMessage::Text(_))) => {
                    state.metrics.refused(Refusal::TextFrame);
                    let reason = "text frames are not part of the automerge-repo protocol; send each message as one binary CBOR frame".to_string();
                    let _ = sink.send(error_frame(&state, &reason)).await;
                    break Some((CLOSE_POLICY, reason));
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(WsMessage::Close(_))) | None => break None,
                Some(Err(error)) => {
                    let text = error.to_string();
                    if text.contains("Space limit exceeded") || text.contains("too long") || text.contains("size") {
                        let reason = format!(
                            "the message is over this relay's limit of {} bytes",
                            state.config.max_frame_bytes
                        );
                        tracing::warn!(conn, "refused a message over the size limit");
                        state.metrics.refused(Refusal::TooBig);
                        let _ = sink.send(error_frame(&state, &reason)).await;
                        let _ = sink.send(WsMessage::Close(Some(CloseFrame {
                            code: CLOSE_TOO_BIG,
                            reason: Utf8Bytes::from_static("message too big; see the error message"),
                        }))).await;
                        // The peer may still be sending the rest of that
                        // message. Closing the socket under unread data
                        // resets it, and the peer would never read our
                        // error; give it time to.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        break None;
                    }
                    tracing::debug!(conn, %error, "connection failed");
                    break None;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > keepalive * 3 {
                    tracing::info!(conn, "closing a connection that went silent");
                    break None;
                }
                if sink.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    break None;
                }
            }
            _ = &mut join_deadline, if !heard => {
                tracing::info!(conn, "closing a connection that sent no join");
                let reason = format!(
                    "no “join” message arrived within {} seconds of connecting; your client will reconnect",
                    join_within.as_secs()
                );
                let _ = sink.send(error_frame(&state, &reason)).await;
                break Some((CLOSE_POLICY, reason));
            }
            _ = shutdown.changed() => break Some((CLOSE_GOING_AWAY, "the relay is shutting down; your client will reconnect".into())),
        }
    };
    state.engine.send(Input::Closed { conn });
    crate::connection_closed(&state, conn);
    if let Some((code, reason)) = close_reason {
        // Drain what the engine queued before it closed us (the error
        // message that says why), then close.
        while let Ok(Outgoing::Frame(bytes)) = outgoing.try_recv() {
            if sink.send(WsMessage::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        // The full reason went in the error message; a close frame holds
        // at most 123 bytes, so it only points there.
        let reason = if reason.len() <= 120 {
            reason
        } else {
            "see the error message".to_string()
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            sink.send(WsMessage::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            }))),
        )
        .await;
        // Read what the peer still sends until it closes too: closing the
        // socket under unread data resets it, and the peer would lose our
        // error message.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, WsMessage::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    tracing::debug!(conn, "connection closed");
}

fn error_frame(state: &AppState, reason: &str) -> WsMessage {
    WsMessage::Binary(
        Message::Error {
            sender_id: Some(state.peer_id.clone()),
            target_id: None,
            message: reason.to_string(),
            document_id: None,
            retry_after_ms: None,
        }
        .encode()
        .into(),
    )
}

/// Each school's message budget, shared by all its connections and kept
/// when they close, so reconnecting does not refill it. One entry per
/// school that has connected (the register bounds them).
pub(crate) struct Budgets {
    rate: u32,
    schools: std::sync::Mutex<std::collections::HashMap<String, Budget>>,
}

impl Budgets {
    pub(crate) fn new(rate: u32) -> Budgets {
        Budgets {
            rate,
            schools: Default::default(),
        }
    }

    /// Takes one message from the school's budget; false if it is spent.
    fn spend(&self, school: &str) -> bool {
        let mut schools = self.schools.lock().unwrap_or_else(|e| e.into_inner());
        match schools.get_mut(school) {
            Some(budget) => budget.spend(),
            None => {
                let mut budget = Budget::new(self.rate);
                let spent = budget.spend();
                schools.insert(school.to_string(), budget);
                spent
            }
        }
    }
}

/// A token bucket: `rate` messages a second, with ten seconds' worth of
/// burst, so a school announcing all its documents on connecting passes.
struct Budget {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Budget {
    fn new(rate: u32) -> Budget {
        let rate = f64::from(rate.max(1));
        Budget {
            rate,
            tokens: rate * 10.0,
            last: Instant::now(),
        }
    }

    fn spend(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.rate * 10.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
