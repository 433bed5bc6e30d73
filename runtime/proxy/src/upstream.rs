//! One upstream group at run time (balancer + keep-alive pool) and the
//! exchange with it: the request head written from the client's header
//! lines, the response head read back, and nginx's `proxy_next_upstream
//! error timeout` retries around them.

use std::future::poll_fn;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hadeploy_config::proxy::{HostHeader, ProxyPass, Upstream};
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::balancer::{Balancer, PeerHealth};
use crate::body::BoxError;
use crate::clock::Clock;
use crate::h1::body::BodyReader;
use crate::h1::framing::{self, Framing};
use crate::h1::head::{self, RequestHead, ResponseHead, names};
use crate::h1::write;
use crate::headers::ClientIdentity;
use crate::pool::{self, Pool, UpConn};

/// Buffered request bodies up to this size go out in one timed write
/// with the head; larger ones in pieces of this size.
const SEND_PIECE: usize = 64 * 1024;

/// How long a backend whose socket refused the rest of an upload may take
/// to show the answer it sent early.
const EARLY_ANSWER: std::time::Duration = std::time::Duration::from_secs(1);

/// Largest upstream response head (nginx's proxy_buffer_size is 4-8 KiB;
/// more generous here, and "upstream sent too big header" beyond).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

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

/// Writes the upstream request head for one attempt at `addr`.
///
/// A `set_headers` entry replaces the line the proxy would write (Host, the
/// X-Forwarded-* family) and the client's lines of that name; an empty
/// value removes the header (nginx's `proxy_set_header X ""`).
fn encode_head(out: &mut Vec<u8>, o: &Outgoing<'_>, pp: &ProxyPass, addr: SocketAddr) {
    let h = o.head;
    let set = |name: &str| {
        pp.set_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    out.clear();
    write::put(out, h.method.as_str().as_bytes());
    out.push(b' ');
    write::put(out, o.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let custom = !pp.set_headers.is_empty();
    if !custom || !set("host") {
        out.extend_from_slice(b"Host: ");
        match &pp.host {
            HostHeader::Client => match h.host() {
                Some(v) => write::put(out, v.as_bytes()),
                None => addr_text(out, addr),
            },
            HostHeader::Upstream => addr_text(out, addr),
            HostHeader::Fixed(v) => write::put(out, v.as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    let named = write::connection_named(&h.headers);
    h.headers.copy_lines(out, |n| {
        valid_name(n) && !write::is_hop(n, &named) && !replaced(n, pp)
    });
    // nginx's $proxy_add_x_forwarded_for, X-Real-IP and the scheme.
    if !custom || !set("x-forwarded-for") {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if let Some(prev) = &o.id.forwarded_for {
            write::put(out, prev.as_bytes());
            out.extend_from_slice(b", ");
        }
        write::ip(out, o.id.peer);
        out.extend_from_slice(b"\r\n");
    }
    if !custom || !set("x-real-ip") {
        out.extend_from_slice(b"X-Real-IP: ");
        write::ip(out, o.id.real_ip);
        out.extend_from_slice(b"\r\n");
    }
    if !custom || !set("x-forwarded-proto") {
        out.extend_from_slice(b"X-Forwarded-Proto: ");
        write::put(
            out,
            o.id.forwarded_proto.as_deref().unwrap_or("http").as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
    }
    for (k, v) in &pp.set_headers {
        // nginx: an empty proxy_set_header value removes the header.
        if !v.is_empty() {
            write::header(out, k.as_bytes(), v.as_bytes());
        }
    }
    match &o.body {
        OutBody::Empty => {
            // A client's explicit `Content-Length: 0` is kept (POST).
            if h.headers.contains(names::CONTENT_LENGTH)
                || h.headers.contains(names::TRANSFER_ENCODING)
            {
                out.extend_from_slice(b"Content-Length: 0\r\n");
            }
        }
        OutBody::Buffered(b) => {
            out.extend_from_slice(b"Content-Length: ");
            write::number(out, b.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        OutBody::Stream { length, .. } => match length {
            Some(n) => {
                out.extend_from_slice(b"Content-Length: ");
                write::number(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        },
    }
    if let Some(proto) = o.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        write::header(out, b"Upgrade", proto);
    }
    out.extend_from_slice(b"\r\n");
}

/// nginx's defaults (`underscores_in_headers off`, `ignore_invalid_headers
/// on`): client header names other than letters, digits and `-` are not
/// passed on. Backends that map `-` and `_` to the same variable (CGI,
/// WSGI, Rack) would otherwise let a client's `X_Real_IP` shadow ours.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

fn addr_text(out: &mut Vec<u8>, addr: SocketAddr) {
    use std::io::Write as _;
    let _ = write!(out, "{addr}");
}

/// Client lines the proxy writes itself (or that a `set_headers` entry
/// replaces or removes).
fn replaced(name: &[u8], pp: &ProxyPass) -> bool {
    let eq = |h: &str| name.eq_ignore_ascii_case(h.as_bytes());
    let ours = match name.len() {
        4 => eq("host"),
        // The body was already read (or is streamed) by us: the client's
        // 100-continue handshake happened with the proxy.
        6 => eq("expect"),
        9 => eq("x-real-ip"),
        14 => eq("content-length"),
        15 => eq("x-forwarded-for"),
        // Transfer-Encoding is hop-by-hop anyway; the framing is ours.
        17 => eq("x-forwarded-proto") || eq("transfer-encoding"),
        _ => false,
    };
    ours || pp
        .set_headers
        .keys()
        .any(|k| name.eq_ignore_ascii_case(k.as_bytes()))
}

/// Writes `a` then `b` with as few system calls as possible.
async fn write_two(io: &mut TcpStream, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    write::write_all_vectored(io, &mut [IoSlice::new(a), IoSlice::new(b)]).await
}

/// Why sending the request failed.
enum SendError {
    Upstream(std::io::Error),
    /// The client's streamed body failed: answer with this status.
    Client(StatusCode),
    Timeout,
}

/// Writes the head and body; `first` is the deadline of the head's write
/// (the attempt's start + send_timeout), later pieces get `send_gap` each.
async fn send_request(
    conn: &mut UpConn,
    head: &[u8],
    body: &mut OutBody<'_>,
    clock: &mut Clock,
    first: Instant,
    send_gap: std::time::Duration,
    io_gap: std::time::Duration,
) -> Result<(), SendError> {
    let io = &mut conn.io;
    let r = match body {
        OutBody::Empty => clock.run(first, io.write_all(head)).await,
        OutBody::Buffered(b) if b.len() <= SEND_PIECE => {
            clock.run(first, write_two(io, head, b)).await
        }
        // A large body: send_timeout is the gap allowed per piece, as for
        // nginx, not a bound on the whole upload.
        OutBody::Buffered(b) => {
            let mut r = clock
                .run(first, write_two(io, head, &b[..SEND_PIECE]))
                .await;
            let mut rest = &b[SEND_PIECE..];
            while matches!(r, Ok(Ok(()))) && !rest.is_empty() {
                let n = rest.len().min(SEND_PIECE);
                r = clock
                    .run(Instant::now() + send_gap, io.write_all(&rest[..n]))
                    .await;
                rest = &rest[n..];
            }
            r
        }
        OutBody::Stream {
            src,
            length,
            started,
        } => {
            let chunked = length.is_none();
            match clock.run(first, io.write_all(head)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SendError::Upstream(e)),
                Err(_) => return Err(SendError::Timeout),
            }
            let mut frame = Vec::with_capacity(16);
            loop {
                let piece = match clock
                    .run(Instant::now() + io_gap, poll_fn(|cx| src.poll_piece(cx)))
                    .await
                {
                    Ok(Some(Ok(p))) => p,
                    Ok(None) => break,
                    Ok(Some(Err(status))) => return Err(SendError::Client(status)),
                    Err(_) => return Err(SendError::Client(StatusCode::REQUEST_TIMEOUT)),
                };
                *started = true;
                frame.clear();
                if chunked {
                    framing::chunk_header(&mut frame, piece.len());
                }
                let w = async {
                    write_two(io, &frame, &piece).await?;
                    if chunked {
                        io.write_all(b"\r\n").await?;
                    }
                    Ok::<(), std::io::Error>(())
                };
                match clock.run(Instant::now() + send_gap, w).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(SendError::Upstream(e)),
                    Err(_) => return Err(SendError::Timeout),
                }
            }
            if chunked {
                clock
                    .run(Instant::now() + send_gap, io.write_all(framing::LAST_CHUNK))
                    .await
            } else {
                Ok(Ok(()))
            }
        }
    };
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendError::Upstream(e)),
        Err(_) => Err(SendError::Timeout),
    }
}

/// Resolves when the client closed its connection (EOF or error); never
/// when it sends more (a pipelined request): then it stops watching. Uses
/// the socket's own read-readiness slot (no waiter list, no system call
/// until the client sends something or closes).
async fn client_gone(client: &TcpStream) {
    let mut watching = true;
    poll_fn(|cx| {
        if !watching {
            return Poll::Pending;
        }
        let mut b = [0u8; 1];
        let mut rb = tokio::io::ReadBuf::new(&mut b);
        match client.poll_peek(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                watching = false;
                Poll::Pending
            }
        }
    })
    .await
}

enum HeadError {
    /// No response byte arrived before the connection closed.
    Closed,
    Io(std::io::Error),
    Invalid(&'static str),
    Timeout,
    ClientGone,
}

/// Reads the response head (skipping 1xx interim responses other than a
/// 101) by `deadline`, watching `client` for an abort meanwhile.
async fn read_head(
    conn: &mut UpConn,
    method: &Method,
    clock: &mut Clock,
    deadline: Instant,
    client: Option<&TcpStream>,
) -> Result<(ResponseHead, Framing), HeadError> {
    // Whether any response byte (a skipped 1xx included) arrived: only a
    // connection that stayed silent can be the keep-alive race.
    let mut got_any = !conn.rbuf.is_empty();
    loop {
        if !conn.rbuf.is_empty() {
            match head::parse_response(&conn.rbuf) {
                // A head that arrived whole in one read is held to the
                // limit too, not only one still incomplete.
                Ok(Some((len, _))) if len > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid("too big header"));
                }
                Ok(Some((len, parts))) => {
                    let h = head::response_from(conn.rbuf.split_to(len).freeze(), parts);
                    if h.status.is_informational() && h.status != StatusCode::SWITCHING_PROTOCOLS {
                        continue;
                    }
                    let f = framing::response_framing(&h, method)
                        .map_err(|e| HeadError::Invalid(e.0))?;
                    return Ok((h, f));
                }
                Ok(None) if conn.rbuf.len() > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid("too big header"));
                }
                Ok(None) => {}
                Err(_) => return Err(HeadError::Invalid("invalid header")),
            }
        }
        if conn.rbuf.capacity() - conn.rbuf.len() < 1024 {
            conn.rbuf.reserve(8 * 1024);
        }
        let read = tokio::io::AsyncReadExt::read_buf(&mut conn.io, &mut conn.rbuf);
        let r = clock
            .run(deadline, async {
                match client {
                    Some(c) => tokio::select! {
                        biased;
                        r = read => Some(r),
                        () = client_gone(c) => None,
                    },
                    None => Some(read.await),
                }
            })
            .await;
        match r {
            Err(_) => return Err(HeadError::Timeout),
            Ok(None) => return Err(HeadError::ClientGone),
            Ok(Some(Ok(0))) if !got_any => return Err(HeadError::Closed),
            // nginx: "upstream prematurely closed connection while reading
            // response header" - an error, retried like one.
            Ok(Some(Ok(0))) => {
                return Err(HeadError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection in the middle of the response head",
                )));
            }
            Ok(Some(Ok(_))) => got_any = true,
            Ok(Some(Err(e))) if !got_any => {
                return Err(match e.kind() {
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                        HeadError::Closed
                    }
                    _ => HeadError::Io(e),
                });
            }
            Ok(Some(Err(e))) => return Err(HeadError::Io(e)),
        }
    }
}

fn keeps_alive(h: &ResponseHead) -> bool {
    if h.version == http::Version::HTTP_10 {
        h.headers.has_token(names::CONNECTION, "keep-alive")
    } else {
        !h.headers.has_token(names::CONNECTION, "close")
    }
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
            encode_head(head_buf, out, pp, addr);
            let resend_ok = !matches!(out.body, OutBody::Stream { started: true, .. });
            let sent = send_request(
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
                        read_head(&mut conn, &out.head.method, clock, early, None).await
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
            match read_head(&mut conn, &out.head.method, clock, deadline, client).await {
                Ok((h, framing)) => {
                    if h.status == StatusCode::SWITCHING_PROTOCOLS && out.upgrade.is_none() {
                        bal.failed(i, std::time::Instant::now());
                        tracing::error!(upstream = %up.name, server = %addr, "upstream sent 101 without an upgrade request");
                        return Err(Failure::Status(StatusCode::BAD_GATEWAY));
                    }
                    bal.succeeded(i);
                    let keep_alive = keeps_alive(&h);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::head::{parse_request, request_from};

    /// ProxyPass from a YAML snippet, through the config crate's parser.
    fn pp(yaml: &str) -> ProxyPass {
        let cfg = format!(
            "node: n\nupstreams: {{b: {{servers: [{{address: \"127.0.0.1:9\"}}]}}}}\nsites: [{{name: s, listen: [\"127.0.0.1:1\"], locations: [{{path: /, proxy: {yaml}}}]}}]\n"
        );
        let (c, _) = hadeploy_config::parse_proxy(&cfg, std::path::Path::new("t.yaml"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        c.sites[0].locations[0].proxy.clone().expect("proxy")
    }

    fn req(raw: &str) -> RequestHead {
        let (len, p) = parse_request(raw.as_bytes())
            .expect("ok")
            .expect("complete");
        request_from(Bytes::copy_from_slice(&raw.as_bytes()[..len]), p)
    }

    #[test]
    fn request_head_rewrite() {
        let h = req(
            "POST /api/x?y=1 HTTP/1.1\r\nHost: site.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Forwarded-For: 6.6.6.6\r\nExpect: 100-continue\r\nContent-Length: 3\r\nTE: trailers\r\nX-Kept: k\r\nX-Drop: d\r\n\r\n",
        );
        let id = ClientIdentity {
            peer: "192.0.2.1".parse().expect("ip"),
            real_ip: "192.0.2.1".parse().expect("ip"),
            forwarded_for: None,
            forwarded_proto: None,
        };
        let o = Outgoing {
            head: &h,
            target: "/x?y=1",
            id: &id,
            upgrade: None,
            body: OutBody::Buffered(Bytes::from_static(b"abc")),
            io_timeout: std::time::Duration::from_secs(1),
        };
        let p = pp("{upstream: b, set_headers: {X-Drop: '', X-Set: v}}");
        let mut out = Vec::new();
        encode_head(&mut out, &o, &p, "127.0.0.1:9".parse().expect("a"));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /x?y=1 HTTP/1.1\r\nHost: site.test\r\nX-Kept: k\r\nX-Forwarded-For: 192.0.2.1\r\nX-Real-IP: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Set: v\r\nContent-Length: 3\r\n\r\n"
        );
        let p = pp("{upstream: b, host: upstream}");
        let o = Outgoing {
            body: OutBody::Empty,
            ..o
        };
        encode_head(&mut out, &o, &p, "127.0.0.1:9".parse().expect("a"));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"),
            "{text}"
        );
        // The client said Content-Length: 3 but nothing is sent: 0.
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    }
}
