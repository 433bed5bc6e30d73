//! One upstream group at run time: its balancer, its keep-alive pool, and
//! the forwarding loop with nginx's `proxy_next_upstream error timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hadeploy_config::proxy::{HostHeader, ProxyPass, Upstream};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::balancer::{Balancer, PeerHealth};
use crate::body::{IdleTimeoutBody, ProxyBody, full};
use crate::headers::strip_hop_by_hop;
use crate::pool::{Pool, PooledBody, SendError};

pub(crate) struct UpstreamRt {
    pub name: String,
    pub cfg: Upstream,
    pub balancer: Balancer,
    pool: Pool,
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
        // The idle timeout is enforced by the pool's reaper, so stale
        // connections do not race the backend's own close (hyper #3553).
        let pool = Pool::new(
            cfg.servers.len(),
            cfg.keepalive.max_idle,
            cfg.keepalive.idle_timeout,
            cfg.connect_timeout,
        );
        UpstreamRt {
            name: name.to_string(),
            cfg: cfg.clone(),
            balancer: Balancer::new(&cfg.servers, health),
            pool,
        }
    }
}

/// The request body as the forwarding loop sees it.
pub(crate) enum OutBody {
    /// Read fully before the first attempt (nginx's request buffering), so
    /// it can be sent again to the next server.
    Buffered(Bytes),
    /// `max_body_bytes: 0` (unlimited): streamed once, never retried.
    Streaming(Option<ProxyBody>),
}

/// A request ready to be forwarded: hop-by-hop headers gone, forwarding
/// headers set; Host is chosen per attempt.
pub(crate) struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub client_host: Option<HeaderValue>,
    pub body: OutBody,
    pub upgrade: Option<(HeaderValue, OnUpgrade)>,
}

/// nginx does not retry POST, LOCK and PATCH once they were sent.
fn idempotent(m: &Method) -> bool {
    !(m == Method::POST || m == Method::PATCH || m.as_str() == "LOCK")
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Sends the request to the upstream, trying the next server after
/// connect errors, other errors before the response head (idempotent
/// methods only) and read timeouts (idempotent only). Once a response head
/// arrived it is returned as is, whatever its status: a backend's own 502
/// is the client's answer. `Err` is a status the proxy generates.
pub(crate) async fn forward(
    up: &UpstreamRt,
    pp: &ProxyPass,
    mut out: Outgoing,
) -> Result<Response<ProxyBody>, StatusCode> {
    let bal = &up.balancer;
    let max = bal.max_tries().max(1);
    let tries = match up.cfg.next_upstream_tries {
        0 => max,
        n => (n as usize).min(max),
    };
    let mut tried = bal.new_tried();
    let mut last = StatusCode::BAD_GATEWAY;
    let retry_ok = idempotent(&out.method);
    let deadline = up.cfg.connect_timeout + up.cfg.read_timeout;
    let mut upgrade = out.upgrade.take();
    for attempt in 0..tries {
        let Some(i) = bal.select(&mut tried, Instant::now()) else {
            if attempt == 0 {
                tracing::error!(upstream = %up.name, "no live upstreams");
            }
            break;
        };
        let addr = bal.addrs[i];
        let body = match &mut out.body {
            OutBody::Buffered(b) => full(b.clone()),
            OutBody::Streaming(b) => match b.take() {
                Some(b) => b,
                None => break,
            },
        };
        // The headers are moved into the last attempt's request rather
        // than copied (the common case: one attempt).
        let last_attempt = attempt + 1 == tries;
        let req = match build_request(
            &mut out,
            last_attempt,
            pp,
            addr,
            upgrade.as_ref().map(|u| &u.0),
            body,
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(upstream = %up.name, error = %e, "cannot build upstream request");
                return Err(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        let send = up.pool.send(i, addr, req, upgrade.is_some());
        match tokio::time::timeout(deadline, send).await {
            Ok(Ok(resp)) => {
                bal.succeeded(i);
                return Ok(response(
                    resp,
                    upgrade.take().map(|u| u.1),
                    up.cfg.read_timeout,
                ));
            }
            Ok(Err(e)) => {
                bal.failed(i, Instant::now());
                let timed_out = is_timeout(&e);
                last = if timed_out {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                tracing::error!(upstream = %up.name, server = %addr, error = %error_chain(&e), "upstream request failed");
                // A connect error means nothing was sent: always safe to retry.
                if !matches!(e, SendError::Connect(_)) && !retry_ok {
                    break;
                }
            }
            Err(_) => {
                bal.failed(i, Instant::now());
                last = StatusCode::GATEWAY_TIMEOUT;
                tracing::error!(upstream = %up.name, server = %addr, "upstream timed out reading the response header");
                if !retry_ok {
                    break;
                }
            }
        }
    }
    Err(last)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        s.push_str(": ");
        s.push_str(&err.to_string());
        cur = err.source();
    }
    s
}

fn build_request(
    out: &mut Outgoing,
    last_attempt: bool,
    pp: &ProxyPass,
    addr: SocketAddr,
    upgrade: Option<&HeaderValue>,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, http::Error> {
    // Origin form (`/path?query`): what goes on the wire to the upstream.
    let uri = if last_attempt {
        Uri::try_from(std::mem::take(&mut out.path_and_query))?
    } else {
        Uri::try_from(out.path_and_query.as_str())?
    };
    let mut req = Request::builder()
        .method(out.method.clone())
        .uri(uri)
        .version(http::Version::HTTP_11)
        .body(body)?;
    let h = req.headers_mut();
    *h = if last_attempt {
        std::mem::take(&mut out.headers)
    } else {
        out.headers.clone()
    };
    let host = match &pp.host {
        HostHeader::Client => out.client_host.clone(),
        HostHeader::Upstream => HeaderValue::from_str(&addr.to_string()).ok(),
        HostHeader::Fixed(v) => HeaderValue::from_str(v).ok(),
    };
    h.insert(
        header::HOST,
        host.unwrap_or_else(|| {
            HeaderValue::from_str(&addr.to_string())
                .unwrap_or(HeaderValue::from_static("localhost"))
        }),
    );
    for (k, v) in &pp.set_headers {
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            continue;
        };
        // nginx: an empty proxy_set_header value removes the header.
        if v.is_empty() {
            h.remove(&name);
        } else if let Ok(val) = HeaderValue::from_str(v) {
            h.insert(name, val);
        }
    }
    if let Some(proto) = upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, proto.clone());
    }
    Ok(req)
}

/// Turns the upstream response into the client's; a 101 to an upgrade
/// request splices the two upgraded connections together.
fn response(
    mut resp: Response<PooledBody>,
    client_upgrade: Option<OnUpgrade>,
    read_timeout: std::time::Duration,
) -> Response<ProxyBody> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_up) = client_upgrade
    {
        let upstream_up = hyper::upgrade::on(&mut resp);
        let (parts, _) = resp.into_parts();
        tokio::spawn(async move {
            match (client_up.await, upstream_up.await) {
                (Ok(c), Ok(u)) => {
                    let mut c = TokioIo::new(c);
                    let mut u = TokioIo::new(u);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "upgrade failed"),
            }
        });
        let mut r = Response::from_parts(parts, crate::body::empty());
        r.headers_mut().remove(header::TRANSFER_ENCODING);
        return r;
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(
        parts,
        IdleTimeoutBody::new(body, read_timeout).boxed_unsync(),
    )
}
