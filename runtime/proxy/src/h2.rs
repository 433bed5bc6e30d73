//! HTTP/2 with prior knowledge (h2c), served by hyper. Requests are turned
//! into the same `RequestHead` the HTTP/1 engine produces, go through the
//! same routing and the same upstream exchange (upstreams speak HTTP/1.1),
//! and the upstream response is handed back to hyper as a streamed body.

mod io;
mod timers;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hadeploy_config::proxy::Limits;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::body::{Finish, IdleTimeoutBody, ProxyBody, TrackedBody};
use crate::clock::Clock;
use crate::conn::ConnInfo;
use crate::exchange::{self, Action};
use crate::headers;
use crate::message::{self, RequestHead};
use crate::metrics::Metrics;
use crate::server::Shared;
use crate::state::State;
use crate::upstream::{self, BodySource, Failure, OutBody, Outgoing, UpResponse};
use crate::wire;
use io::ClientIo;
use timers::{ConnTimers, Timer};

/// Serves an HTTP/2 connection whose first bytes (the preface) were
/// already read into `prefix`.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    prefix: BytesMut,
    info: Arc<ConnInfo>,
    limits: &Limits,
) {
    let header_timeout = limits.header_timeout;
    let ka = limits.keepalive_timeout;
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let svc_shared = shared.clone();
    let timers = Arc::new(ConnTimers::new(info.started));
    let svc_info = info.clone();
    let svc_timers = timers.clone();
    // nginx's keepalive_requests: after that many streams, a GOAWAY (the
    // streams already open are finished).
    let max_streams = limits.keepalive_requests.max(1);
    let streams = Arc::new(AtomicU64::new(0));
    let enough = Arc::new(Notify::new());
    let svc_enough = enough.clone();
    let svc = service_fn(move |req| {
        if streams.fetch_add(1, Ordering::Relaxed) + 1 == max_streams {
            svc_enough.notify_one();
        }
        let state = svc_shared.state.load_full();
        let metrics = svc_shared.metrics.clone();
        let info = svc_info.clone();
        let timers = svc_timers.clone();
        async move { Ok::<_, Infallible>(handle(state, metrics, info, timers, req).await) }
    });
    let io = ClientIo::new(stream, timers.clone(), limits.io_timeout, prefix.freeze());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.subscribe();
    let mut closing = false;
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
    // One timer for the connection's life, looked at every `step`: see
    // `ConnTimers::next_timer`.
    let step = if ka.is_zero() {
        header_timeout
    } else {
        header_timeout.min(ka)
    }
    .max(std::time::Duration::from_millis(1));
    let (first, _) = timers.next_timer(header_timeout, ka);
    let first = first.min(Instant::now() + step);
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(first));
    tokio::pin!(sleep);
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
                    tracing::debug!(peer = %info.peer, error = %e, "HTTP/2 connection ended with an error");
                }
                break;
            }
            _ = stopping.as_mut(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = enough.notified(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = sleep.as_mut(), if !closing => {
                let now = Instant::now();
                let (deadline, timer) = timers.next_timer(header_timeout, ka);
                match timer {
                    Timer::Header if deadline <= now => break,
                    Timer::Idle if deadline <= now => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
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
}

/// The log phase of an HTTP/2 request, run when its response body ends
/// (or 499 when the stream is dropped first).
struct RequestLog {
    state: Arc<State>,
    site: usize,
    head: RequestHead,
    remote: std::net::IpAddr,
    start: Instant,
    metrics: Arc<Metrics>,
    conn: Arc<ConnInfo>,
    timers: Arc<ConnTimers>,
    status: u16,
    written: bool,
}

impl RequestLog {
    fn write(&mut self, status: u16, body_bytes: u64) {
        self.written = true;
        if let Some(rt) = self.state.sites.get(self.site) {
            exchange::log(
                &self.metrics,
                rt,
                self.remote,
                Some(&self.head),
                status,
                body_bytes,
                Instant::now(),
                Some(self.start.elapsed()),
            );
        }
    }
}

impl Finish for RequestLog {
    fn finish(mut self: Box<Self>, body_bytes: u64) {
        let status = self.status;
        self.write(status, body_bytes);
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.written {
            self.write(499, 0);
        }
        self.timers.request_done();
    }
}

async fn handle(
    state: Arc<State>,
    metrics: Arc<Metrics>,
    conn: Arc<ConnInfo>,
    timers: Arc<ConnTimers>,
    req: Request<Incoming>,
) -> Response<TrackedBody> {
    let start = Instant::now();
    timers.request_started();
    let (mut parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    // RFC 9113 8.3.1: a `host` field that names another authority than
    // `:authority` makes the request malformed (routed by one name, read
    // by the backend under the other).
    let mut malformed = !message::valid_method(parts.method.as_str());
    match (parts.headers.get(header::HOST), parts.uri.authority()) {
        (Some(h), Some(a)) => {
            malformed |= !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes());
        }
        (None, Some(a)) => {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(header::HOST, v);
            }
        }
        _ => {}
    }
    join_cookies(&mut parts.headers);
    let head = RequestHead::from_parts(parts.method, Version::HTTP_2, &target, &parts.headers);
    let id = headers::identify(conn.peer, &head.headers, &state.cfg.trusted_proxies);
    let site = exchange::site_index(&state, &conn, head.host());
    // Exists before the upstream is asked: a stream the client resets
    // meanwhile drops it, which logs 499.
    let mut log = Box::new(RequestLog {
        status: 499,
        state: state.clone(),
        site,
        remote: id.real_ip,
        head,
        start,
        metrics,
        conn,
        timers,
        written: false,
    });
    let refuse = malformed.then_some(StatusCode::BAD_REQUEST);
    let resp = Box::pin(respond(&state, &log.conn, &log.head, &id, body, refuse)).await;
    log.status = resp.status().as_u16();
    resp.map(|b| TrackedBody::new(b, log))
}

/// HTTP/2 sends each cookie as its own field; HTTP/1.1 backends expect one
/// `Cookie` line joined with `; ` (RFC 9113 8.2.3).
fn join_cookies(h: &mut http::HeaderMap) {
    if h.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<u8> = h
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::COOKIE, v);
    }
}

async fn respond(
    state: &State,
    conn: &ConnInfo,
    head: &RequestHead,
    id: &headers::ClientIdentity,
    body: Incoming,
    refuse: Option<StatusCode>,
) -> Response<ProxyBody> {
    let Some(routed) = exchange::route(state, conn, head) else {
        return exchange::default_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    if exchange::host_problem(head) {
        return exchange::error_page(routed.site, StatusCode::BAD_REQUEST).await;
    }
    if let Some(status) = refuse.or_else(|| exchange::refused_method(head)) {
        return exchange::error_page(routed.site, status).await;
    }
    let result = match &routed.action {
        Action::Proxy { loc, pp, up } => {
            let limits = &state.cfg.limits;
            let target = routed.upstream_target(head, loc, pp);
            let mut clock = Clock::default();
            let mut stream = H2Body { body };
            let out_body = if stream.body.is_end_stream() {
                Ok(OutBody::Empty)
            } else if limits.max_body_bytes == 0 {
                Ok(OutBody::Stream {
                    src: &mut stream,
                    length: None,
                    started: false,
                })
            } else {
                read_body(&mut stream.body, limits.max_body_bytes, limits.io_timeout)
                    .await
                    .map(OutBody::Buffered)
            };
            match out_body {
                Err(status) => Err(status),
                Ok(body) => {
                    let mut out = Outgoing {
                        head,
                        target: &target,
                        id,
                        upgrade: None,
                        body,
                        io_timeout: limits.io_timeout,
                    };
                    let mut ubuf = Vec::new();
                    match upstream::forward(
                        up,
                        pp,
                        &mut out,
                        &mut clock,
                        None,
                        &mut ubuf,
                        tokio::time::Instant::now(),
                    )
                    .await
                    {
                        Ok(resp) => Ok(response(resp, up.cfg.read_timeout)),
                        Err(Failure::Status(s)) => Err(s),
                        Err(Failure::ClientGone) => Err(StatusCode::BAD_GATEWAY),
                    }
                }
            }
        }
        Action::Static { root, index } => {
            exchange::serve_static(head, conn, &routed.norm, root, index).await
        }
        Action::Fail(status) => Err(*status),
    };
    match result {
        Ok(r) => r,
        Err(status) => exchange::error_page(routed.site, status).await,
    }
}

/// Reads the whole body within `max` bytes and `gap` between reads.
async fn read_body(
    body: &mut Incoming,
    max: u64,
    gap: std::time::Duration,
) -> Result<Bytes, StatusCode> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(gap, body.frame()).await {
            Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(_))) => return Err(StatusCode::BAD_REQUEST),
            Ok(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    if buf.len() as u64 + d.len() as u64 > max {
                        return Err(StatusCode::PAYLOAD_TOO_LARGE);
                    }
                    buf.extend_from_slice(d);
                }
            }
        }
    }
}

/// An HTTP/2 request body streamed upstream as it arrives.
struct H2Body {
    body: Incoming,
}

impl BodySource for H2Body {
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StatusCode>>> {
        loop {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(_)) => return Poll::Ready(Some(Err(StatusCode::BAD_REQUEST))),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data()
                        && !d.is_empty()
                    {
                        return Poll::Ready(Some(Ok(d)));
                    }
                }
            }
        }
    }
}

/// The upstream response as hyper's response: end-to-end headers only
/// (HTTP/2 has no connection-specific ones), body streamed with
/// `read_timeout` as the longest gap.
fn response(resp: UpResponse<'_>, read_timeout: std::time::Duration) -> Response<ProxyBody> {
    let (head, body) = resp.into_body();
    let mut out = Response::new(IdleTimeoutBody::new(body, read_timeout).boxed_unsync());
    *out.status_mut() = head.status;
    let h = out.headers_mut();
    let named = wire::connection_named(&head.headers);
    for (n, v) in head.headers.iter() {
        if wire::is_hop(n, &named) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            h.append(n, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_joined() {
        let mut h = http::HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, vec![HeaderValue::from_static("a=1; b=2")]);
    }
}
