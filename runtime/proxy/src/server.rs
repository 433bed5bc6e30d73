//! Listeners, the accept loop and one client connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::error::ProxyError;
use crate::handler::{self, ConnInfo};
use crate::metrics::Metrics;
use crate::state::State;

/// hyper refuses read buffers below 8 KiB (it asserts), so smaller
/// `max_header_bytes` values are raised to this.
const HYPER_MIN_BUF: usize = 8192;

/// What the accept loops and connections share with the `Proxy` handle.
pub(crate) struct Shared {
    pub state: ArcSwap<State>,
    pub metrics: Arc<Metrics>,
    pub conn_limit: Arc<Semaphore>,
    /// Flips to true once: stop accepting, finish in-flight requests.
    pub shutdown: watch::Sender<bool>,
}

/// The client socket with nginx's `send_timeout`: a write that cannot make
/// progress for `gap` (the client stopped reading) fails the connection
/// instead of holding it and its upstream resources forever.
pub(crate) struct StallIo {
    inner: TcpStream,
    gap: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StallIo {
    fn new(inner: TcpStream, gap: Duration) -> StallIo {
        StallIo {
            inner,
            gap,
            stalled: None,
        }
    }

    fn pending_or_timeout<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
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

    fn progress<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.stalled = None;
                Poll::Ready(v)
            }
            Poll::Pending => self.pending_or_timeout(cx),
        }
    }
}

impl AsyncRead for StallIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallIo {
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

/// Binds a listening socket that works before the VIP is on this node.
pub(crate) fn bind_listener(addr: SocketAddr) -> Result<std::net::TcpListener, ProxyError> {
    let err = |source| ProxyError::Bind { addr, source };
    let domain = Domain::for_address(addr);
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    // Rebinding right after a restart must not wait for TIME_WAIT.
    sock.set_reuse_address(true).map_err(err)?;
    // IP_FREEBIND: bind the VIP even when keepalived-style failover has not
    // put it on an interface yet (belt and braces for ip_nonlocal_bind).
    // Failure is not fatal: the sysctl may still allow the bind.
    let fb = if addr.is_ipv4() {
        sock.set_freebind_v4(true)
    } else {
        sock.set_freebind_v6(true)
    };
    if let Err(e) = fb {
        tracing::debug!(%addr, error = %e, "IP_FREEBIND not available");
    }
    if addr.is_ipv6() {
        // A `[::]:80` listener next to `0.0.0.0:80` must not clash.
        let _ = sock.set_only_v6(true);
    }
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    sock.listen(1024).map_err(err)?;
    Ok(sock.into())
}

/// Accepts until `stop` or the global shutdown fires.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    listen: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot register listener");
            return;
        }
    };
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        if *shutdown.borrow() || *stop.borrow() {
            return;
        }
        // The permit is taken before accept: beyond max_connections,
        // clients wait in the listen backlog like nginx's.
        let permit = tokio::select! {
            p = shared.conn_limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(%listen, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
            _ = stop.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(serve_conn(shared, stream, peer, listen, permit));
    }
}

async fn serve_conn(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    listen: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let _permit = permit;
    shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let limits = shared.state.load().cfg.limits.clone();
    // A wildcard listener also serves sites bound to one of its addresses
    // (nginx does the same): route by the address the client reached.
    let local = stream.local_addr().unwrap_or(listen);
    let info = Arc::new(ConnInfo::new(peer, listen, local));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris: the whole head must arrive within header_timeout.
        // hyper also runs this timer while a keep-alive connection idles, so
        // idle connections close after min(keepalive_timeout, header_timeout).
        .header_read_timeout(limits.header_timeout)
        // Heads beyond this get 431 from hyper before it closes.
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF))
        .keep_alive(!limits.keepalive_timeout.is_zero());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));

    let svc_shared = shared.clone();
    let svc_info = info.clone();
    let svc = service_fn(move |req| {
        let state = svc_shared.state.load_full();
        let metrics = svc_shared.metrics.clone();
        let info = svc_info.clone();
        async move { Ok::<_, Infallible>(handler::handle(state, metrics, info, req).await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(StallIo::new(stream, limits.io_timeout)), svc);
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.subscribe();
    let mut closing = false;
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
    let ka = limits.keepalive_timeout;
    loop {
        let idle_deadline = {
            let busy = info.in_flight.load(Ordering::Relaxed) > 0;
            let last = Duration::from_millis(info.last_done_ms.load(Ordering::Relaxed));
            if busy || ka.is_zero() {
                tokio::time::Instant::now() + ka.max(Duration::from_secs(1))
            } else {
                tokio::time::Instant::from_std(info.started + last + ka)
            }
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                }
                break;
            }
            _ = shutdown.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep_until(idle_deadline), if !closing && !ka.is_zero() => {
                let busy = info.in_flight.load(Ordering::Relaxed) > 0;
                let last = Duration::from_millis(info.last_done_ms.load(Ordering::Relaxed));
                if !busy && info.started.elapsed() >= last + ka {
                    // keepalive_timeout: an idle keep-alive connection closes.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}
