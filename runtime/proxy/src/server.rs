//! Listeners, the accept loop and one client connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::conn::ConnInfo;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::state::State;
use crate::{h1, h2};

/// What the accept loops and connections share with the `Proxy` handle.
pub(crate) struct Shared {
    pub state: ArcSwap<State>,
    pub metrics: Arc<Metrics>,
    pub conn_limit: Arc<Semaphore>,
    /// Flips to true once: stop accepting, finish in-flight requests.
    pub shutdown: watch::Sender<bool>,
    /// The same, for the per-request check (a relaxed load; the watch
    /// channel's lock would be shared by every request on every thread).
    pub stopping: AtomicBool,
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
    match h1::server::serve(shared.clone(), stream, info.clone(), &limits).await {
        h1::server::Outcome::Closed => {}
        // Boxed: hyper's HTTP/2 connection is large and rare here; idle
        // HTTP/1 connections should not carry its size.
        h1::server::Outcome::Http2(stream, prefix) => {
            Box::pin(h2::serve(shared.clone(), stream, prefix, info, &limits)).await
        }
    }
    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}
