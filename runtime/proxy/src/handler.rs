//! One request: pick the site and location, proxy or serve a file, apply
//! error pages to errors the proxy generated, log when the body is done.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use hadeploy_config::proxy::{Location, LogFormat, ProxyPass, Site};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::access_log::{Entry, LogFile, basic_auth_user, format_line};
use crate::body::{Finish, ProxyBody, TrackedBody, full};
use crate::conn::ConnInfo;
use crate::headers::{self, ClientIdentity};
use crate::metrics::Metrics;
use crate::state::State;
use crate::static_files::{self, StaticRequest};
use crate::upstream::{self, OutBody, Outgoing};

/// One request's log phase. Created when the head arrives; moved into the
/// response body, it writes the log line and metrics when the body is done.
/// Dropped without a response (the client went away first), it logs 499
/// like nginx. Either way the connection's in-flight count goes down.
struct RequestLog {
    entry: Entry,
    log: Option<(Arc<LogFile>, LogFormat)>,
    site: String,
    start: Instant,
    metrics: Arc<Metrics>,
    conn: Arc<ConnInfo>,
    written: bool,
}

impl RequestLog {
    fn write(&mut self, status: u16, body_bytes: u64) {
        self.written = true;
        self.entry.status = status;
        self.entry.body_bytes_sent = body_bytes;
        self.entry.time = SystemTime::now();
        if let Some((file, format)) = &self.log {
            file.write_line(&format_line(&self.entry, *format));
        }
        self.metrics
            .observe(&self.site, status, self.start.elapsed());
    }
}

impl Finish for RequestLog {
    fn finish(mut self: Box<Self>, body_bytes: u64) {
        let status = self.entry.status;
        self.write(status, body_bytes);
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.written {
            self.write(499, 0);
        }
        self.conn.request_done();
    }
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Logs a request hyper refused before our handler saw it (malformed
/// head -> 400, head too large -> 431), on the default site of the address
/// the client reached, as nginx logs its 400s. The request line is unknown
/// at that point and is logged as `-`.
pub(crate) fn log_rejected(state: &State, metrics: &Metrics, conn: &ConnInfo, status: StatusCode) {
    let idx = state
        .vhosts
        .get(&conn.local)
        .or_else(|| state.vhosts.get(&conn.listen))
        .map(|t| t.select(None))
        .unwrap_or(0);
    let name = state
        .cfg
        .sites
        .get(idx)
        .map(|s| s.name.as_str())
        .unwrap_or("-");
    if let Some((file, format)) = state.sites.get(idx).and_then(|s| s.log.as_ref()) {
        let entry = Entry {
            remote_addr: conn.peer.ip().to_string(),
            remote_user: None,
            time: SystemTime::now(),
            request: "-".into(),
            status: status.as_u16(),
            body_bytes_sent: 0,
            referer: None,
            user_agent: None,
            forwarded_for: None,
        };
        file.write_line(&format_line(&entry, *format));
    }
    metrics.count(name, status.as_u16());
}

pub(crate) async fn handle(
    state: Arc<State>,
    metrics: Arc<Metrics>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<TrackedBody> {
    let start = Instant::now();
    conn.request_started();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let site_idx = state
        .vhosts
        .get(&conn.local)
        .or_else(|| state.vhosts.get(&conn.listen))
        .map(|t| t.select(host.as_deref()))
        .unwrap_or(0);
    let id = headers::identify(conn.peer, req.headers(), &state.cfg.trusted_proxies);
    let target = if req.version() == Version::HTTP_2 {
        req.uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into())
    } else {
        req.uri().to_string()
    };
    let entry = Entry {
        remote_addr: id.real_ip.to_string(),
        remote_user: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_auth_user),
        // Set when the line is written (nginx logs the end time).
        time: SystemTime::UNIX_EPOCH,
        request: format!("{} {} {:?}", req.method(), target, req.version()),
        status: 0,
        body_bytes_sent: 0,
        referer: header_str(&req, header::REFERER),
        user_agent: header_str(&req, header::USER_AGENT),
        forwarded_for: header_str(&req, header::HeaderName::from_static("x-forwarded-for")),
    };
    let site = state.cfg.sites.get(site_idx);
    let site_rt = state.sites.get(site_idx);
    let mut log = RequestLog {
        entry,
        log: site_rt.and_then(|s| s.log.clone()),
        site: site.map(|s| s.name.clone()).unwrap_or_else(|| "-".into()),
        start,
        metrics,
        conn,
        written: false,
    };
    let resp = match (site, site_rt) {
        (Some(site), Some(site_rt)) => match route(&state, site, site_rt, req, &id).await {
            Ok(r) => r,
            // Boxed (cold path): keeps the request future small.
            Err(status) => Box::pin(error_page(site, status)).await,
        },
        // Validation requires at least one site; this is unreachable but
        // cheaper to answer than to prove.
        _ => default_error(StatusCode::INTERNAL_SERVER_ERROR),
    };
    log.entry.status = resp.status().as_u16();
    resp.map(|b| TrackedBody::new(b, Box::new(log)))
}

async fn route(
    state: &State,
    site: &Site,
    site_rt: &crate::state::SiteRt,
    req: Request<Incoming>,
    id: &ClientIdentity,
) -> Result<Response<ProxyBody>, StatusCode> {
    let limits = &state.cfg.limits;
    let norm =
        static_files::normalize_path(req.uri().path()).map_err(|_| StatusCode::BAD_REQUEST)?;
    if limits.max_body_bytes > 0
        && let Some(len) = content_length(&req)
        && len > limits.max_body_bytes
    {
        let expects = req.headers().contains_key(header::EXPECT);
        linger(req.into_body(), expects);
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let loc: Option<&Location> = site_rt
        .locations
        .select(&norm)
        .and_then(|i| site.locations.get(i));
    if let Some(l) = loc
        && let Some(pp) = &l.proxy
    {
        return proxy(state, l, pp, req, id, &norm).await;
    }
    let root = loc.and_then(|l| l.root.as_ref()).or(site.root.as_ref());
    let index = loc.and_then(|l| l.index.as_ref()).unwrap_or(&site.index);
    let Some(root) = root else {
        return Err(StatusCode::NOT_FOUND);
    };
    let sreq = StaticRequest {
        method: req.method(),
        headers: req.headers(),
        path: &norm,
        raw_path: req.uri().path(),
        raw_query: req.uri().query(),
    };
    // Boxed: the proxy path does not carry the file server's state.
    Box::pin(static_files::serve(&sreq, root, index)).await
}

fn content_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// nginx `proxy_pass` URI rules: without `uri` the request URI goes as the
/// client sent it; with `uri` the matched location prefix is replaced.
pub(crate) fn upstream_target(
    raw_path: &str,
    query: Option<&str>,
    norm: &str,
    loc: &str,
    uri: Option<&str>,
) -> String {
    let mut out = match uri {
        None => raw_path.to_string(),
        Some(u) => {
            let rest = if let Some(r) = raw_path.strip_prefix(loc) {
                r.to_string()
            } else {
                // The prefix matched only after decoding (`/%61pi/`): use
                // the normalized path, re-escaped where it must be.
                escape_path(norm.strip_prefix(loc).unwrap_or(""))
            };
            format!("{u}{rest}")
        }
    };
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn escape_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

async fn proxy(
    state: &State,
    loc: &Location,
    pp: &ProxyPass,
    req: Request<Incoming>,
    id: &ClientIdentity,
    norm: &str,
) -> Result<Response<ProxyBody>, StatusCode> {
    let Some(up) = state.upstreams.get(&pp.upstream) else {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let limits = &state.cfg.limits;
    let target = upstream_target(
        req.uri().path(),
        req.uri().query(),
        norm,
        &loc.path,
        pp.uri.as_deref(),
    );
    let (mut parts, body) = req.into_parts();
    let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let upgrade = headers::upgrade_protocol(&parts.headers).and_then(|proto| {
        parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .map(|on| (proto, on))
    });
    let mut hdrs = std::mem::take(&mut parts.headers);
    headers::strip_hop_by_hop(&mut hdrs);
    headers::set_forwarding(&mut hdrs, id);
    // The body is read before forwarding (or streamed on our side), so the
    // client's 100-continue handshake already happened with us.
    hdrs.remove(header::EXPECT);
    let out_body = if upgrade.is_some() {
        OutBody::Buffered(Bytes::new())
    } else if limits.max_body_bytes == 0 {
        OutBody::Streaming(Some(
            body.map_err(|e| Box::new(e) as crate::body::BoxError)
                .boxed_unsync(),
        ))
    } else if body.is_end_stream() {
        // No body (most GETs): nothing to read or time.
        OutBody::Buffered(Bytes::new())
    } else {
        OutBody::Buffered(
            Box::pin(read_body(body, limits.max_body_bytes, limits.io_timeout)).await?,
        )
    };
    let out = Outgoing {
        method: parts.method,
        path_and_query: target,
        headers: hdrs,
        client_host,
        body: out_body,
        upgrade,
    };
    upstream::forward(up, pp, out).await
}

/// nginx's lingering close: after refusing a body (413), read and discard
/// what the client is still sending for a while, so the kernel does not
/// answer its upload with a reset that destroys the 413 before the client
/// reads it. Nothing is read when the client waits for `100 Continue`
/// (reading would invite the upload).
fn linger(mut body: Incoming, expects_continue: bool) {
    if expects_continue {
        return;
    }
    const LINGER_GAP: Duration = Duration::from_secs(5);
    const LINGER_TOTAL: Duration = Duration::from_secs(30);
    tokio::spawn(async move {
        let end = tokio::time::Instant::now() + LINGER_TOTAL;
        while tokio::time::Instant::now() < end {
            match tokio::time::timeout(LINGER_GAP, body.frame()).await {
                Ok(Some(Ok(_))) => {}
                _ => return,
            }
        }
    });
}

/// Reads the whole body (nginx's request buffering) within `max` bytes and
/// with at most `gap` between two reads.
async fn read_body(
    mut body: Incoming,
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
                        linger(body, false);
                        return Err(StatusCode::PAYLOAD_TOO_LARGE);
                    }
                    buf.extend_from_slice(d);
                }
            }
        }
    }
}

/// The site's `error_page` for a generated error, served with the original
/// status; nginx's built-in page otherwise.
async fn error_page(site: &Site, status: StatusCode) -> Response<ProxyBody> {
    if let (Some(uri), Some(root)) = (site.error_pages.get(&status.as_u16()), site.root.as_ref())
        && let Ok(norm) = static_files::normalize_path(uri)
        && let Some((data, mime)) =
            static_files::read_small(&root.join(Path::new(norm.trim_start_matches('/')))).await
    {
        let mut resp = Response::new(full(data));
        *resp.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(&mime) {
            resp.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        return resp;
    }
    default_error(status)
}

pub(crate) fn default_error(status: StatusCode) -> Response<ProxyBody> {
    let reason = status.canonical_reason().unwrap_or("");
    let code = status.as_u16();
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>hadeploy</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    if status == StatusCode::BAD_REQUEST
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::PAYLOAD_TOO_LARGE
    {
        // nginx closes after these: the rest of the request is unread.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_replacement() {
        assert_eq!(
            upstream_target("/api/x", None, "/api/x", "/api/", Some("/")),
            "/x"
        );
        assert_eq!(
            upstream_target("/api/x", Some("a=1"), "/api/x", "/api/", Some("/v1/")),
            "/v1/x?a=1"
        );
        assert_eq!(
            upstream_target("/api/x", None, "/api/x", "/api/", None),
            "/api/x"
        );
        assert_eq!(
            upstream_target("/a%20b", Some("q"), "/a b", "/", None),
            "/a%20b?q"
        );
        assert_eq!(
            upstream_target("/%61pi/x y", None, "/api/x y", "/api/", Some("/")),
            "/x%20y"
        );
        assert_eq!(upstream_target("/api", None, "/api", "/api", Some("")), "/");
    }
}
