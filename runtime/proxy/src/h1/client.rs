//! The HTTP/1 client side of the proxy: one attempt's request head
//! written from the client's header lines (`encode_head`), the head and
//! body sent with nginx's send_timeout (`send_request`), and the response
//! head read back by read_timeout while watching the client for an abort
//! (`read_head`). Which server gets the attempt, retries and the pool are
//! `crate::upstream`'s.

use std::future::poll_fn;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::task::Poll;

use hadeploy_config::proxy::{HostHeader, ProxyPass};
use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::framing::{self, Framing};
use super::head;
use super::write;
use crate::clock::Clock;
use crate::message::{ResponseHead, names};
use crate::pool::UpConn;
use crate::upstream::{OutBody, Outgoing};
use crate::wire;

/// Buffered request bodies up to this size go out in one timed write
/// with the head; larger ones in pieces of this size.
pub(crate) const SEND_PIECE: usize = 64 * 1024;

/// Largest upstream response head (nginx's proxy_buffer_size is 4-8 KiB;
/// more generous here, and "upstream sent too big header" beyond).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Writes the upstream request head for one attempt at `addr`.
///
/// A `set_headers` entry replaces the line the proxy would write (Host, the
/// X-Forwarded-* family) and the client's lines of that name; an empty
/// value removes the header (nginx's `proxy_set_header X ""`).
pub(crate) fn encode_head(out: &mut Vec<u8>, o: &Outgoing<'_>, pp: &ProxyPass, addr: SocketAddr) {
    let h = o.head;
    let set = |name: &str| {
        pp.set_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    out.clear();
    wire::put(out, h.method.as_str().as_bytes());
    out.push(b' ');
    wire::put(out, o.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let custom = !pp.set_headers.is_empty();
    if !custom || !set("host") {
        out.extend_from_slice(b"Host: ");
        match &pp.host {
            HostHeader::Client => match h.host() {
                Some(v) => wire::put(out, v.as_bytes()),
                None => addr_text(out, addr),
            },
            HostHeader::Upstream => addr_text(out, addr),
            HostHeader::Fixed(v) => wire::put(out, v.as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    let named = wire::connection_named(&h.headers);
    h.headers.copy_lines(out, |n| {
        valid_name(n) && !wire::is_hop(n, &named) && !replaced(n, pp)
    });
    // nginx's $proxy_add_x_forwarded_for, X-Real-IP and the scheme.
    if !custom || !set("x-forwarded-for") {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if let Some(prev) = &o.id.forwarded_for {
            wire::put(out, prev.as_bytes());
            out.extend_from_slice(b", ");
        }
        wire::ip(out, o.id.peer);
        out.extend_from_slice(b"\r\n");
    }
    if !custom || !set("x-real-ip") {
        out.extend_from_slice(b"X-Real-IP: ");
        wire::ip(out, o.id.real_ip);
        out.extend_from_slice(b"\r\n");
    }
    if !custom || !set("x-forwarded-proto") {
        out.extend_from_slice(b"X-Forwarded-Proto: ");
        wire::put(
            out,
            o.id.forwarded_proto.as_deref().unwrap_or("http").as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
    }
    for (k, v) in &pp.set_headers {
        // nginx: an empty proxy_set_header value removes the header.
        if !v.is_empty() {
            wire::header(out, k.as_bytes(), v.as_bytes());
        }
    }
    match &o.body {
        OutBody::Empty => {
            // A client's explicit `Content-Length: 0` is kept (POST).
            if h.headers.contains(names::CONTENT_LENGTH)
                || h.headers.contains(names::TRANSFER_ENCODING)
            {
                out.extend_from_slice(b"Content-Length: 0\r\n");
            }
        }
        OutBody::Buffered(b) => {
            out.extend_from_slice(b"Content-Length: ");
            wire::number(out, b.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        OutBody::Stream { length, .. } => match length {
            Some(n) => {
                out.extend_from_slice(b"Content-Length: ");
                wire::number(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        },
    }
    if let Some(proto) = o.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        wire::header(out, b"Upgrade", proto);
    }
    out.extend_from_slice(b"\r\n");
}

/// nginx's defaults (`underscores_in_headers off`, `ignore_invalid_headers
/// on`): client header names other than letters, digits and `-` are not
/// passed on. Backends that map `-` and `_` to the same variable (CGI,
/// WSGI, Rack) would otherwise let a client's `X_Real_IP` shadow ours.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

fn addr_text(out: &mut Vec<u8>, addr: SocketAddr) {
    use std::io::Write as _;
    let _ = write!(out, "{addr}");
}

/// Client lines the proxy writes itself (or that a `set_headers` entry
/// replaces or removes).
fn replaced(name: &[u8], pp: &ProxyPass) -> bool {
    let eq = |h: &str| name.eq_ignore_ascii_case(h.as_bytes());
    let ours = match name.len() {
        4 => eq("host"),
        // The body was already read (or is streamed) by us: the client's
        // 100-continue handshake happened with the proxy.
        6 => eq("expect"),
        9 => eq("x-real-ip"),
        14 => eq("content-length"),
        15 => eq("x-forwarded-for"),
        // Transfer-Encoding is hop-by-hop anyway; the framing is ours.
        17 => eq("x-forwarded-proto") || eq("transfer-encoding"),
        _ => false,
    };
    ours || pp
        .set_headers
        .keys()
        .any(|k| name.eq_ignore_ascii_case(k.as_bytes()))
}

/// Writes `a` then `b` with as few system calls as possible.
async fn write_two(io: &mut TcpStream, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    write::write_all_vectored(io, &mut [IoSlice::new(a), IoSlice::new(b)]).await
}

/// Why sending the request failed.
pub(crate) enum SendError {
    Upstream(std::io::Error),
    /// The client's streamed body failed: answer with this status.
    Client(StatusCode),
    Timeout,
}

/// Writes the head and body; `first` is the deadline of the head's write
/// (the attempt's start + send_timeout), later pieces get `send_gap` each.
pub(crate) async fn send_request(
    conn: &mut UpConn,
    head: &[u8],
    body: &mut OutBody<'_>,
    clock: &mut Clock,
    first: Instant,
    send_gap: std::time::Duration,
    io_gap: std::time::Duration,
) -> Result<(), SendError> {
    let io = &mut conn.io;
    let r = match body {
        OutBody::Empty => clock.run(first, io.write_all(head)).await,
        OutBody::Buffered(b) if b.len() <= SEND_PIECE => {
            clock.run(first, write_two(io, head, b)).await
        }
        // A large body: send_timeout is the gap allowed per piece, as for
        // nginx, not a bound on the whole upload.
        OutBody::Buffered(b) => {
            let mut r = clock
                .run(first, write_two(io, head, &b[..SEND_PIECE]))
                .await;
            let mut rest = &b[SEND_PIECE..];
            while matches!(r, Ok(Ok(()))) && !rest.is_empty() {
                let n = rest.len().min(SEND_PIECE);
                r = clock
                    .run(Instant::now() + send_gap, io.write_all(&rest[..n]))
                    .await;
                rest = &rest[n..];
            }
            r
        }
        OutBody::Stream {
            src,
            length,
            started,
        } => {
            let chunked = length.is_none();
            match clock.run(first, io.write_all(head)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SendError::Upstream(e)),
                Err(_) => return Err(SendError::Timeout),
            }
            let mut frame = Vec::with_capacity(16);
            loop {
                let piece = match clock
                    .run(Instant::now() + io_gap, poll_fn(|cx| src.poll_piece(cx)))
                    .await
                {
                    Ok(Some(Ok(p))) => p,
                    Ok(None) => break,
                    Ok(Some(Err(status))) => return Err(SendError::Client(status)),
                    Err(_) => return Err(SendError::Client(StatusCode::REQUEST_TIMEOUT)),
                };
                *started = true;
                frame.clear();
                if chunked {
                    framing::chunk_header(&mut frame, piece.len());
                }
                let w = async {
                    write_two(io, &frame, &piece).await?;
                    if chunked {
                        io.write_all(b"\r\n").await?;
                    }
                    Ok::<(), std::io::Error>(())
                };
                match clock.run(Instant::now() + send_gap, w).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(SendError::Upstream(e)),
                    Err(_) => return Err(SendError::Timeout),
                }
            }
            if chunked {
                clock
                    .run(Instant::now() + send_gap, io.write_all(framing::LAST_CHUNK))
                    .await
            } else {
                Ok(Ok(()))
            }
        }
    };
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendError::Upstream(e)),
        Err(_) => Err(SendError::Timeout),
    }
}

/// Resolves when the client closed its connection (EOF or error); never
/// when it sends more (a pipelined request): then it stops watching. Uses
/// the socket's own read-readiness slot (no waiter list, no system call
/// until the client sends something or closes).
async fn client_gone(client: &TcpStream) {
    let mut watching = true;
    poll_fn(|cx| {
        if !watching {
            return Poll::Pending;
        }
        let mut b = [0u8; 1];
        let mut rb = tokio::io::ReadBuf::new(&mut b);
        match client.poll_peek(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                watching = false;
                Poll::Pending
            }
        }
    })
    .await
}

pub(crate) enum HeadError {
    /// No response byte arrived before the connection closed.
    Closed,
    Io(std::io::Error),
    Invalid(&'static str),
    Timeout,
    ClientGone,
}

/// Reads the response head (skipping 1xx interim responses other than a
/// 101) by `deadline`, watching `client` for an abort meanwhile.
pub(crate) async fn read_head(
    conn: &mut UpConn,
    method: &Method,
    clock: &mut Clock,
    deadline: Instant,
    client: Option<&TcpStream>,
) -> Result<(ResponseHead, Framing), HeadError> {
    // Whether any response byte (a skipped 1xx included) arrived: only a
    // connection that stayed silent can be the keep-alive race.
    let mut got_any = !conn.rbuf.is_empty();
    loop {
        if !conn.rbuf.is_empty() {
            match head::parse_response(&conn.rbuf) {
                // A head that arrived whole in one read is held to the
                // limit too, not only one still incomplete.
                Ok(Some((len, _))) if len > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid("too big header"));
                }
                Ok(Some((len, parts))) => {
                    let h = head::response_from(conn.rbuf.split_to(len).freeze(), parts);
                    if h.status.is_informational() && h.status != StatusCode::SWITCHING_PROTOCOLS {
                        continue;
                    }
                    let f = framing::response_framing(&h, method)
                        .map_err(|e| HeadError::Invalid(e.0))?;
                    return Ok((h, f));
                }
                Ok(None) if conn.rbuf.len() > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid("too big header"));
                }
                Ok(None) => {}
                Err(_) => return Err(HeadError::Invalid("invalid header")),
            }
        }
        if conn.rbuf.capacity() - conn.rbuf.len() < 1024 {
            conn.rbuf.reserve(8 * 1024);
        }
        let read = tokio::io::AsyncReadExt::read_buf(&mut conn.io, &mut conn.rbuf);
        let r = clock
            .run(deadline, async {
                match client {
                    Some(c) => tokio::select! {
                        biased;
                        r = read => Some(r),
                        () = client_gone(c) => None,
                    },
                    None => Some(read.await),
                }
            })
            .await;
        match r {
            Err(_) => return Err(HeadError::Timeout),
            Ok(None) => return Err(HeadError::ClientGone),
            Ok(Some(Ok(0))) if !got_any => return Err(HeadError::Closed),
            // nginx: "upstream prematurely closed connection while reading
            // response header" - an error, retried like one.
            Ok(Some(Ok(0))) => {
                return Err(HeadError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection in the middle of the response head",
                )));
            }
            Ok(Some(Ok(_))) => got_any = true,
            Ok(Some(Err(e))) if !got_any => {
                return Err(match e.kind() {
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                        HeadError::Closed
                    }
                    _ => HeadError::Io(e),
                });
            }
            Ok(Some(Err(e))) => return Err(HeadError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::headers::ClientIdentity;
    use crate::message::RequestHead;

    /// ProxyPass from a YAML snippet, through the config crate's parser.
    fn pp(yaml: &str) -> ProxyPass {
        let cfg = format!(
            "node: n\nupstreams: {{b: {{servers: [{{address: \"127.0.0.1:9\"}}]}}}}\nsites: [{{name: s, listen: [\"127.0.0.1:1\"], locations: [{{path: /, proxy: {yaml}}}]}}]\n"
        );
        let (c, _) = hadeploy_config::parse_proxy(&cfg, std::path::Path::new("t.yaml"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        c.sites[0].locations[0].proxy.clone().expect("proxy")
    }

    fn req(raw: &str) -> RequestHead {
        crate::h1::head::tests::req(raw.as_bytes())
    }

    #[test]
    fn request_head_rewrite() {
        let h = req(
            "POST /api/x?y=1 HTTP/1.1\r\nHost: site.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Forwarded-For: 6.6.6.6\r\nExpect: 100-continue\r\nContent-Length: 3\r\nTE: trailers\r\nX-Kept: k\r\nX-Drop: d\r\n\r\n",
        );
        let id = ClientIdentity {
            peer: "192.0.2.1".parse().expect("ip"),
            real_ip: "192.0.2.1".parse().expect("ip"),
            forwarded_for: None,
            forwarded_proto: None,
        };
        let o = Outgoing {
            head: &h,
            target: "/x?y=1",
            id: &id,
            upgrade: None,
            body: OutBody::Buffered(Bytes::from_static(b"abc")),
            io_timeout: std::time::Duration::from_secs(1),
        };
        let p = pp("{upstream: b, set_headers: {X-Drop: '', X-Set: v}}");
        let mut out = Vec::new();
        encode_head(&mut out, &o, &p, "127.0.0.1:9".parse().expect("a"));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /x?y=1 HTTP/1.1\r\nHost: site.test\r\nX-Kept: k\r\nX-Forwarded-For: 192.0.2.1\r\nX-Real-IP: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Set: v\r\nContent-Length: 3\r\n\r\n"
        );
        let p = pp("{upstream: b, host: upstream}");
        let o = Outgoing {
            body: OutBody::Empty,
            ..o
        };
        encode_head(&mut out, &o, &p, "127.0.0.1:9".parse().expect("a"));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"),
            "{text}"
        );
        // The client said Content-Length: 3 but nothing is sent: 0.
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    }
}
