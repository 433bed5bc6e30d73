//! One HTTP/1 client connection, from the first byte to the close.
//!
//! The connection's task reads a head, routes it, reads or streams the
//! request body, drives the upstream exchange itself (no other task or
//! channel is involved), writes the response head together with the first
//! body bytes, and loops for the next request (pipelined bytes included).
//! Between requests it holds no buffer: an idle keep-alive connection costs
//! its task and socket, as nginx's do.
//!
//! Timers: `header_timeout` from accept (first request) or from the first
//! byte of a head, `keepalive_timeout` while idle, `io_timeout` between two
//! reads of a request body and for each write to the client, the upstream's
//! timeouts while waiting for it; all on one [`Clock`].

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hadeploy_config::proxy::{Limits, Location, ProxyPass};
use http::{Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::body::{self, BodyReader};
use super::framing::{self, Framing};
use super::head::{self, HeadError};
use super::write::{self, Delimit};
use crate::body::ProxyBody;
use crate::clock::Clock;
use crate::conn::ConnInfo;
use crate::exchange::{self, Action, Routed};
use crate::headers::{self, ClientIdentity};
use crate::message::{RequestHead, names};
use crate::server::Shared;
use crate::state::State;
use crate::upstream::{self, BodySource, Failure, OutBody, Outgoing, UpResponse, UpstreamRt};

/// The HTTP/2 connection preface (RFC 9113 3.4): a client speaking
/// HTTP/2 with prior knowledge starts with it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// First read of a head; grown up to `max_header_bytes`.
const HEAD_READ: usize = 4096;

/// How a connection ended.
pub(crate) enum Outcome {
    Closed,
    /// The client sent the HTTP/2 preface: these bytes and the socket go
    /// to the HTTP/2 server.
    Http2(TcpStream, BytesMut),
}

enum Next {
    Request(RequestHead),
    Close,
    Refuse(HeadError),
    Http2,
}

struct Client {
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    io: TcpStream,
    rbuf: BytesMut,
    /// Response heads (and chunk lines) before they are written.
    wbuf: Vec<u8>,
    /// Upstream request heads before they are written.
    ubuf: Vec<u8>,
    clock: Clock,
    header_timeout: Duration,
    keepalive: Duration,
    io_timeout: Duration,
    max_header: usize,
    /// Requests served on one connection (nginx's keepalive_requests).
    keepalive_requests: u64,
    /// The client may still be sending bytes nobody will read (a refused
    /// or unread body): close with nginx's lingering close.
    unread: bool,
    served: u64,
    accepted: Instant,
    last_done: Instant,
}

/// Serves HTTP/1 requests on `io` until the client or a limit closes it.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    io: TcpStream,
    info: Arc<ConnInfo>,
    limits: &Limits,
) -> Outcome {
    let mut shutdown = shared.shutdown.subscribe();
    // Created once per connection: resolves when a graceful stop starts.
    let stopping = async move {
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            if shutdown.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let mut stopping = std::pin::pin!(stopping);
    let now = Instant::now();
    let mut c = Client {
        shared,
        info,
        io,
        rbuf: BytesMut::new(),
        wbuf: Vec::new(),
        ubuf: Vec::new(),
        clock: Clock::default(),
        header_timeout: limits.header_timeout,
        keepalive: limits.keepalive_timeout,
        io_timeout: limits.io_timeout,
        max_header: limits.max_header_bytes.max(256),
        keepalive_requests: limits.keepalive_requests,
        unread: false,
        served: 0,
        accepted: now,
        last_done: now,
    };
    loop {
        let head = match c.read_head(stopping.as_mut()).await {
            Next::Request(h) => h,
            Next::Close => break,
            Next::Http2 => return Outcome::Http2(c.io, c.rbuf),
            Next::Refuse(e) => {
                Box::pin(c.refuse(e.status())).await;
                c.unread = true;
                break;
            }
        };
        let state = c.shared.state.load_full();
        // Not boxed: moving a fresh request future to the heap copies all
        // of it (it is sized for its largest state), which costs more per
        // request than the memory it would save per idle connection. Rare,
        // large paths (files, error pages, upgrades) are boxed instead.
        let (keep, end) = c.exchange(&state, &head).await;
        drop(head);
        c.served += 1;
        c.last_done = end;
        if !keep {
            break;
        }
    }
    if c.unread || !c.rbuf.is_empty() {
        c.linger().await;
    } else {
        // Our FIN first: the client sees an orderly close.
        let _ = tokio::time::timeout(Duration::from_secs(1), c.io.shutdown()).await;
    }
    Outcome::Closed
}

/// Read buffers of idle connections, kept per thread for the next
/// connection that has bytes to read: 10k idle keep-alive connections hold
/// no buffers, and a busy one does not allocate one per request.
mod spare_buffers {
    use std::cell::RefCell;

    use bytes::BytesMut;

    /// Per thread; beyond this, buffers are freed.
    const KEEP: usize = 64;
    /// Buffers smaller than a head read are not worth keeping.
    const MIN: usize = super::HEAD_READ;

    thread_local! {
        static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer (with room, when one is spare).
    pub(super) fn take() -> BytesMut {
        SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default()
    }

    /// Keeps an emptied buffer for later.
    pub(super) fn put(mut buf: BytesMut) {
        buf.clear();
        // `try_reclaim` succeeds only when nothing else shares the
        // allocation any more (the last request's head was dropped).
        if buf.try_reclaim(MIN) {
            SPARE.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < KEEP {
                    s.push(buf);
                }
            });
        }
    }
}

/// Whether `buf` is (the start of) the HTTP/2 preface.
fn h2_prefix(buf: &[u8]) -> bool {
    let n = buf.len().min(H2_PREFACE.len());
    buf[..n] == H2_PREFACE[..n]
}

/// Copies bytes both ways between an upgraded client and its upstream
/// until both directions ended, either side errs, nothing moved for
/// `idle`, or a side does not take bytes for `write_gap`. A side's EOF is
/// passed on as a half-close. Returns the bytes sent to the client.
async fn tunnel(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    clock: &mut Clock,
    idle: Duration,
    write_gap: Duration,
) -> u64 {
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let (mut client_open, mut upstream_open) = (true, true);
    let mut down = 0u64;
    while client_open || upstream_open {
        let r = clock
            .run(Instant::now() + idle, async {
                tokio::select! {
                    r = client.read(&mut up_buf), if client_open => (true, r),
                    r = upstream.read(&mut down_buf), if upstream_open => (false, r),
                }
            })
            .await;
        let Ok((from_client, r)) = r else {
            tracing::debug!("upgraded connection idle: closed");
            return down;
        };
        let n = match r {
            Ok(n) => n,
            Err(_) => return down,
        };
        let (src_open, dst, data) = if from_client {
            (&mut client_open, &mut *upstream, &up_buf[..n])
        } else {
            (&mut upstream_open, &mut *client, &down_buf[..n])
        };
        let w = if n == 0 {
            *src_open = false;
            clock.run(Instant::now() + write_gap, dst.shutdown()).await
        } else {
            clock
                .run(Instant::now() + write_gap, dst.write_all(data))
                .await
        };
        if !matches!(w, Ok(Ok(()))) {
            return down;
        }
        if !from_client {
            down += n as u64;
        }
    }
    down
}

/// A piece of a client response as up to three slices: chunk line, data,
/// and the CRLF after a chunk.
fn framed<'a>(chunked: bool, line: &'a mut Vec<u8>, data: &'a [u8]) -> [&'a [u8]; 3] {
    line.clear();
    if chunked && !data.is_empty() {
        framing::chunk_header(line, data.len());
        [line.as_slice(), data, b"\r\n"]
    } else {
        [&[], data, &[]]
    }
}

/// The request body, read off the client connection as the upstream
/// request is written (`max_body_bytes: 0`).
struct ClientBody<'a> {
    io: &'a mut TcpStream,
    rbuf: &'a mut BytesMut,
    reader: &'a mut BodyReader,
}

impl BodySource for ClientBody<'_> {
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StatusCode>>> {
        match ready!(self.reader.poll_next(cx, self.io, self.rbuf)) {
            Ok(Some(b)) => Poll::Ready(Some(Ok(b))),
            Ok(None) => Poll::Ready(None),
            Err(e) if body::is_too_large(&e) => {
                Poll::Ready(Some(Err(StatusCode::PAYLOAD_TOO_LARGE)))
            }
            Err(_) => Poll::Ready(Some(Err(StatusCode::BAD_REQUEST))),
        }
    }
}

fn expects_continue(head: &RequestHead) -> bool {
    head.version == Version::HTTP_11 && head.headers.has_token(names::EXPECT, "100-continue")
}

impl Client {
    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }

    /// Waits for and parses the next request head.
    async fn read_head(&mut self, mut stopping: Pin<&mut impl Future<Output = ()>>) -> Next {
        let first = self.served == 0;
        let mut head_started = first.then_some(self.accepted);
        loop {
            if !self.rbuf.is_empty() {
                // Read only when a head needs a second read: most arrive
                // whole.
                head_started.get_or_insert_with(Instant::now);
                if first && h2_prefix(&self.rbuf) {
                    if self.rbuf.len() >= H2_PREFACE.len() {
                        return Next::Http2;
                    }
                } else {
                    match head::parse_request(&self.rbuf) {
                        Ok(Some((len, _))) if len > self.max_header => {
                            return Next::Refuse(HeadError::TooLarge);
                        }
                        Ok(Some((len, parts))) => {
                            let bytes = self.rbuf.split_to(len).freeze();
                            return Next::Request(head::request_from(bytes, parts));
                        }
                        Ok(None) if self.rbuf.len() > self.max_header => {
                            return Next::Refuse(HeadError::TooLarge);
                        }
                        Ok(None) => {}
                        Err(e) => return Next::Refuse(e),
                    }
                }
            }
            let deadline = match head_started {
                Some(t) => t + self.header_timeout,
                None => self.last_done + self.keepalive,
            };
            let idle = self.rbuf.is_empty();
            if idle {
                // Nothing pending: hold no buffer while the client thinks.
                spare_buffers::put(std::mem::take(&mut self.rbuf));
            }
            let want = (self.rbuf.len() + HEAD_READ).min(self.max_header + 1);
            let Client {
                io, rbuf, clock, ..
            } = self;
            let r = clock
                .run(deadline, async {
                    if idle {
                        // The socket's own readiness slot: no waiter list.
                        let ready = std::future::poll_fn(|cx| io.poll_read_ready(cx));
                        tokio::select! {
                            biased;
                            r = ready => r?,
                            () = stopping.as_mut() => return Ok(None),
                        }
                        *rbuf = spare_buffers::take();
                    }
                    rbuf.reserve(want.saturating_sub(rbuf.len()));
                    io.read_buf(rbuf).await.map(Some)
                })
                .await;
            match r {
                // Slowloris, an idle keep-alive connection, a graceful
                // stop: closed without a response, as nginx does.
                Err(_) | Ok(Ok(None)) | Ok(Ok(Some(0))) | Ok(Err(_)) => return Next::Close,
                Ok(Ok(Some(_))) => {}
            }
        }
    }

    /// Answers a head that could not be parsed, logs it on the address's
    /// default site (request `-`, as nginx logs its 400s) and closes.
    async fn refuse(&mut self, status: StatusCode) {
        let state = self.shared.state.load_full();
        let idx = exchange::site_index(&state, &self.info, None);
        let resp = match state.cfg.sites.get(idx) {
            Some(site) => exchange::error_page(site, status).await,
            None => exchange::default_error(status),
        };
        let mut keep = false;
        let (status, _) = self.write_local(resp, None, &mut keep).await;
        if let Some(rt) = state.sites.get(idx) {
            exchange::log(
                &self.shared.metrics,
                rt,
                headers::canonical(self.info.peer.ip()),
                None,
                status,
                0,
                std::time::Instant::now(),
                None,
            );
        }
    }

    /// One request and its response; whether the connection stays open,
    /// and when the exchange ended.
    async fn exchange(&mut self, state: &State, head: &RequestHead) -> (bool, Instant) {
        let start = Instant::now();
        let Some(routed) = exchange::route(state, &self.info, head) else {
            // Validation requires at least one site.
            return (false, start);
        };
        let id = headers::identify(self.info.peer, &head.headers, &state.cfg.trusted_proxies);
        // nginx's keepalive_requests: the last one says close.
        let mut keep = head.keep_alive()
            && !self.keepalive.is_zero()
            && self.served + 1 < self.keepalive_requests;
        let framing = if exchange::host_problem(head) {
            Err(StatusCode::BAD_REQUEST)
        } else {
            framing::request_framing(head).and_then(|f| match exchange::refused_method(head) {
                Some(status) => Err(status),
                None => Ok(f),
            })
        };
        let (status, bytes) = match framing {
            Err(status) => {
                keep = false;
                self.unread = true;
                Box::pin(self.fail(&routed, head, status, &mut keep)).await
            }
            Ok(framing) => {
                let mut reader = BodyReader::request(framing, state.cfg.limits.max_body_bytes);
                match &routed.action {
                    Action::Proxy { loc, pp, up } => {
                        self.proxy(
                            state,
                            &routed,
                            loc,
                            pp,
                            up,
                            head,
                            &id,
                            &mut reader,
                            &mut keep,
                            start,
                        )
                        .await
                    }
                    Action::Static { root, index } => {
                        self.skip_body(&mut reader, &mut keep);
                        Box::pin(self.serve_static(&routed, head, root, index, &mut keep)).await
                    }
                    Action::Fail(status) => {
                        self.skip_body(&mut reader, &mut keep);
                        Box::pin(self.fail(&routed, head, *status, &mut keep)).await
                    }
                }
            }
        };
        let end = Instant::now();
        exchange::log(
            &self.shared.metrics,
            routed.rt,
            id.real_ip,
            Some(head),
            status,
            bytes,
            end.into_std(),
            Some(end - start),
        );
        (keep, end)
    }

    async fn serve_static(
        &mut self,
        routed: &Routed<'_>,
        head: &RequestHead,
        root: &std::path::Path,
        index: &[String],
        keep: &mut bool,
    ) -> (u16, u64) {
        let resp = match exchange::serve_static(head, &self.info, &routed.norm, root, index).await {
            Ok(r) => r,
            Err(s) => exchange::error_page(routed.site, s).await,
        };
        self.write_local(resp, Some(head), keep).await
    }

    /// A body nobody reads: consumed if it is all here already, otherwise
    /// the connection closes after the response (the next request's start
    /// cannot be found without reading it).
    fn skip_body(&mut self, reader: &mut BodyReader, keep: &mut bool) {
        while let Ok(Some(_)) = reader.buffered(&mut self.rbuf) {}
        if !reader.is_done() {
            *keep = false;
            self.unread = true;
        }
    }

    /// A generated error with the site's error page.
    async fn fail(
        &mut self,
        routed: &Routed<'_>,
        head: &RequestHead,
        status: StatusCode,
        keep: &mut bool,
    ) -> (u16, u64) {
        if exchange::closes_connection(status) {
            *keep = false;
        }
        let resp = exchange::error_page(routed.site, status).await;
        self.write_local(resp, Some(head), keep).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn proxy(
        &mut self,
        state: &State,
        routed: &Routed<'_>,
        loc: &Location,
        pp: &ProxyPass,
        up: &UpstreamRt,
        head: &RequestHead,
        id: &ClientIdentity,
        reader: &mut BodyReader,
        keep: &mut bool,
        start: Instant,
    ) -> (u16, u64) {
        let limits = &state.cfg.limits;
        let upgrade =
            headers::upgrade_protocol(&head.headers).filter(|_| head.version == Version::HTTP_11);
        let streaming = limits.max_body_bytes == 0 && !reader.is_done() && upgrade.is_none();
        let buffered = if streaming || reader.is_done() || upgrade.is_some() {
            None
        } else {
            match self.read_body(head, reader, limits.max_body_bytes).await {
                Ok(b) => Some(b),
                Err(status) => {
                    *keep = false;
                    // A client waiting for 100-continue sends nothing more.
                    self.unread = !(status == StatusCode::PAYLOAD_TOO_LARGE
                        && expects_continue(head)
                        && self.rbuf.is_empty());
                    return Box::pin(self.fail(routed, head, status, keep)).await;
                }
            }
        };
        if upgrade.is_some() && !reader.is_done() {
            // A handshake with a body: unusual enough not to support.
            *keep = false;
        }
        let target = routed.upstream_target(head, loc, pp);
        if streaming && expects_continue(head) && self.rbuf.is_empty() {
            let _ = self.write_interim().await;
        }
        let result = if streaming {
            // The body is read while it is forwarded; a client that left
            // shows up as a body error instead of through `client_gone`.
            let length = match framing_of(reader) {
                Framing::Length(n) => Some(n),
                _ => None,
            };
            let mut src = ClientBody {
                io: &mut self.io,
                rbuf: &mut self.rbuf,
                reader,
            };
            let mut out = Outgoing {
                head,
                target: &target,
                id,
                upgrade,
                body: OutBody::Stream {
                    src: &mut src,
                    length,
                    started: false,
                },
                io_timeout: self.io_timeout,
            };
            upstream::forward(
                up,
                pp,
                &mut out,
                &mut self.clock,
                None,
                &mut self.ubuf,
                start,
            )
            .await
        } else {
            let mut out = Outgoing {
                head,
                target: &target,
                id,
                upgrade,
                body: buffered.map_or(OutBody::Empty, OutBody::Buffered),
                io_timeout: self.io_timeout,
            };
            upstream::forward(
                up,
                pp,
                &mut out,
                &mut self.clock,
                Some(&self.io),
                &mut self.ubuf,
                start,
            )
            .await
        };
        match result {
            Err(Failure::ClientGone) => {
                *keep = false;
                (499, 0)
            }
            Err(Failure::Status(status)) => {
                if streaming && !reader.is_done() {
                    *keep = false;
                    self.unread = true;
                }
                Box::pin(self.fail(routed, head, status, keep)).await
            }
            Ok(resp) if resp.head.status == StatusCode::SWITCHING_PROTOCOLS => {
                *keep = false;
                Box::pin(self.splice(resp, up.cfg.read_timeout)).await
            }
            Ok(resp) => {
                if streaming && !reader.is_done() {
                    // The upstream answered before the upload ended.
                    *keep = false;
                    self.unread = true;
                }
                self.relay(routed, head, resp, keep, up.cfg.read_timeout)
                    .await
            }
        }
    }

    async fn write_interim(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + self.io_timeout;
        match self
            .clock
            .run(
                deadline,
                self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n"),
            )
            .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Reads the whole request body (nginx's request buffering) within
    /// `max` bytes and `io_timeout` between two reads.
    async fn read_body(
        &mut self,
        head: &RequestHead,
        reader: &mut BodyReader,
        max: u64,
    ) -> Result<Bytes, StatusCode> {
        if let BodyReader::Length(n) = reader
            && *n > max
        {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        if expects_continue(head) && self.rbuf.is_empty() && self.write_interim().await.is_err() {
            return Err(StatusCode::REQUEST_TIMEOUT);
        }
        let mut first: Option<Bytes> = None;
        let mut more = BytesMut::new();
        let mut total = 0u64;
        loop {
            let deadline = Instant::now() + self.io_timeout;
            let piece = match self
                .clock
                .run(deadline, reader.next(&mut self.io, &mut self.rbuf))
                .await
            {
                Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
                Ok(Err(e)) if body::is_too_large(&e) => {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE);
                }
                Ok(Err(_)) => return Err(StatusCode::BAD_REQUEST),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(p))) => p,
            };
            total += piece.len() as u64;
            if total > max {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            // One piece (the usual small body) is kept as it is.
            match first.take() {
                None if more.is_empty() => first = Some(piece),
                prev => {
                    if let Some(p) = prev {
                        more.extend_from_slice(&p);
                    }
                    more.extend_from_slice(&piece);
                }
            }
        }
        Ok(first.unwrap_or_else(|| more.freeze()))
    }

    /// nginx's lingering close after a refused upload: read and discard
    /// what the client still sends for a while, so the kernel does not
    /// answer its upload with a reset that destroys the response before
    /// the client reads it.
    async fn linger(&mut self) {
        const GAP: Duration = Duration::from_secs(5);
        const TOTAL: Duration = Duration::from_secs(30);
        let end = Instant::now() + TOTAL;
        let _ = self.io.shutdown().await;
        let mut sink = vec![0u8; 16 * 1024];
        while Instant::now() < end {
            match tokio::time::timeout(GAP, self.io.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
    }

    /// Writes `pieces` to the client within `io_timeout`.
    async fn send(&mut self, pieces: &[&[u8]; 5], now: Instant) -> std::io::Result<()> {
        let mut slices = [IoSlice::new(&[]); 5];
        let mut n = 0;
        for p in pieces.iter().filter(|p| !p.is_empty()) {
            slices[n] = IoSlice::new(p);
            n += 1;
        }
        let deadline = now + self.io_timeout;
        match self
            .clock
            .run(
                deadline,
                write::write_all_vectored(&mut self.io, &mut slices[..n]),
            )
            .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client did not read for io_timeout",
            )),
        }
    }

    /// Relays an upstream response: the head with the first body bytes
    /// already received in one write, then the rest as it arrives, with
    /// `read_gap` as the longest wait for the upstream.
    async fn relay(
        &mut self,
        routed: &Routed<'_>,
        head: &RequestHead,
        mut resp: UpResponse<'_>,
        keep: &mut bool,
        read_gap: Duration,
    ) -> (u16, u64) {
        let now = Instant::now();
        let status = resp.head.status.as_u16();
        let client_10 = head.version == Version::HTTP_10;
        let unsized_body = matches!(resp.framing, Framing::Chunked | Framing::Close);
        let chunked = unsized_body && !client_10;
        if self.stopping() || (client_10 && unsized_body) {
            *keep = false;
        }
        let first = match resp.buffered() {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "upstream sent an invalid body");
                return Box::pin(self.fail(routed, head, StatusCode::BAD_GATEWAY, keep)).await;
            }
        };
        let d = Delimit::new(chunked, *keep, client_10);
        // Head, chunk line, first piece, CRLF, last chunk: one write.
        let mut wbuf = std::mem::take(&mut self.wbuf);
        wbuf.clear();
        write::upstream_response(&mut wbuf, &resp.head, resp.framing, d, false);
        if chunked && !first.is_empty() {
            framing::chunk_header(&mut wbuf, first.len());
        }
        let crlf: &[u8] = if chunked && !first.is_empty() {
            b"\r\n"
        } else {
            b""
        };
        let last: &[u8] = if chunked && resp.body.is_done() {
            framing::LAST_CHUNK
        } else {
            b""
        };
        if resp.body.is_done() {
            // The whole response is read (the usual small one): the
            // upstream connection goes back to the pool before the client
            // is written to, so a next request (on another client
            // connection too) finds it there.
            resp.finish(now);
            let r = self.send(&[&wbuf, &first, crlf, last, b""], now).await;
            self.wbuf = wbuf;
            if r.is_err() {
                *keep = false;
            }
            return (status, first.len() as u64);
        }
        let r = self.send(&[&wbuf, &first, crlf, last, b""], now).await;
        self.wbuf = wbuf;
        let mut sent = first.len() as u64;
        if r.is_err() {
            *keep = false;
            return (status, sent);
        }
        // Whether the last chunk already went out with a piece.
        let mut ended = !last.is_empty();
        let mut line = Vec::new();
        while !resp.body.is_done() {
            let deadline = Instant::now() + read_gap;
            let piece = match self.clock.run(deadline, resp.next()).await {
                Ok(Ok(Some(p))) => p,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "upstream response body failed");
                    *keep = false;
                    return (status, sent);
                }
                Err(_) => {
                    tracing::error!("upstream timed out sending the response body");
                    *keep = false;
                    return (status, sent);
                }
            };
            let [a, b, c] = framed(chunked, &mut line, &piece);
            let last: &[u8] = if chunked && resp.body.is_done() {
                framing::LAST_CHUNK
            } else {
                b""
            };
            if self
                .send(&[a, b, c, last, b""], Instant::now())
                .await
                .is_err()
            {
                *keep = false;
                return (status, sent);
            }
            ended |= !last.is_empty();
            sent += piece.len() as u64;
        }
        // A close-delimited body learns its end from EOF, after its last
        // piece went out.
        if chunked
            && !ended
            && self
                .send(&[framing::LAST_CHUNK, b"", b"", b"", b""], Instant::now())
                .await
                .is_err()
        {
            *keep = false;
            return (status, sent);
        }
        resp.finish(now);
        (status, sent)
    }

    /// A 101 answer to an upgrade: the head, then bytes both ways until
    /// both sides closed or neither sent anything for `idle` (nginx applies
    /// proxy_read_timeout to tunnels the same way).
    async fn splice(&mut self, mut resp: UpResponse<'_>, idle: Duration) -> (u16, u64) {
        let d = Delimit {
            chunked: false,
            close: false,
            keep_alive_10: false,
        };
        let mut wbuf = std::mem::take(&mut self.wbuf);
        wbuf.clear();
        write::upstream_response(&mut wbuf, &resp.head, resp.framing, d, true);
        let early = resp.conn.rbuf.split().freeze();
        let r = self
            .send(&[&wbuf, &early, b"", b"", b""], Instant::now())
            .await;
        self.wbuf = wbuf;
        if r.is_err() {
            return (101, 0);
        }
        let gap = self.io_timeout;
        let pending = std::mem::take(&mut self.rbuf);
        if !pending.is_empty()
            && !matches!(
                self.clock
                    .run(Instant::now() + gap, resp.conn.io.write_all(&pending))
                    .await,
                Ok(Ok(()))
            )
        {
            return (101, early.len() as u64);
        }
        let down = tunnel(&mut self.io, &mut resp.conn.io, &mut self.clock, idle, gap).await;
        (101, early.len() as u64 + down)
    }

    /// Writes a response the proxy made itself (`head` is `None` for heads
    /// that could not be parsed).
    async fn write_local(
        &mut self,
        resp: Response<ProxyBody>,
        head: Option<&RequestHead>,
        keep: &mut bool,
    ) -> (u16, u64) {
        let (mut parts, mut body) = resp.into_parts();
        let status = parts.status;
        let client_10 = head.is_none_or(|h| h.version == Version::HTTP_10);
        let head_req = head.is_some_and(|h| h.method == http::Method::HEAD);
        let no_body_status = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if parts
            .headers
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            *keep = false;
        }
        parts.headers.remove(http::header::CONNECTION);
        if self.stopping() {
            *keep = false;
        }
        let length = body.size_hint().exact();
        let sends_body = !no_body_status && !head_req;
        let chunked = sends_body && length.is_none() && !client_10;
        if sends_body && length.is_none() && client_10 {
            *keep = false;
        }
        let d = Delimit::new(chunked, *keep, client_10);
        let mut wbuf = std::mem::take(&mut self.wbuf);
        wbuf.clear();
        write::local_response(&mut wbuf, &parts, length.filter(|_| !no_body_status), d);
        let code = status.as_u16();
        let mut sent = 0u64;
        let mut line = Vec::new();
        // The head waits in `wbuf` for the first frame (small bodies: one
        // write).
        let mut head_pending = true;
        // The body ended as its framing says (not cut by an error).
        let mut complete = true;
        while sends_body && complete {
            let deadline = Instant::now() + self.io_timeout;
            let data = match self.clock.run(deadline, body.frame()).await {
                Ok(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "response body failed");
                    complete = false;
                    break;
                }
                Err(_) => {
                    complete = false;
                    break;
                }
            };
            let [a, b, c] = framed(chunked, &mut line, &data);
            let h: &[u8] = if head_pending { &wbuf } else { b"" };
            if self.send(&[h, a, b, c, b""], Instant::now()).await.is_err() {
                complete = false;
                head_pending = false;
                break;
            }
            head_pending = false;
            sent += data.len() as u64;
        }
        if !complete {
            // A cut body: the client must see the connection end.
            *keep = false;
        }
        let h: &[u8] = if head_pending { &wbuf } else { b"" };
        let last: &[u8] = if chunked && complete {
            framing::LAST_CHUNK
        } else {
            b""
        };
        if (!h.is_empty() || !last.is_empty())
            && self
                .send(&[h, last, b"", b"", b""], Instant::now())
                .await
                .is_err()
        {
            *keep = false;
        }
        self.wbuf = wbuf;
        (code, sent)
    }
}

/// The framing a reader was made from (for the upstream request's length).
fn framing_of(r: &BodyReader) -> Framing {
    match r {
        BodyReader::Length(n) => Framing::Length(*n),
        BodyReader::Chunked(_) => Framing::Chunked,
        BodyReader::Close => Framing::Close,
        BodyReader::Done => Framing::Empty,
    }
}
