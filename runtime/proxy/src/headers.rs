//! Request and response header rewriting for proxied requests.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Hop-by-hop headers (RFC 9110 7.6.1 plus the legacy ones nginx drops),
/// as ready-made names: removing by `&str` would parse each one per call.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including every header named by Connection.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        strip_connection_named(headers);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn strip_connection_named(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// The Upgrade protocol if this is an HTTP/1.1 upgrade request
/// (`Connection: upgrade` + `Upgrade: x`).
pub(crate) fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

pub(crate) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 peers (dual-stack sockets) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Who the client is, after nginx's realip logic.
#[derive(Debug, Clone)]
pub(crate) struct ClientIdentity {
    /// TCP peer.
    pub peer: IpAddr,
    /// `$remote_addr` after realip: the right-most untrusted address of a
    /// trusted peer's X-Forwarded-For, else the peer.
    pub real_ip: IpAddr,
    /// Incoming X-Forwarded-For, kept only from trusted peers.
    pub forwarded_for: Option<String>,
    /// Incoming X-Forwarded-Proto, kept only from trusted peers.
    pub forwarded_proto: Option<String>,
}

pub(crate) fn identify(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> ClientIdentity {
    let peer_ip = canonical(peer.ip());
    if !is_trusted(peer_ip, trusted) {
        return ClientIdentity {
            peer: peer_ip,
            real_ip: peer_ip,
            forwarded_for: None,
            forwarded_proto: None,
        };
    }
    let xff: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let forwarded_for = if xff.is_empty() {
        None
    } else {
        Some(xff.join(", "))
    };
    let mut real_ip = peer_ip;
    if let Some(list) = &forwarded_for {
        // nginx real_ip_recursive on: walk from the right, skipping trusted.
        for part in list.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    real_ip = canonical(ip);
                    if !is_trusted(real_ip, trusted) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    let forwarded_proto = headers
        .get(&X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ClientIdentity {
        peer: peer_ip,
        real_ip,
        forwarded_for,
        forwarded_proto,
    }
}

/// Sets X-Forwarded-For (incoming trusted list + peer), X-Real-IP and
/// X-Forwarded-Proto on an upstream request.
pub(crate) fn set_forwarding(headers: &mut HeaderMap, id: &ClientIdentity) {
    // The peer is formatted once and shared by both headers when it is
    // also the real IP (the common case).
    let peer = HeaderValue::from_str(&id.peer.to_string()).ok();
    let xff = match &id.forwarded_for {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", id.peer)).ok(),
        None => peer.clone(),
    };
    match xff {
        Some(v) => {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        None => {
            headers.remove(&X_FORWARDED_FOR);
        }
    }
    let real = if id.real_ip == id.peer {
        peer
    } else {
        HeaderValue::from_str(&id.real_ip.to_string()).ok()
    };
    if let Some(v) = real {
        headers.insert(X_REAL_IP.clone(), v);
    }
    let proto = match id.forwarded_proto.as_deref() {
        None => Some(HeaderValue::from_static("http")),
        Some(p) => HeaderValue::from_str(p).ok(),
    };
    if let Some(v) = proto {
        headers.insert(X_FORWARDED_PROTO.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn xff_trust() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.1.1.1"),
        );
        let id = identify("10.0.0.5:1000".parse().expect("a"), &h, &trusted);
        assert_eq!(id.real_ip.to_string(), "1.2.3.4");
        let mut out = HeaderMap::new();
        set_forwarding(&mut out, &id);
        assert_eq!(out["x-forwarded-for"], "1.2.3.4, 10.1.1.1, 10.0.0.5");
        assert_eq!(out["x-real-ip"], "1.2.3.4");
        let id = identify("192.0.2.9:1000".parse().expect("a"), &h, &trusted);
        let mut out = HeaderMap::new();
        set_forwarding(&mut out, &id);
        assert_eq!(out["x-forwarded-for"], "192.0.2.9");
        assert_eq!(out["x-real-ip"], "192.0.2.9");
        assert_eq!(out["x-forwarded-proto"], "http");
    }
}
