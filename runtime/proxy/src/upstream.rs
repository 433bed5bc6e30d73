//! One upstream group at run time (balancer + keep-alive pool) and the
//! exchange with it, whichever protocol the client spoke: the request and
//! response as the exchange sees them, nginx's `proxy_next_upstream error
//! timeout` retries across servers, and the response body handed to
//! hyper. The bytes on the upstream connection (HTTP/1) are written and
//! read by `h1::client`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hadeploy_config::proxy::{ProxyPass, Upstream};
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::balancer::{Balancer, PeerHealth};
use crate::body::BoxError;
use crate::clock::Clock;
use crate::h1::body::BodyReader;
use crate::h1::client::{self, HeadError, SEND_PIECE, SendError};
use crate::h1::framing::Framing;
use crate::headers::ClientIdentity;
use crate::message::{RequestHead, ResponseHead};
use crate::pool::{self, Pool, UpConn};

/// How long a backend whose socket refused the rest of an upload may take
/// to show the answer it sent early.
const EARLY_ANSWER: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) struct UpstreamRt {
    pub name: String,
    pub cfg: Upstream,
    pub balancer: Balancer,
    pub pool: Pool,
}

impl std::fmt::Debug for UpstreamRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRt")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl UpstreamRt {
    /// `prev` supplies the health state of servers that existed before a
    /// reload, so a reload does not forget that a backend is dead.
    pub(crate) fn new(
        name: &str,
        cfg: &Upstream,
        prev: impl Fn(SocketAddr) -> Option<Arc<PeerHealth>>,
    ) -> UpstreamRt {
        let health = cfg
            .servers
            .iter()
            .map(|s| prev(s.address).unwrap_or_default())
            .collect();
        UpstreamRt {
            name: name.to_string(),
            cfg: cfg.clone(),
            balancer: Balancer::new(&cfg.servers, health),
            pool: Pool::new(
                cfg.servers.len(),
                cfg.keepalive.max_idle,
                cfg.keepalive.idle_timeout,
            ),
        }
    }
}

/// A request body that arrives while it is forwarded (`max_body_bytes: 0`):
/// the client's HTTP/1 connection or an HTTP/2 stream.
pub(crate) trait BodySource: Send {
    /// The next piece; `None` at the end; `Err` when the client's side
    /// failed (the status to answer with, if it still can be).
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StatusCode>>>;
}

/// The request body as the exchange sends it.
pub(crate) enum OutBody<'a> {
    Empty,
    /// Read fully before the first attempt (nginx's request buffering), so
    /// the next server can get it again. Sent with Content-Length.
    Buffered(Bytes),
    /// Streamed as it arrives: Content-Length when known, else chunked.
    /// Once a piece went out, no other server can be tried.
    Stream {
        src: &'a mut dyn BodySource,
        length: Option<u64>,
        started: bool,
    },
}

/// A request ready to be forwarded.
pub(crate) struct Outgoing<'a> {
    /// The client's head: method and the header lines to pass on.
    pub head: &'a RequestHead,
    /// Origin-form target after nginx's URI replacement.
    pub target: &'a str,
    pub id: &'a ClientIdentity,
    /// `Upgrade` value of a WebSocket-style handshake.
    pub upgrade: Option<&'a [u8]>,
    pub body: OutBody<'a>,
    /// Client write/read gap for streamed bodies (io_timeout).
    pub io_timeout: std::time::Duration,
}

/// Why no response came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A status the proxy answers with (502, 504; 400/408 for a broken
    /// streamed request body).
    Status(StatusCode),
    /// The client closed its connection while we waited (nginx's 499).
    ClientGone,
}

/// The upstream's response head, with the connection it arrived on; the
/// body is read with [`UpResponse::next`].
pub(crate) struct UpResponse<'a> {
    pub head: ResponseHead,
    pub framing: Framing,
    pub conn: UpConn,
    pub body: BodyReader,
    pub server: usize,
    pub pool: &'a Pool,
    /// The response may be followed by another on this connection.
    keep_alive: bool,
}

impl UpResponse<'_> {
    /// The next body piece already received, without waiting.
    pub(crate) fn buffered(&mut self) -> std::io::Result<Option<Bytes>> {
        self.body.buffered(&mut self.conn.rbuf)
    }

    /// The next body piece (`None` at the end); the caller times it.
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        self.body.next(&mut self.conn.io, &mut self.conn.rbuf).await
    }

    /// The head, and the body as an `http_body::Body` that owns the
    /// connection (for hyper's HTTP/2 server).
    pub(crate) fn into_body(self) -> (ResponseHead, UpstreamBody) {
        let reusable = self.keep_alive && self.framing != Framing::Close;
        (
            self.head,
            UpstreamBody {
                conn: Some(self.conn),
                reader: self.body,
                pool: self.pool.clone(),
                server: self.server,
                reusable,
            },
        )
    }

    /// Hands the connection back to the pool if the body was read to its
    /// end and the upstream keeps the connection open; closes it otherwise.
    pub(crate) fn finish(self, now: Instant) {
        if self.body.is_done() && self.keep_alive && self.framing != Framing::Close {
            self.pool.checkin(self.server, self.conn, now);
        }
    }
}

/// nginx does not retry POST, LOCK and PATCH once they were sent.
fn idempotent(m: &Method) -> bool {
    !(m == Method::POST || m == Method::PATCH || m.as_str() == "LOCK")
}

/// Sends the request to the upstream and returns the response head. Tries
/// the next server after connect errors (always: nothing was sent), and
/// after other errors or a response head timeout for idempotent methods
/// whose body can be sent again. A pooled connection that fails before any
/// response byte is the keep-alive race (the backend closed it as we took
/// it): retried once on a fresh connection to the same server, without
/// marking the server failed. Once a response head arrived it is returned
/// whatever its status: a backend's own 502 is the client's answer.
/// `started` is when the request's exchange began (the first attempt's
/// clock; later attempts read it again).
pub(crate) async fn forward<'a>(
    up: &'a UpstreamRt,
    pp: &ProxyPass,
    out: &mut Outgoing<'_>,
    clock: &mut Clock,
    client: Option<&TcpStream>,
    head_buf: &mut Vec<u8>,
    started: Instant,
) -> Result<UpResponse<'a>, Failure> {
    let bal = &up.balancer;
    let max = bal.max_tries().max(1);
    let tries = match up.cfg.next_upstream_tries {
        0 => max,
        n => (n as usize).min(max),
    };
    let mut tried = bal.new_tried();
    let mut last = StatusCode::BAD_GATEWAY;
    let retry_ok = idempotent(&out.head.method);
    let mut attempt = 0;
    // One clock read per attempt: the timers here are seconds long.
    let mut now = started;
    'servers: while attempt < tries {
        if attempt > 0 {
            now = Instant::now();
        }
        let Some(i) = bal.select(&mut tried, now.into_std()) else {
            if attempt == 0 {
                tracing::error!(upstream = %up.name, "no live upstreams");
            }
            break;
        };
        attempt += 1;
        let addr = bal.addrs[i];
        let mut pooled = true;
        loop {
            let mut conn = match pooled.then(|| up.pool.checkout(i, now)).flatten() {
                Some(c) => c,
                None => match Box::pin(pool::connect(addr, up.cfg.connect_timeout)).await {
                    Ok(c) => c,
                    Err(e) => {
                        bal.failed(i, std::time::Instant::now());
                        last = if e.kind() == std::io::ErrorKind::TimedOut {
                            StatusCode::GATEWAY_TIMEOUT
                        } else {
                            StatusCode::BAD_GATEWAY
                        };
                        tracing::error!(upstream = %up.name, server = %addr, error = %e, "upstream connect failed");
                        // Nothing was sent: any method may go elsewhere,
                        // as long as the body can still be sent.
                        if matches!(out.body, OutBody::Stream { started: true, .. }) {
                            break 'servers;
                        }
                        continue 'servers;
                    }
                },
            };
            client::encode_head(head_buf, out, pp, addr);
            let resend_ok = !matches!(out.body, OutBody::Stream { started: true, .. });
            let sent = client::send_request(
                &mut conn,
                head_buf,
                &mut out.body,
                clock,
                now + up.cfg.send_timeout,
                up.cfg.send_timeout,
                out.io_timeout,
            )
            .await;
            let stale = conn.reused;
            let can_resend = !matches!(out.body, OutBody::Stream { started: true, .. });
            match sent {
                Ok(()) => {}
                Err(SendError::Client(status)) => return Err(Failure::Status(status)),
                Err(SendError::Upstream(e)) => {
                    // A backend may answer before it read the whole body (413,
                    // 401) and close: that answer is the client's, and the
                    // server did nothing wrong.
                    let early = Instant::now() + EARLY_ANSWER.min(up.cfg.read_timeout);
                    if let Ok((h, framing)) =
                        client::read_head(&mut conn, &out.head.method, clock, early, None).await
                    {
                        bal.succeeded(i);
                        return Ok(UpResponse {
                            body: BodyReader::new(framing),
                            head: h,
                            framing,
                            conn,
                            server: i,
                            pool: &up.pool,
                            keep_alive: false,
                        });
                    }
                    if stale && resend_ok && can_resend {
                        pooled = false;
                        continue;
                    }
                    bal.failed(i, std::time::Instant::now());
                    last = StatusCode::BAD_GATEWAY;
                    tracing::error!(upstream = %up.name, server = %addr, error = %e, "upstream send failed");
                    if !retry_ok || !can_resend {
                        break 'servers;
                    }
                    continue 'servers;
                }
                Err(SendError::Timeout) => {
                    bal.failed(i, std::time::Instant::now());
                    last = StatusCode::GATEWAY_TIMEOUT;
                    tracing::error!(upstream = %up.name, server = %addr, "upstream timed out reading the request");
                    if !retry_ok || !can_resend {
                        break 'servers;
                    }
                    continue 'servers;
                }
            }
            // The response head is due read_timeout after the request went
            // out. A small request goes out at once: the attempt's start
            // (+ connect_timeout for a possible connect) saves a clock read;
            // after a long upload the clock is read again.
            let deadline = match &out.body {
                OutBody::Empty => now + up.cfg.connect_timeout + up.cfg.read_timeout,
                OutBody::Buffered(b) if b.len() <= SEND_PIECE => {
                    now + up.cfg.connect_timeout + up.cfg.read_timeout
                }
                _ => Instant::now() + up.cfg.read_timeout,
            };
            match client::read_head(&mut conn, &out.head.method, clock, deadline, client).await {
                Ok((h, framing)) => {
                    if h.status == StatusCode::SWITCHING_PROTOCOLS && out.upgrade.is_none() {
                        bal.failed(i, std::time::Instant::now());
                        tracing::error!(upstream = %up.name, server = %addr, "upstream sent 101 without an upgrade request");
                        return Err(Failure::Status(StatusCode::BAD_GATEWAY));
                    }
                    bal.succeeded(i);
                    let keep_alive = h.keep_alive();
                    return Ok(UpResponse {
                        body: BodyReader::new(framing),
                        head: h,
                        framing,
                        conn,
                        server: i,
                        pool: &up.pool,
                        keep_alive,
                    });
                }
                Err(HeadError::ClientGone) => return Err(Failure::ClientGone),
                Err(HeadError::Closed) if stale && can_resend && retry_ok => {
                    pooled = false;
                    continue;
                }
                Err(HeadError::Closed) if stale => {
                    // The keep-alive race for a request that must not be
                    // sent twice: nginx gives up too, without blaming the
                    // server.
                    tracing::error!(upstream = %up.name, server = %addr, "upstream closed a kept-alive connection before responding");
                    return Err(Failure::Status(StatusCode::BAD_GATEWAY));
                }
                Err(HeadError::Timeout) => {
                    bal.failed(i, std::time::Instant::now());
                    last = StatusCode::GATEWAY_TIMEOUT;
                    tracing::error!(upstream = %up.name, server = %addr, "upstream timed out reading the response header");
                }
                Err(HeadError::Invalid(what)) => {
                    bal.failed(i, std::time::Instant::now());
                    tracing::error!(upstream = %up.name, server = %addr, "upstream sent {what}");
                    // nginx's default proxy_next_upstream has no
                    // invalid_header: the client gets the 502.
                    return Err(Failure::Status(StatusCode::BAD_GATEWAY));
                }
                Err(HeadError::Closed) => {
                    bal.failed(i, std::time::Instant::now());
                    last = StatusCode::BAD_GATEWAY;
                    tracing::error!(upstream = %up.name, server = %addr, "upstream prematurely closed connection while reading response header");
                }
                Err(HeadError::Io(e)) => {
                    bal.failed(i, std::time::Instant::now());
                    last = StatusCode::BAD_GATEWAY;
                    tracing::error!(upstream = %up.name, server = %addr, error = %e, "upstream read failed");
                }
            }
            if !retry_ok || !can_resend {
                break 'servers;
            }
            continue 'servers;
        }
    }
    Err(Failure::Status(last))
}

/// An upstream response body owned by hyper's stream; the connection goes
/// back to the pool when the body ends.
pub(crate) struct UpstreamBody {
    conn: Option<UpConn>,
    reader: BodyReader,
    pool: Pool,
    server: usize,
    reusable: bool,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(this.reader.poll_next(cx, &mut conn.io, &mut conn.rbuf)) {
            Ok(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Ok(None) => {
                if let Some(c) = this.conn.take()
                    && this.reusable
                {
                    this.pool.checkin(this.server, c, Instant::now());
                }
                Poll::Ready(None)
            }
            Err(e) => {
                this.conn = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.reader {
            BodyReader::Length(n) => SizeHint::with_exact(n),
            BodyReader::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // hyper stops polling once `is_end_stream` says so: a body read to
        // its end still returns its connection.
        if self.reader.is_done()
            && self.reusable
            && let Some(c) = self.conn.take()
        {
            self.pool.checkin(self.server, c, Instant::now());
        }
    }
}
