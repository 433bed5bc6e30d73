//! Upstream HTTP/1 connections and their keep-alive pool.
//!
//! A connection is driven by the task of the request that uses it: the
//! request future and then the response body poll hyper's connection future
//! themselves, instead of a separate task per connection exchanging every
//! message and body chunk through channels with wakeups across tasks (and
//! threads). Idle connections sit in a per-server LIFO stack, unpolled; a
//! checkout polls one once to see whether the backend closed it meanwhile,
//! and a reaper task closes connections idle longer than `idle_timeout`
//! (nginx's upstream `keepalive_timeout`).

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ProxyBody;

type Conn = http1::Connection<TokioIo<TcpStream>, ProxyBody>;

/// Why a request got no response head.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Nothing was sent: the TCP connect failed or timed out.
    Connect(std::io::Error),
    /// The exchange failed (the request may have been sent).
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(_) => f.write_str("tcp connect error"),
            SendError::Http(_) => f.write_str("upstream request error"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(e),
            SendError::Http(e) => Some(e),
        }
    }
}

/// One upstream connection: the request sender and the connection future
/// (`None` once it finished: the connection is closed).
pub(crate) struct UpConn {
    tx: http1::SendRequest<ProxyBody>,
    conn: Option<Conn>,
}

impl UpConn {
    /// Polls the connection future; false once the connection is gone.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(c) = &mut self.conn
            && let Poll::Ready(r) = Pin::new(c).poll(cx)
        {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upstream connection ended");
            }
            self.conn = None;
        }
        self.conn.is_some()
    }

    /// One look at a pooled connection: still open and ready for a request?
    fn check(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && matches!(self.tx.poll_ready(cx), Poll::Ready(Ok(())))
    }
}

struct Idle {
    conn: Box<UpConn>,
    since: Instant,
}

/// The keep-alive pool of one upstream group, one stack per server.
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    servers: Vec<Mutex<Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    reaper_running: AtomicBool,
}

impl PoolInner {
    fn stack(&self, server: usize) -> Option<std::sync::MutexGuard<'_, Vec<Idle>>> {
        // Poison only means a panic elsewhere; a Vec of idle connections
        // is still valid.
        self.servers
            .get(server)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn checkin(self: &Arc<Self>, server: usize, conn: Box<UpConn>) {
        if self.max_idle == 0 || conn.conn.is_none() || conn.tx.is_closed() {
            return;
        }
        let Some(mut stack) = self.stack(server) else {
            return;
        };
        if stack.len() >= self.max_idle {
            // Full: this one closes (after the lock is released).
            drop(stack);
            drop(conn);
            return;
        }
        stack.push(Idle {
            conn,
            since: Instant::now(),
        });
        drop(stack);
        if !self.reaper_running.swap(true, Ordering::AcqRel)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(reap(Arc::downgrade(self)));
        }
    }

    /// Removes expired connections; the earliest expiry of the rest.
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        for i in 0..self.servers.len() {
            let Some(mut stack) = self.stack(i) else {
                continue;
            };
            let mut k = 0;
            while k < stack.len() {
                let due = stack[k].since + self.idle_timeout;
                if due <= now {
                    expired.push(stack.remove(k));
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    k += 1;
                }
            }
        }
        drop(expired);
        next
    }
}

/// Closes pooled connections once idle for `idle_timeout`, then exits when
/// the pool is empty or gone (the next checkin starts it again).
async fn reap(pool: Weak<PoolInner>) {
    loop {
        let next = {
            let Some(p) = pool.upgrade() else { return };
            match p.sweep(Instant::now()) {
                Some(n) => n,
                None => {
                    p.reaper_running.store(false, Ordering::Release);
                    // A checkin between the sweep and the store saw the
                    // flag still set: take the job back if so.
                    if p.sweep(Instant::now()).is_none()
                        || p.reaper_running.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                    continue;
                }
            }
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
}

impl Pool {
    pub(crate) fn new(
        servers: usize,
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                servers: (0..servers).map(|_| Mutex::new(Vec::new())).collect(),
                max_idle,
                idle_timeout,
                connect_timeout,
                reaper_running: AtomicBool::new(false),
            }),
        }
    }

    /// The most recently used idle connection to `server` that is still
    /// open (stale and expired ones are closed on the way).
    async fn checkout(&self, server: usize) -> Option<Box<UpConn>> {
        loop {
            let idle = self.inner.stack(server)?.pop()?;
            if idle.since.elapsed() >= self.inner.idle_timeout {
                continue;
            }
            let mut conn = idle.conn;
            if poll_fn(|cx| Poll::Ready(conn.check(cx))).await {
                return Some(conn);
            }
        }
    }

    /// Boxed: a connection is allocated once and then only its pointer
    /// moves between the pool, the request and the response body.
    async fn connect(&self, addr: SocketAddr) -> Result<Box<UpConn>, SendError> {
        let stream = match tokio::time::timeout(
            self.inner.connect_timeout,
            TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Err(_) => {
                return Err(SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        Ok(Box::new(UpConn {
            tx,
            conn: Some(conn),
        }))
    }

    /// Sends `req` to `server` (at `addr`) on a pooled connection or a new
    /// one, driving the connection in this task. A pooled connection that
    /// turns out closed before the request went out is replaced
    /// transparently (as hyper-util's client does). Upgrade requests get
    /// their connection driven by a task of its own, which hands the socket
    /// over on `101`; such connections are not pooled.
    pub(crate) async fn send(
        &self,
        server: usize,
        addr: SocketAddr,
        mut req: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (mut conn, reused) = match self.checkout(server).await {
                Some(c) => (c, true),
                // Boxed: connecting is the rare path and its future is
                // large; inline it would be copied on every request.
                None => (Box::pin(self.connect(addr)).await?, false),
            };
            if upgrade {
                match Box::pin(send_upgrade(conn, req)).await {
                    Ok(resp) => return Ok(resp),
                    Err(mut e) => match e.take_message() {
                        Some(r) if reused => {
                            req = r;
                            continue;
                        }
                        _ => return Err(SendError::Http(e.into_error())),
                    },
                }
            }
            let mut fut = pin!(conn.tx.try_send_request(req));
            let res = poll_fn(|cx| {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                if conn.conn.is_some() && !conn.drive(cx) {
                    // The connection finished: the request future learns
                    // why now (its callback was answered or dropped).
                    return fut.as_mut().poll(cx);
                }
                // Driving may have completed the exchange.
                fut.as_mut().poll(cx)
            })
            .await;
            match res {
                Ok(resp) => {
                    let pool = self.inner.clone();
                    return Ok(resp
                        .map(|body| PooledBody::new(body, Some(Checkin { pool, server, conn }))));
                }
                Err(mut e) => match e.take_message() {
                    Some(r) if reused => {
                        req = r;
                        continue;
                    }
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }
}

/// An upgrade request: its connection is driven by a task of its own, which
/// hands the socket over on `101`.
async fn send_upgrade(
    mut conn: Box<UpConn>,
    req: Request<ProxyBody>,
) -> Result<Response<PooledBody>, hyper::client::conn::TrySendError<Request<ProxyBody>>> {
    if let Some(c) = conn.conn.take() {
        tokio::spawn(async move {
            if let Err(e) = c.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
    }
    let resp = conn.tx.try_send_request(req).await?;
    Ok(resp.map(|body| PooledBody::new(body, None)))
}

/// Where a connection goes back once its response body is complete.
struct Checkin {
    pool: Arc<PoolInner>,
    server: usize,
    conn: Box<UpConn>,
}

/// The upstream response body. Polling it drives the connection; once the
/// body is complete the connection returns to the pool (when the body is
/// dropped unfinished, the connection closes, as nginx does).
pub(crate) struct PooledBody {
    body: Incoming,
    checkin: Option<Checkin>,
    done: bool,
}

impl PooledBody {
    fn new(body: Incoming, checkin: Option<Checkin>) -> PooledBody {
        PooledBody {
            body,
            checkin,
            done: false,
        }
    }

    fn finish(&mut self) {
        if let Some(c) = self.checkin.take() {
            c.pool.checkin(c.server, c.conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let mut res = Pin::new(&mut this.body).poll_frame(cx);
        if res.is_pending()
            && let Some(c) = &mut this.checkin
        {
            c.conn.drive(cx);
            res = Pin::new(&mut this.body).poll_frame(cx);
        }
        match &res {
            Poll::Ready(None) => {
                this.done = true;
                this.finish();
            }
            Poll::Ready(Some(Err(_))) => {
                // Never pool a connection whose body failed.
                this.checkin = None;
            }
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body whose length is exhausted may never be polled to its end
        // (the server sees is_end_stream): it is complete all the same.
        if self.done || self.body.is_end_stream() {
            self.finish();
        }
    }
}
