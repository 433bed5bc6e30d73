//! One client connection: its addresses (both protocols), and for HTTP/2
//! the timers (nginx's client_header_timeout, keepalive_timeout,
//! send_timeout) and the socket wrapper that feeds them; the HTTP/1
//! engine keeps its own (`h1::server`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const UNSET: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// The configured listen address that accepted the connection.
    pub listen: SocketAddr,
    /// The local address the client connected to (differs from `listen`
    /// on a wildcard listener).
    pub local: SocketAddr,
    pub started: Instant,
    /// Requests whose response is not finished yet.
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `started`: when the last response finished, and
    /// when the first byte of a not yet complete request head arrived.
    last_done_ms: AtomicU64,
    head_started_ms: AtomicU64,
}

/// What the connection task does when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// A request is being served: look again later.
    Busy,
    /// client_header_timeout: the head did not arrive in time; close now.
    Header,
    /// keepalive_timeout: idle between requests; close gracefully.
    Idle,
}

impl ConnInfo {
    pub(crate) fn new(peer: SocketAddr, listen: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            peer,
            listen,
            local,
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(UNSET),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    // Nothing here wakes the connection task: every deadline these
    // updates can create is at least `min(header, keepalive)` after the
    // update, and the task looks at the state at least that often (see
    // `serve_conn`), so no timer is reset per request.

    /// A request head was parsed.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(UNSET, Ordering::SeqCst);
    }

    /// Its response finished (or was abandoned).
    pub(crate) fn request_done(&self) {
        self.last_done_ms.store(self.now_ms(), Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Bytes arrived; between requests they start the header clock.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == UNSET
        {
            self.head_started_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    /// A stable "never" so the connection task does not re-arm its timer
    /// on every request.
    fn far(&self) -> Instant {
        self.started + Duration::from_secs(365 * 86_400)
    }

    /// When the next timer fires and what it means then.
    pub(crate) fn next_timer(&self, header: Duration, keepalive: Duration) -> (Instant, Timer) {
        let at = |ms: u64, d: Duration| self.started + Duration::from_millis(ms) + d;
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return (self.far(), Timer::Busy);
        }
        let head = self.head_started_ms.load(Ordering::SeqCst);
        if head != UNSET {
            return (at(head, header), Timer::Header);
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            // nginx: the first request's head is due header_timeout after
            // accept, bytes or not.
            return (at(0, header), Timer::Header);
        }
        if keepalive.is_zero() {
            // hyper closes after the response; nothing to time.
            return (self.far(), Timer::Busy);
        }
        (
            at(self.last_done_ms.load(Ordering::SeqCst), keepalive),
            Timer::Idle,
        )
    }
}

/// The client socket. Reads feed the header clock; a write that cannot
/// make progress for `gap` (the client stopped reading) fails the
/// connection instead of holding it and its upstream resources forever
/// (nginx `send_timeout`).
pub(crate) struct ClientIo {
    inner: TcpStream,
    /// Bytes already read off the socket (the HTTP/2 preface the HTTP/1
    /// engine saw), returned before anything else.
    prefix: Bytes,
    info: Arc<ConnInfo>,
    gap: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ClientIo {
    pub(crate) fn new(
        inner: TcpStream,
        info: Arc<ConnInfo>,
        gap: Duration,
        prefix: Bytes,
    ) -> ClientIo {
        ClientIo {
            inner,
            prefix,
            info,
            gap,
            stalled: None,
        }
    }

    fn progress<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.stalled = None;
                Poll::Ready(v)
            }
            Poll::Pending => {
                let gap = self.gap;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client did not read for io_timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            self.info.bytes_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.info.bytes_read();
        }
        r
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
