//! What both client protocols share about one request: choosing the site
//! and location (nginx's rules), nginx's `proxy_pass` URI replacement, the
//! static and error-page responses the proxy makes itself, and the log
//! phase (access log line and metrics, after the response).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use hadeploy_config::proxy::{Location, ProxyPass, Site};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::access_log::{self, Fields};
use crate::body::{ProxyBody, full};
use crate::conn::ConnInfo;
use crate::message::{RequestHead, names};
use crate::metrics::Metrics;
use crate::state::{SiteRt, State};
use crate::static_files::{self, StaticRequest};
use crate::upstream::UpstreamRt;
use crate::uri;

/// What to do with a request once its site and location are known.
pub(crate) enum Action<'s> {
    Proxy {
        loc: &'s Location,
        pp: &'s ProxyPass,
        up: &'s UpstreamRt,
    },
    Static {
        root: &'s Path,
        index: &'s [String],
    },
    /// A generated error (the site's error pages apply).
    Fail(StatusCode),
}

/// A routed request.
pub(crate) struct Routed<'s> {
    pub site: &'s Site,
    pub rt: &'s SiteRt,
    /// The decoded, dot-segment free path (empty when it was invalid);
    /// borrowed exactly when the request's path was already normal.
    pub norm: Cow<'s, str>,
    pub action: Action<'s>,
}

impl Routed<'_> {
    /// The target sent upstream for `head` proxied by `loc` / `pp`.
    pub(crate) fn upstream_target<'h>(
        &self,
        head: &'h RequestHead,
        loc: &Location,
        pp: &ProxyPass,
    ) -> Cow<'h, str> {
        upstream_target(
            head.path(),
            head.query(),
            &self.norm,
            matches!(self.norm, Cow::Borrowed(_)),
            &loc.path,
            pp.uri.as_deref(),
        )
    }
}

/// The site for a connection's address and a Host: the address's table, or
/// the wildcard listener's that accepted it; the first site otherwise.
pub(crate) fn site_index(state: &State, conn: &ConnInfo, host: Option<&str>) -> usize {
    state
        .vhost(&conn.local)
        .or_else(|| state.vhost(&conn.listen))
        .map(|t| t.select(host))
        .unwrap_or(0)
}

pub(crate) fn route<'s>(
    state: &'s State,
    conn: &ConnInfo,
    head: &'s RequestHead,
) -> Option<Routed<'s>> {
    let idx = site_index(state, conn, head.host());
    let site = state.cfg.sites.get(idx)?;
    let rt = state.sites.get(idx)?;
    let norm = match uri::normalize_path(head.path()) {
        Ok(n) => n,
        Err(()) => {
            return Some(Routed {
                site,
                rt,
                norm: Cow::Borrowed(""),
                action: Action::Fail(StatusCode::BAD_REQUEST),
            });
        }
    };
    let li = rt.locations.select(&norm);
    let loc = li.and_then(|i| site.locations.get(i));
    let action = match loc {
        Some(l) if l.proxy.is_some() => match l.proxy.as_ref().zip(
            li.and_then(|i| rt.upstreams.get(i))
                .and_then(|u| u.as_deref()),
        ) {
            Some((pp, up)) => Action::Proxy { loc: l, pp, up },
            // Validation ties every proxy to an upstream.
            None => Action::Fail(StatusCode::INTERNAL_SERVER_ERROR),
        },
        _ => match loc.and_then(|l| l.root.as_deref()).or(site.root.as_deref()) {
            Some(root) => Action::Static {
                root,
                index: loc.and_then(|l| l.index.as_deref()).unwrap_or(&site.index),
            },
            None => Action::Fail(StatusCode::NOT_FOUND),
        },
    };
    Some(Routed {
        site,
        rt,
        norm,
        action,
    })
}

/// nginx `proxy_pass` URI rules: without `uri` the request URI goes as the
/// client sent it; with `uri` the matched location prefix of the
/// *normalized* path is replaced, and the rest re-escaped: what the backend
/// gets is always under `uri` (`/api/../api/admin` with `/api/` -> `/v1/`
/// is `/v1/admin`, never `/v1/../api/admin`). `plain`: the path was
/// already normal (`norm` is `raw_path`), so it is copied as sent.
pub(crate) fn upstream_target<'a>(
    raw_path: &'a str,
    query: Option<&str>,
    norm: &str,
    plain: bool,
    loc: &str,
    uri: Option<&str>,
) -> Cow<'a, str> {
    let q_len = query.map_or(0, |q| q.len() + 1);
    let mut out = match uri {
        None if query.is_none() && !raw_path.is_empty() => return Cow::Borrowed(raw_path),
        None => {
            let mut s = String::with_capacity(raw_path.len() + 1 + q_len);
            s.push_str(raw_path);
            s
        }
        Some(u) => {
            // The location was chosen by this normalized path, so it has
            // the prefix (exact locations: all of it).
            let rest = norm.strip_prefix(loc).unwrap_or("");
            let mut s = String::with_capacity(u.len() + rest.len() + 1 + q_len);
            s.push_str(u);
            if plain {
                s.push_str(rest);
            } else {
                uri::push_escaped(&mut s, rest);
            }
            s
        }
    };
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Cow::Owned(out)
}

/// Serves a static file, or a generated error status.
pub(crate) async fn serve_static(
    head: &RequestHead,
    conn: &ConnInfo,
    norm: &str,
    root: &Path,
    index: &[String],
) -> Result<Response<ProxyBody>, StatusCode> {
    let sreq = StaticRequest {
        method: &head.method,
        headers: &head.headers,
        path: norm,
        query: head.query(),
        host: head.host(),
        local: conn.local,
    };
    static_files::serve(&sreq, root, index).await
}

/// The site's `error_page` for a generated error, served with the original
/// status; nginx's built-in page otherwise.
pub(crate) async fn error_page(site: &Site, status: StatusCode) -> Response<ProxyBody> {
    if let (Some(page), Some(root)) = (site.error_pages.get(&status.as_u16()), site.root.as_ref())
        && let Ok(norm) = uri::normalize_path(page)
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

/// nginx's built-in error page.
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
    resp
}

/// Whether the request's Host is unusable (nginx answers 400 "client sent
/// invalid host header"): missing on HTTP/1.1, given twice, empty, or with
/// characters no host name or address has (`/`, `\\`, spaces, `..`).
pub(crate) fn host_problem(head: &RequestHead) -> bool {
    let mut lines = head.headers.get_all(names::HOST);
    let first = lines.next();
    if lines.next().is_some() {
        return true;
    }
    let Some(host) = head.target_authority().map(str::as_bytes).or(first) else {
        return head.version == http::Version::HTTP_11;
    };
    host.is_empty()
        || host[0] == b'.'
        || host.windows(2).any(|w| w == b"..")
        || !host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(b))
}

/// A method refused whatever the location, with the status nginx answers:
/// TRACE (405; a backend answering it would echo the request back, the
/// proxy's own headers and the client's cookies included). Methods outside
/// nginx's alphabet never get this far (400 when the head is parsed).
pub(crate) fn refused_method(head: &RequestHead) -> Option<StatusCode> {
    (head.method == http::Method::TRACE).then_some(StatusCode::METHOD_NOT_ALLOWED)
}

/// Statuses after which nginx closes the connection: the rest of the
/// request is unread or unusable.
pub(crate) fn closes_connection(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            | StatusCode::NOT_IMPLEMENTED
            | StatusCode::HTTP_VERSION_NOT_SUPPORTED
    )
}

/// The wall-clock time at `at`, from a per-thread anchor re-read once a
/// second: the log shows seconds, and the realtime clock is not read for
/// every request.
fn wall_time(at: Instant) -> SystemTime {
    thread_local! {
        static ANCHOR: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
    }
    ANCHOR.with(|a| match a.get() {
        Some((i, w)) if at >= i && at - i < Duration::from_secs(1) => w + (at - i),
        _ => {
            let w = SystemTime::now();
            a.set(Some((at, w)));
            w
        }
    })
}

/// The log phase of one request: its access log line and its metrics.
/// `end` is when the response ended; `took` its duration (none for heads
/// refused before routing).
#[allow(clippy::too_many_arguments)]
pub(crate) fn log(
    metrics: &Metrics,
    rt: &SiteRt,
    remote: IpAddr,
    head: Option<&RequestHead>,
    status: u16,
    body_bytes: u64,
    end: Instant,
    took: Option<Duration>,
) {
    if let Some((file, format)) = &rt.log {
        thread_local! {
            static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            let f = Fields {
                remote_addr: remote,
                head,
                status,
                body_bytes_sent: body_bytes,
                time: wall_time(end),
            };
            access_log::format_line(&mut line, &f, *format);
            file.write_line(&line);
        });
    }
    match took {
        Some(t) => metrics.observe(&rt.stats, status, t),
        None => metrics.count(&rt.stats, status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_checks() {
        let head = |raw: &str| {
            let (len, p) = crate::h1::head::parse_request(raw.as_bytes())
                .expect("ok")
                .expect("complete");
            crate::h1::head::request_from(bytes::Bytes::copy_from_slice(&raw.as_bytes()[..len]), p)
        };
        for ok in [
            "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: under_score.example\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a.example/ HTTP/1.1\r\n\r\n",
        ] {
            assert!(!host_problem(&head(ok)), "{ok:?}");
        }
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: \r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: ..\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: .a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        ] {
            assert!(host_problem(&head(bad)), "{bad:?}");
        }
    }

    /// The upstream target for `target` in location `loc` with `uri`.
    fn up(target: &str, loc: &str, uri: Option<&str>) -> String {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let norm = uri::normalize_path(path).expect("valid path");
        let plain = matches!(norm, Cow::Borrowed(_));
        upstream_target(path, query, &norm, plain, loc, uri).into_owned()
    }

    #[test]
    fn uri_replacement() {
        assert_eq!(up("/api/x", "/api/", Some("/")), "/x");
        assert_eq!(up("/api/x?a=1", "/api/", Some("/v1/")), "/v1/x?a=1");
        assert_eq!(up("/api/x", "/api/", None), "/api/x");
        assert_eq!(up("/a%20b?q", "/", None), "/a%20b?q");
        assert_eq!(up("/%61pi/x%20y", "/api/", Some("/")), "/x%20y");
        assert_eq!(up("/api", "/api", Some("")), "/");
        // Without `uri` the target goes as sent (nginx), dots included.
        assert_eq!(up("/x/../y%2e%2e//z", "/", None), "/x/../y%2e%2e//z");
    }

    #[test]
    fn uri_replacement_uses_the_normalized_path() {
        // Regression: the prefix was cut off the raw path, so a backend
        // that normalizes read `/v1/../api/admin` as `/api/admin`, outside
        // `/v1/`.
        for target in [
            "/api/../api/admin",
            "/api/%2e%2e/api/admin",
            "/api/.%2E/api/admin",
            "/api/x/../../api/admin",
            "/api/x/..%2f..%2fapi/admin",
            "//api//./admin",
        ] {
            assert_eq!(up(target, "/api/", Some("/v1/")), "/v1/admin", "{target}");
        }
        assert_eq!(
            up("/api/a%2fb?q=%2e", "/api/", Some("/v1/")),
            "/v1/a/b?q=%2e"
        );
        assert_eq!(up("/api/x/..", "/api/", Some("/v1/")), "/v1/");
        assert_eq!(
            up("/api/%3f%23%25%0d%0a%20", "/api/", Some("/v1/")),
            "/v1/%3F%23%25%0D%0A%20"
        );
    }
}
