//! Writing HTTP/1 heads into byte buffers: the response heads the client
//! gets, their status line, Date and connection lines, and the vectored
//! write that sends them. The protocol-neutral pieces (bytes, numbers,
//! addresses, hop-by-hop headers) are in `crate::wire`.

use std::cell::RefCell;
use std::io::IoSlice;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::framing::Framing;
use crate::message::{ResponseHead, names};
use crate::wire::{HOP_BY_HOP, connection_named, header, is_hop, number, put};

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
