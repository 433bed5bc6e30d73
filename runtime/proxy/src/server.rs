//! Listeners, the accept loop and one client connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::conn::{ClientIo, ConnInfo, Timer};
use crate::error::ProxyError;
use crate::handler;
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

    let header_timeout = limits.header_timeout;
    let ka = limits.keepalive_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // client_header_timeout and keepalive_timeout are enforced below.
        // hyper's own head timer also runs while a connection idles, which
        // would cut keep-alive at header_timeout; it stays as a safety net
        // that can only fire after ours.
        .header_read_timeout(header_timeout + ka + Duration::from_secs(1))
        // Heads beyond this get 431 from hyper before it closes.
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF))
        .keep_alive(!ka.is_zero());
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
    let io = ClientIo::new(stream, info.clone(), limits.io_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.subscribe();
    let mut closing = false;
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
    // One timer for the connection's life. It is not moved when requests
    // start and end: each deadline the connection state can produce lies at
    // least `step` after the event that produced it, so looking at the state
    // at least every `step` (and at the exact deadline once known) fires
    // every timer on time while costing nothing per request.
    let step = if ka.is_zero() {
        header_timeout
    } else {
        header_timeout.min(ka)
    }
    .max(Duration::from_millis(1));
    let (first, _) = info.next_timer(header_timeout, ka);
    let first = first.min(std::time::Instant::now() + step);
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(first));
    tokio::pin!(sleep);
    // Created once (not per loop turn): resolves when shutdown starts.
    let stopping = async {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                    if let Some(status) = rejected_status(e.as_ref()) {
                        handler::log_rejected(&shared.state.load(), &shared.metrics, &info, status);
                    }
                }
                break;
            }
            _ = stopping.as_mut(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = sleep.as_mut(), if !closing => {
                let now = std::time::Instant::now();
                let (deadline, timer) = info.next_timer(header_timeout, ka);
                match timer {
                    // Slowloris or a silent client: drop it, nginx sends
                    // nothing either.
                    Timer::Header if deadline <= now => {
                        tracing::debug!(%peer, "client header timeout");
                        break;
                    }
                    Timer::Idle if deadline <= now => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    // A request is being served: look again later.
                    Timer::Busy => sleep
                        .as_mut()
                        .reset(tokio::time::Instant::from_std(now + step)),
                    Timer::Header | Timer::Idle => sleep
                        .as_mut()
                        .reset(tokio::time::Instant::from_std(deadline.min(now + step))),
                }
            }
        }
    }
    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// The status hyper answered with when it refused a request head itself.
fn rejected_status(e: &(dyn std::error::Error + 'static)) -> Option<http::StatusCode> {
    let he = e.downcast_ref::<hyper::Error>()?;
    if he.is_parse_too_large() {
        Some(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    } else if he.is_parse() {
        Some(http::StatusCode::BAD_REQUEST)
    } else {
        None
    }
}
