//! Writing HTTP/1 heads into byte buffers: the response heads the client
//! gets and the small helpers (status line, Date, IP addresses) they share
//! with the upstream request and the access log. Numbers and addresses are
//! written with `itoa`, not `fmt`: this runs for every request.

use std::cell::RefCell;
use std::io::IoSlice;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::framing::Framing;
use crate::message::{HeaderList, ResponseHead, names};

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

/// `HTTP/1.1 200 OK\r\n`. nginx answers HTTP/1.0 clients with an
/// HTTP/1.1 status line too (RFC 9110 2.5 allows it).
pub(crate) fn status_line(out: &mut Vec<u8>, status: StatusCode, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    put(out, status.as_str().as_bytes());
    out.push(b' ');
    let reason = if reason.is_empty() {
        status.canonical_reason().unwrap_or("")
    } else {
        reason
    };
    put(out, reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The current time as an IMF-fixdate (`Date:` value), formatted once per
/// second and thread.
pub(crate) fn date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            c.0 = secs;
            c.1 = httpdate::fmt_http_date(now).into_bytes();
        }
        put(out, &c.1);
    });
}

/// How the client's response body is delimited and whether the connection
/// stays open after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delimit {
    /// Send `Transfer-Encoding: chunked` and chunk the body.
    pub chunked: bool,
    /// Close the connection after this response (`Connection: close`).
    pub close: bool,
    /// An HTTP/1.0 client that asked for keep-alive (`Connection:
    /// keep-alive` in the answer).
    pub keep_alive_10: bool,
}

impl Delimit {
    /// For a response that is `chunked` or not, on a connection kept open
    /// or not, to an HTTP/1.0 client or not.
    pub(crate) fn new(chunked: bool, keep: bool, client_10: bool) -> Delimit {
        Delimit {
            chunked,
            close: !keep,
            keep_alive_10: client_10 && keep,
        }
    }
}

/// Writes every byte of `bufs` with as few system calls as the kernel
/// allows.
pub(crate) async fn write_all_vectored(
    io: &mut TcpStream,
    mut bufs: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

fn connection_lines(out: &mut Vec<u8>, d: Delimit) {
    if d.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if d.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if d.keep_alive_10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
}

/// The client's head for an upstream response: the upstream's status and
/// end-to-end headers, our framing and connection lines. The length line
/// is ours too: written from the framing the proxy read the body by (the
/// upstream's own lines are not trusted to say the same, nor allowed to be
/// dropped by its Connection line); a bodiless response (HEAD, 304) keeps
/// the upstream's, which describes the resource. `upgrade` keeps
/// `Connection: upgrade` + `Upgrade` for a 101.
pub(crate) fn upstream_response(
    out: &mut Vec<u8>,
    h: &ResponseHead,
    framing: Framing,
    d: Delimit,
    upgrade: bool,
) {
    status_line(out, h.status, h.reason());
    let named = connection_named(&h.headers);
    let own_length = framing != Framing::Empty;
    h.headers.copy_lines(out, |n| {
        let length_line = n.eq_ignore_ascii_case(b"content-length");
        if length_line {
            return !own_length;
        }
        !is_hop(n, &named)
    });
    if let Framing::Length(n) = framing {
        out.extend_from_slice(b"Content-Length: ");
        number(out, n);
        out.extend_from_slice(b"\r\n");
    }
    if upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        if let Some(u) = h.headers.get(names::UPGRADE) {
            header(out, b"Upgrade", u);
        }
    } else {
        connection_lines(out, d);
    }
    out.extend_from_slice(b"\r\n");
}

/// The head of a response the proxy made itself (files, redirects, error
/// pages). `length` is the body length when known.
pub(crate) fn local_response(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    length: Option<u64>,
    d: Delimit,
) {
    status_line(out, parts.status, "");
    let mut has_date = false;
    let mut has_length = false;
    for (n, v) in &parts.headers {
        let name = n.as_str();
        if HOP_BY_HOP.contains(&name) {
            continue;
        }
        has_date |= name == "date";
        has_length |= name == "content-length";
        header(out, name.as_bytes(), v.as_bytes());
    }
    if !has_date {
        out.extend_from_slice(b"Date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    if !has_length
        && !d.chunked
        && let Some(n) = length
    {
        out.extend_from_slice(b"Content-Length: ");
        number(out, n);
        out.extend_from_slice(b"\r\n");
    }
    connection_lines(out, d);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::head::{parse_response, response_from};
    use super::*;
    use bytes::Bytes;

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

    #[test]
    fn upstream_head_drops_hop_by_hop() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\nX-Kept: 1\r\n\r\n";
        let (len, p) = parse_response(raw).expect("ok").expect("complete");
        let h = response_from(Bytes::copy_from_slice(&raw[..len]), p);
        let mut out = Vec::new();
        let d = Delimit {
            chunked: false,
            close: true,
            keep_alive_10: false,
        };
        upstream_response(&mut out, &h, Framing::Length(3), d, false);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nX-Kept: 1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        let d = Delimit {
            chunked: true,
            close: false,
            keep_alive_10: false,
        };
        upstream_response(&mut out, &h, Framing::Chunked, d, false);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nX-Kept: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        // The upstream cannot take the length line away with Connection.
        let raw = b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\n";
        let (len, p) = parse_response(raw).expect("ok").expect("complete");
        let h = response_from(Bytes::copy_from_slice(&raw[..len]), p);
        out.clear();
        upstream_response(&mut out, &h, Framing::Length(3), d, false);
        assert!(String::from_utf8_lossy(&out).contains("\r\nContent-Length: 3\r\n"));
        // HEAD: no body, the upstream's length line describes the resource.
        out.clear();
        let d = Delimit {
            chunked: false,
            close: false,
            keep_alive_10: false,
        };
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
        let (len, p) = parse_response(raw).expect("ok").expect("complete");
        let h = response_from(Bytes::copy_from_slice(&raw[..len]), p);
        upstream_response(&mut out, &h, Framing::Empty, d, false);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
        );
    }

    #[test]
    fn local_head_has_date_and_length() {
        let (parts, ()) = http::Response::builder()
            .status(404)
            .header("content-type", "text/html")
            .body(())
            .expect("resp")
            .into_parts();
        let mut out = Vec::new();
        let d = Delimit {
            chunked: false,
            close: false,
            keep_alive_10: true,
        };
        local_response(&mut out, &parts, Some(12), d);
        let s = String::from_utf8_lossy(&out);
        assert!(
            s.starts_with("HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\nDate: "),
            "{s}"
        );
        assert!(
            s.ends_with(" GMT\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"),
            "{s}"
        );
    }
}
