//! Byte-buffer writing every protocol side shares: appending bytes,
//! numbers and IP addresses, a `Name: value` line of the head model
//! (`crate::message`), and which headers are hop-by-hop. Used by the
//! HTTP/1 framing (`h1::write`, `h1::client`), the HTTP/2 bridge and the
//! access log. Numbers and addresses are written with `itoa`, not `fmt`:
//! this runs for every request.

use std::net::IpAddr;

use crate::message::{HeaderList, names};

/// Hop-by-hop headers (RFC 9110 7.6.1, plus the legacy ones nginx drops).
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Whether `name` is one of [`HOP_BY_HOP`] (by length first: most names
/// are rejected without a comparison).
pub(crate) fn is_hop_name(name: &[u8]) -> bool {
    let eq = |h: &str| name.eq_ignore_ascii_case(h.as_bytes());
    match name.len() {
        2 => eq("te"),
        7 => eq("trailer") || eq("upgrade"),
        10 => eq("connection") || eq("keep-alive"),
        16 => eq("proxy-connection"),
        17 => eq("transfer-encoding"),
        18 => eq("proxy-authenticate"),
        19 => eq("proxy-authorization"),
        _ => false,
    }
}

/// The extra header names a head's Connection line declares hop-by-hop
/// (`Connection: keep-alive, X-Secret` -> `X-Secret`); usually none.
pub(crate) fn connection_named(headers: &HeaderList) -> Vec<&[u8]> {
    headers
        .tokens(names::CONNECTION)
        .filter(|t| {
            !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"upgrade")
        })
        .collect()
}

/// Whether a line called `name` must not be forwarded: hop-by-hop, or
/// named by the head's Connection line (`named`).
pub(crate) fn is_hop(name: &[u8], named: &[&[u8]]) -> bool {
    is_hop_name(name) || named.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// Appends `s`. Short copies are done inline: the static build's memcpy
/// (musl's) starts every copy with `rep movsq`, which costs more than
/// copying the few bytes of a header name, a number or an address.
#[inline]
pub(crate) fn put(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n > 32 {
        out.extend_from_slice(s);
        return;
    }
    let len = out.len();
    // Room for a fixed-size copy, trimmed to `n` below.
    out.extend_from_slice(&[0u8; 32]);
    let dst = &mut out[len..len + 32];
    if n >= 16 {
        dst[..16].copy_from_slice(&s[..16]);
        dst[n - 16..n].copy_from_slice(&s[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&s[..8]);
        dst[n - 8..n].copy_from_slice(&s[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&s[..4]);
        dst[n - 4..n].copy_from_slice(&s[n - 4..]);
    } else {
        if n > 0 {
            dst[0] = s[0];
        }
        if n > 1 {
            dst[1] = s[1];
        }
        if n > 2 {
            dst[2] = s[2];
        }
    }
    out.truncate(len + n);
}

pub(crate) fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    put(out, name);
    out.extend_from_slice(b": ");
    put(out, value);
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn number(out: &mut Vec<u8>, n: u64) {
    put(out, itoa::Buffer::new().format(n).as_bytes());
}

/// An IP address as text (v4 without `fmt`).
pub(crate) fn ip(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut n = 0;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    text[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    text[n] = b'0' + (o / 10) % 10;
                    n += 1;
                }
                text[n] = b'0' + o % 10;
                n += 1;
            }
            put(out, &text[..n]);
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_copies_every_length() {
        let src: Vec<u8> = (0..80u8).collect();
        for n in 0..=80 {
            let mut out = b"ab".to_vec();
            put(&mut out, &src[..n]);
            assert_eq!(&out[..2], b"ab");
            assert_eq!(&out[2..], &src[..n], "n={n}");
        }
    }

    #[test]
    fn ip_text() {
        let mut v = Vec::new();
        ip(&mut v, "10.0.255.1".parse().expect("ip"));
        v.push(b' ');
        ip(&mut v, "0.9.99.100".parse().expect("ip"));
        v.push(b' ');
        ip(&mut v, "::1".parse().expect("ip"));
        assert_eq!(v, b"10.0.255.1 0.9.99.100 ::1");
    }
}
