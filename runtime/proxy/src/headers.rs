//! Who the client is (nginx's realip with a trusted-proxies list) and the
//! upgrade handshake, read from a request's header lines.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::message::{HeaderList, names};

pub(crate) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 peers (dual-stack sockets) compare as IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
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

pub(crate) fn identify(
    peer: SocketAddr,
    headers: &HeaderList,
    trusted: &[IpNet],
) -> ClientIdentity {
    let peer_ip = canonical(peer.ip());
    if trusted.is_empty() || !is_trusted(peer_ip, trusted) {
        return ClientIdentity {
            peer: peer_ip,
            real_ip: peer_ip,
            forwarded_for: None,
            forwarded_proto: None,
        };
    }
    let xff: Vec<&str> = headers
        .get_all(names::X_FORWARDED_FOR)
        .filter_map(|v| std::str::from_utf8(v).ok())
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
        .get_str(names::X_FORWARDED_PROTO)
        .map(str::to_string);
    ClientIdentity {
        peer: peer_ip,
        real_ip,
        forwarded_for,
        forwarded_proto,
    }
}

/// The Upgrade value of a WebSocket handshake (`Connection: upgrade` +
/// `Upgrade: websocket`). Other upgrades (h2c, TLS) are not tunnelled: the
/// request goes upstream as a plain one, without its hop-by-hop Upgrade.
pub(crate) fn upgrade_protocol(headers: &HeaderList) -> Option<&[u8]> {
    if !headers.has_token(names::CONNECTION, "upgrade") {
        return None;
    }
    headers
        .get(names::UPGRADE)
        .filter(|_| headers.has_token(names::UPGRADE, "websocket"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn list(pairs: &[(&'static str, &'static str)]) -> HeaderList {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        HeaderList::from_map(&h)
    }

    #[test]
    fn xff_trust() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let h = list(&[("x-forwarded-for", "1.2.3.4, 10.1.1.1")]);
        let id = identify("10.0.0.5:1000".parse().expect("a"), &h, &trusted);
        assert_eq!(id.real_ip.to_string(), "1.2.3.4");
        assert_eq!(id.forwarded_for.as_deref(), Some("1.2.3.4, 10.1.1.1"));
        let id = identify("192.0.2.9:1000".parse().expect("a"), &h, &trusted);
        assert_eq!(id.real_ip.to_string(), "192.0.2.9");
        assert_eq!(id.forwarded_for, None);
        // Several lines are one list, in order.
        let h = list(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "10.2.2.2"),
        ]);
        let id = identify("10.0.0.5:1".parse().expect("a"), &h, &trusted);
        assert_eq!(id.forwarded_for.as_deref(), Some("1.1.1.1, 10.2.2.2"));
        assert_eq!(id.real_ip.to_string(), "1.1.1.1");
        // IPv4-mapped peers match IPv4 networks.
        let id = identify("[::ffff:10.0.0.5]:1".parse().expect("a"), &h, &trusted);
        assert_eq!(id.peer.to_string(), "10.0.0.5");
        assert_eq!(id.real_ip.to_string(), "1.1.1.1");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let h = list(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_protocol(&h), Some(&b"websocket"[..]));
        let h = list(&[("upgrade", "websocket")]);
        assert_eq!(upgrade_protocol(&h), None);
        let h = list(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(upgrade_protocol(&h), None);
    }
}
