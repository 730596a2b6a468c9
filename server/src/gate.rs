//! The door: connections from their first byte until they present a
//! valid token. Each has a deadline to get through (reading the HTTP
//! request, the TLS handshake, the upgrade), and only so many may wait at
//! once: when the door is full, the connection that has waited longest is
//! closed to let the new one in. Bare TCP connections that say nothing
//! therefore hold at most `capacity` file handles, each for at most the
//! deadline, and an honest school, whose handshake takes milliseconds,
//! gets through while they come and go.
//!
//! A connection is let through (`Gate::admit`) by the WebSocket handler
//! once its token is valid; from then on the per-school limits apply.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Connections waiting at the door, oldest first.
pub(crate) struct Gate {
    waiting: Mutex<VecDeque<(SocketAddr, Arc<Waiting>)>>,
    capacity: usize,
    deadline: Duration,
}

/// One connection at the door, shared by the gate and its stream.
#[derive(Default)]
struct Waiting {
    /// Let through: its token was valid.
    admitted: AtomicBool,
    /// Closed to make room, or gone.
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    pub(crate) fn new(capacity: usize, deadline: Duration) -> Gate {
        Gate {
            waiting: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            deadline,
        }
    }

    /// A new connection from `peer` starts waiting, closing the one that
    /// has waited longest if the door is full.
    fn enter(&self, peer: SocketAddr) -> Arc<Waiting> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|(_, w)| !w.closed.load(Ordering::Acquire));
        while waiting.len() >= self.capacity {
            let Some((_, oldest)) = waiting.pop_front() else {
                break;
            };
            oldest.closed.store(true, Ordering::Release);
            oldest.waker.wake();
        }
        let entry = Arc::new(Waiting::default());
        waiting.push_back((peer, entry.clone()));
        entry
    }

    /// The connection from `peer` presented a valid token: it no longer
    /// waits, and its deadline no longer applies.
    pub(crate) fn admit(&self, peer: SocketAddr) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = waiting.iter().position(|(p, _)| *p == peer) {
            let (_, entry) = waiting.remove(at).expect("the position is in range");
            entry.admitted.store(true, Ordering::Release);
        }
    }

    /// How many connections wait now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting
            .iter()
            .filter(|(_, w)| !w.closed.load(Ordering::Acquire))
            .count()
    }

    /// Wraps an accepted stream so it fails once closed to make room or
    /// past its deadline, unless admitted first.
    pub(crate) fn wrap<S>(self: &Arc<Gate>, stream: S, peer: SocketAddr) -> Gated<S> {
        Gated {
            stream,
            waiting: self.enter(peer),
            deadline: Box::pin(tokio::time::sleep(self.deadline)),
        }
    }
}

/// A stream at the door. See [`Gate`].
pub(crate) struct Gated<S> {
    stream: S,
    waiting: Arc<Waiting>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> Gated<S> {
    /// `Err` once this connection may no longer wait.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.waiting.admitted.load(Ordering::Acquire) {
            return Ok(());
        }
        self.waiting.waker.register(cx.waker());
        if self.waiting.closed.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for newer connections",
            ));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no valid token within the deadline",
            ));
        }
        Ok(())
    }
}

impl<S> Drop for Gated<S> {
    fn drop(&mut self) {
        self.waiting.closed.store(true, Ordering::Release);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gated<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gated<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Small frames go out at once. Without this, a relay's reply waits behind
/// Nagle's algorithm for the client's delayed ACK (some 40 ms): the
/// benchmark's p95 latency fell several times over with it.
fn no_delay(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// The plain (ws://) listener: every accepted connection goes through the
/// gate.
pub(crate) struct GatedListener {
    pub(crate) listener: TcpListener,
    pub(crate) gate: Arc<Gate>,
}

impl axum::serve::Listener for GatedListener {
    type Io = Gated<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    no_delay(&tcp);
                    return (self.gate.wrap(tcp, peer), peer);
                }
                Err(error) => {
                    // Out of file handles, say: wait rather than spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Where a connection comes from, for the handler to admit it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GatedListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GatedListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// The admin listener (loopback only, no door): the admin pages decide
/// local or remote from this address.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<SocketAddr> for Peer {
    fn connect_info(peer: SocketAddr) -> Peer {
        Peer(peer)
    }
}

/// The wss:// side: the gate wraps each connection before its TLS
/// handshake, so a handshake that never finishes is bounded too.
#[derive(Clone)]
pub(crate) struct GateAcceptor(pub(crate) Arc<Gate>);

impl<S> axum_server::accept::Accept<TcpStream, S> for GateAcceptor {
    type Stream = Gated<TcpStream>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        no_delay(&stream);
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(error) => return std::future::ready(Err(error)),
        };
        std::future::ready(Ok((self.0.wrap(stream, peer), service)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn a_full_door_closes_the_longest_waiting_and_admitted_ones_leave_it() {
        let gate = Arc::new(Gate::new(2, Duration::from_secs(60)));
        let first = gate.wrap((), peer(1));
        let _second = gate.wrap((), peer(2));
        gate.admit(peer(2));
        assert_eq!(gate.len(), 1, "the admitted one no longer waits");
        let _third = gate.wrap((), peer(3));
        assert!(!first.waiting.closed.load(Ordering::Acquire));
        let _fourth = gate.wrap((), peer(4));
        assert!(
            first.waiting.closed.load(Ordering::Acquire),
            "the oldest made room"
        );
        assert_eq!(gate.len(), 2);
        drop(first);
        assert_eq!(gate.len(), 2);
    }

    #[tokio::test]
    async fn a_connection_that_waits_past_its_deadline_fails() {
        let gate = Arc::new(Gate::new(8, Duration::from_millis(100)));
        let (client, server) = tokio::io::duplex(64);
        let mut gated = gate.wrap(server, peer(1));
        let mut buf = [0u8; 8];
        let read = tokio::io::AsyncReadExt::read(&mut gated, &mut buf);
        let error = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the deadline ends the wait")
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }
}
