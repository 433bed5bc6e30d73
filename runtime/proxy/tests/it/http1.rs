//! HTTP/1.1 details of the proxy's own engine: framing both ways,
//! pipelining, HTTP/1.0 clients, 100-continue, refused smuggling shapes,
//! aborted clients, and what happens to upstream connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// What a raw backend does with one request on a connection (the number
/// is the request's index on that connection, from 0).
#[derive(Clone)]
enum Reply {
    /// Write these bytes and keep reading.
    Send(Vec<u8>),
    /// Write these bytes, then close.
    SendClose(Vec<u8>),
    /// Close without answering.
    Close,
}

/// A backend speaking raw bytes: every request head (and its
/// Content-Length body) is recorded, the reply comes from `script`.
struct RawBackend {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    conns: Arc<AtomicUsize>,
}

impl RawBackend {
    async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> RawBackend {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let conns = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (r, c) = (requests.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (r, script) = (r.clone(), script.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut n = 0;
                    loop {
                        let Some(req) = read_request(&mut s, &mut buf).await else {
                            return;
                        };
                        r.lock().expect("lock").push(req.clone());
                        match script(&req, n) {
                            Reply::Send(b) => {
                                if s.write_all(&b).await.is_err() {
                                    return;
                                }
                            }
                            Reply::SendClose(b) => {
                                let _ = s.write_all(&b).await;
                                return;
                            }
                            Reply::Close => return,
                        }
                        n += 1;
                    }
                });
            }
        });
        RawBackend {
            addr,
            requests,
            conns,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A proxy in front of `addr`; it runs until the test's runtime ends.
async fn proxy_to(
    addr: std::net::SocketAddr,
    upstream_extra: &str,
    limits: &str,
) -> (u16, hadeploy_proxy::Proxy) {
    let port = free_port();
    let servers = format!("      - address: \"{addr}\"\n");
    let (p, stop, _h) =
        start_proxy(config(&simple_yaml(port, &servers, upstream_extra, limits))).await;
    // Dropping the sender would start the drain.
    std::mem::forget(stop);
    (port, p)
}

/// Reads from `s` until `pred` holds on what arrived or `wait` passes.
async fn read_until(s: &mut TcpStream, wait: Duration, pred: impl Fn(&str) -> bool) -> String {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while !pred(&String::from_utf8_lossy(&got)) {
        let mut tmp = [0u8; 8192];
        match tokio::time::timeout_at(end, s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&tmp[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let r = raw(
        port,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let first = r.find("GET /first").expect("first answered");
    let second = r.find("GET /second").expect("second answered");
    assert!(first < second, "{r}");
    assert_eq!(r.matches("HTTP/1.1 200 OK").count(), 2, "{r}");
    assert_eq!(be.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_close_delimited_responses_are_relayed() {
    let be = RawBackend::start(|req, _| {
        if req.starts_with("GET /chunked") {
            Reply::Send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                    .to_vec(),
            )
        } else {
            // HTTP/1.0 style: no length, the body ends at close.
            Reply::SendClose(b"HTTP/1.0 200 OK\r\nX-Kind: close\r\n\r\nuntil the end".to_vec())
        }
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let c = client();
    for (path, body) in [("/chunked", "hello world"), ("/close", "until the end")] {
        let g = get(&c, port, "x", path).await;
        assert_eq!(g.status, 200);
        assert_eq!(g.body, body);
        assert_eq!(g.headers["transfer-encoding"], "chunked", "{path}");
    }
    // An HTTP/1.0 client cannot take chunks: the body ends at close.
    let r = raw(
        port,
        b"GET /chunked HTTP/1.0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let (head, body) = r.split_once("\r\n\r\n").expect("head");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(body, "hello world");
    // The chunked upstream connection was reused; the close-delimited one
    // could not be.
    assert_eq!(be.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_shapes_are_refused() {
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let cases: &[(&[u8], &str)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 501",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505"),
    ];
    for (req, want) in cases {
        let r = raw(port, req, Duration::from_secs(3)).await;
        assert!(
            r.starts_with(want),
            "{:?} -> {r:.120}",
            String::from_utf8_lossy(req)
        );
        assert!(r.contains("Connection: close"), "{r:.300}");
    }
    assert_eq!(be.hits(), 0, "nothing refused reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_body_goes_upstream_with_a_length() {
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let r = raw(
        port,
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let body = r.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    let e = Echo::parse(body);
    assert_eq!(e.header("content-length"), Some("7"));
    assert_eq!(e.header("transfer-encoding"), None);
    assert_eq!(e.header("body-len"), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_by_the_proxy() {
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let interim = read_until(&mut s, Duration::from_secs(3), |t| t.contains("\r\n\r\n")).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.expect("body");
    let mut rest = String::new();
    s.read_to_string(&mut rest).await.expect("read");
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    let e = Echo::parse(rest.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default());
    assert_eq!(e.header("body-len"), Some("5"));
    assert_eq!(e.header("expect"), None, "the handshake was ours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_client_keeps_alive_only_when_asked() {
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    for path in ["/one", "/two"] {
        s.write_all(format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let r = read_until(&mut s, Duration::from_secs(3), |t| {
            t.contains("body-len: 0\n")
        })
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("Connection: keep-alive\r\n"), "{r}");
        assert!(r.contains(path), "{r}");
    }
    // Without keep-alive the proxy closes after the response.
    let r = raw(port, b"GET /three HTTP/1.0\r\n\r\n", Duration::from_secs(3)).await;
    assert!(r.contains("Connection: close\r\n"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_bodyless_statuses_keep_the_connection_usable() {
    let be = RawBackend::start(|req, _| {
        if req.starts_with("HEAD") {
            Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec())
        } else if req.contains("/204") {
            Reply::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec())
        } else {
            Reply::Send(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec())
        }
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut r = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut r))
        .await
        .expect("all three answered")
        .expect("read");
    let heads: Vec<&str> = r.split("\r\n\r\n").filter(|h| !h.is_empty()).collect();
    assert_eq!(heads.len(), 3, "{r}");
    assert!(heads[0].starts_with("HTTP/1.1 200") && heads[0].contains("Content-Length: 1234"));
    assert!(heads[1].starts_with("HTTP/1.1 204"), "{r}");
    assert!(
        heads[2].starts_with("HTTP/1.1 304") && heads[2].contains("ETag"),
        "{r}"
    );
    assert_eq!(
        be.conns.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_leaves_is_logged_499_and_its_upstream_closed() {
    let be = Backend::start("be").await;
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("access.log");
    let port = free_port();
    let yaml = format!(
        r#"
node: test
upstreams:
  backend:
    servers: [{{address: "{}"}}]
sites:
  - name: s
    listen: ["127.0.0.1:{port}"]
    access_log: {{path: {}}}
    locations:
      - path: /
        proxy: {{upstream: backend}}
"#,
        be.addr,
        log.display()
    );
    let (_p, stop, h) = start_proxy(config(&yaml)).await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /slow/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The abandoned upstream connection is not pooled: the next request
    // needs a new one.
    assert_eq!(get(&client(), port, "x", "/after").await.status, 200);
    assert_eq!(be.conns.load(Ordering::SeqCst), 2);
    drop(stop);
    h.await.expect("run");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.lines()
            .any(|l| l.contains("\"GET /slow/1500 HTTP/1.1\" 499 0")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_pooled_connection_is_retried_for_get_only() {
    // Each connection answers its first request with keep-alive, then reads
    // the second and closes without a word: the keep-alive race, made
    // certain.
    let be = RawBackend::start(|_, n| {
        if n == 0 {
            Reply::Send(ok("fine"))
        } else {
            Reply::Close
        }
    })
    .await;
    let (port, p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let c = client();
    assert_eq!(get(&c, port, "x", "/1").await.body, "fine");
    // Pooled connection dies after taking the request: GET goes again on
    // a fresh connection, transparently.
    assert_eq!(get(&c, port, "x", "/2").await.body, "fine");
    assert_eq!(be.conns.load(Ordering::SeqCst), 2);
    // A POST is not sent twice (nginx gives up as well).
    let post = Request::post(format!("http://127.0.0.1:{port}/p"))
        .body(Full::new(Bytes::from("x")))
        .expect("req");
    assert_eq!(send(&c, post).await.expect("post").status, 502);
    // Neither counts against the server.
    let m = p.metrics_text();
    let line = format!(
        "hadeploy_proxy_upstream_failures_total{{upstream=\"backend\",server=\"{}\"}} 0",
        be.addr
    );
    assert!(m.contains(&line), "{m}");
    assert_eq!(get(&c, port, "x", "/3").await.body, "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_upstream_heads_give_502_without_retry() {
    let be = RawBackend::start(|req, _| {
        if req.contains("/both") {
            Reply::SendClose(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    .to_vec(),
            )
        } else if req.contains("/big") {
            let mut h = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..2000 {
                h.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(40)).as_bytes());
            }
            h.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            Reply::SendClose(h)
        } else {
            Reply::SendClose(b"NOT HTTP AT ALL\r\n\r\n".to_vec())
        }
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let c = client();
    for path in ["/both", "/big", "/junk"] {
        assert_eq!(get(&c, port, "x", path).await.status, 502, "{path}");
    }
    assert_eq!(be.requests().len(), 3, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connection_with_leftover_bytes_is_not_reused() {
    let be = RawBackend::start(|_, _| {
        Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcXY".to_vec())
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let c = client();
    for _ in 0..3 {
        let g = get(&c, port, "x", "/").await;
        assert_eq!(g.body, "abc");
    }
    assert_eq!(be.conns.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_target_is_forwarded_in_origin_form() {
    let be = RawBackend::start(|_, _| Reply::Send(ok("ok"))).await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let r = raw(
        port,
        b"GET http://client.example/x?y=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let req = be.requests().pop().expect("request");
    assert!(
        req.starts_with("GET /x?y=1 HTTP/1.1\r\nHost: client.example\r\n"),
        "{req}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chunked_request_body_stays_chunked() {
    let be = RawBackend::start(|_, _| Reply::Send(ok("got it"))).await;
    let (port, _p) = proxy_to(be.addr, "", "  max_body_bytes: 0\n  drain_timeout: 1s").await;
    let r = raw(
        port,
        b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let req = be.requests().first().cloned().expect("request");
    assert!(req.contains("Transfer-Encoding: chunked\r\n"), "{req}");
    assert!(!req.contains("Content-Length"), "{req}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_streamed_upload_is_not_an_upstream_timeout() {
    // Regression: the response head deadline ran from the attempt's start,
    // so an upload slower than connect + read timeout got a 504 and the
    // backend was marked failed.
    let be = Backend::start("be").await;
    let (port, p) = proxy_to(
        be.addr,
        "    connect_timeout: 1s\n    read_timeout: 1s\n",
        "  max_body_bytes: 0\n  drain_timeout: 1s",
    )
    .await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\n")
        .await
        .expect("head");
    for b in [b"ab", b"cd", b"ef"] {
        tokio::time::sleep(Duration::from_millis(900)).await;
        s.write_all(b).await.expect("body");
    }
    let mut r = String::new();
    s.read_to_string(&mut r).await.expect("read");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("body-len: 6"), "{r}");
    let line = format!(
        "hadeploy_proxy_upstream_failures_total{{upstream=\"backend\",server=\"{}\"}} 0",
        be.addr
    );
    assert!(p.metrics_text().contains(&line));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_line_without_digits_is_not_a_last_chunk() {
    // Regression: httparse reads "\r\n" as chunk size 0, which ended the
    // body early and let the next bytes through as a second request.
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    for line in ["", " ", ";x"] {
        let req = format!(
            "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{line}\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let r = raw(port, req.as_bytes(), Duration::from_secs(3)).await;
        assert!(r.starts_with("HTTP/1.1 400"), "{line:?}: {r:.200}");
        assert!(!r.contains("smuggled"), "{r}");
    }
    assert_eq!(be.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_headers_replace_the_proxys_own_lines() {
    // Regression: Host and the X-Forwarded family were written twice when
    // set, and an empty value did not remove the proxy's line.
    let be = RawBackend::start(|_, _| Reply::Send(ok("ok"))).await;
    let port = free_port();
    let yaml = format!(
        r#"
node: test
upstreams:
  backend:
    servers: [{{address: "{}"}}]
sites:
  - name: s
    listen: ["127.0.0.1:{port}"]
    locations:
      - path: /
        proxy:
          upstream: backend
          set_headers: {{Host: fixed.example, X-Real-IP: "", X-Forwarded-For: 192.0.2.1}}
"#,
        be.addr
    );
    let (_p, _stop, _h) = start_proxy(config(&yaml)).await;
    let r = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: client.example\r\nX_Real_IP: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let req = be.requests().pop().expect("request").to_ascii_lowercase();
    assert_eq!(req.matches("\r\nhost: ").count(), 1, "{req}");
    assert!(req.contains("\r\nhost: fixed.example\r\n"), "{req}");
    assert!(!req.contains("x-real-ip"), "{req}");
    assert!(
        !req.contains("x_real_ip"),
        "underscore names dropped: {req}"
    );
    assert_eq!(req.matches("x-forwarded-for").count(), 1, "{req}");
    assert!(req.contains("x-forwarded-for: 192.0.2.1\r\n"), "{req}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_cannot_strip_the_length_line_via_connection() {
    let be = RawBackend::start(|_, _| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\nabc"
                .to_vec(),
        )
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let r = raw(
        port,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(r.matches("Content-Length: 3\r\n").count(), 2, "{r}");
    assert!(r.ends_with("abc"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websocket_tunnel_is_closed_after_read_timeout() {
    let be = RawBackend::start(|_, _| {
        Reply::Send(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "    read_timeout: 500ms\n", "  drain_timeout: 1s").await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .expect("write");
    let t = std::time::Instant::now();
    let mut r = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut r))
        .await
        .expect("tunnel closed when idle")
        .expect("read");
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answer_during_an_upload_reaches_the_client() {
    // A backend that refuses the upload after its head: 413 and close.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut tmp).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&tmp[..n]),
                        _ => return,
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope")
                    .await;
                // Read a little more so the close is a FIN, then go.
                let _ = tokio::time::timeout(Duration::from_millis(50), s.read(&mut tmp)).await;
            });
        }
    });
    let (port, p) = proxy_to(addr, "", "  max_body_bytes: 67108864\n  drain_timeout: 1s").await;
    let body = Bytes::from(vec![b'x'; 16 * 1024 * 1024]);
    let g = send(
        &client(),
        Request::post(format!("http://127.0.0.1:{port}/up"))
            .body(Full::new(body))
            .expect("req"),
    )
    .await
    .expect("response");
    assert_eq!(g.status, 413);
    assert_eq!(g.body, "nope");
    let line = format!(
        "hadeploy_proxy_upstream_failures_total{{upstream=\"backend\",server=\"{addr}\"}} 0"
    );
    assert!(p.metrics_text().contains(&line), "{}", p.metrics_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_head_over_the_limit_gets_431() {
    // Regression: only an incomplete head was checked against the limit.
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  max_header_bytes: 8192").await;
    let r = raw(
        port,
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(12_000)
        )
        .as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r:.100}");
    assert_eq!(be.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_host_headers_get_400() {
    let be = Backend::start("be").await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    for req in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
    ] {
        let r = raw(port, req, Duration::from_secs(3)).await;
        assert!(
            r.starts_with("HTTP/1.1 400"),
            "{:?}: {r:.100}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(be.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_upstream_lengths_and_oversized_heads_give_502() {
    // Regression: `5, 5`, repeated and empty Content-Length lines from an
    // upstream were relayed, and so was a head over the response head
    // limit when it arrived complete.
    let big = |n: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 5\r\n\r\nhello",
            "a".repeat(n)
        )
        .into_bytes()
    };
    let be = RawBackend::start(move |req, _| {
        let path = req.split(' ').nth(1).unwrap_or_default();
        let reply: Vec<u8> = match path {
            "/comma" => b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello".to_vec(),
            "/trailing-comma" => b"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\nhello".to_vec(),
            "/twice" => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello".to_vec()
            }
            "/empty" => {
                b"HTTP/1.1 200 OK\r\nContent-Length:\r\nContent-Length: 5\r\n\r\nhello".to_vec()
            }
            p => match p.strip_prefix("/big/") {
                Some(n) => big(n.parse().unwrap_or(0)),
                None => ok("fine"),
            },
        };
        Reply::SendClose(reply)
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let mut paths: Vec<String> = ["/comma", "/trailing-comma", "/twice", "/empty"]
        .map(String::from)
        .to_vec();
    // Heads from just over the 64 KiB limit to several times it, each
    // written by the backend in one piece.
    for n in [65_600, 70_000, 100_000, 200_000, 500_000] {
        paths.push(format!("/big/{n}"));
    }
    for path in &paths {
        let r = raw(
            port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 502"), "{path}: {r:.120}");
    }
    let r = raw(
        port,
        b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("fine"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_cr_in_an_upstream_trailer_cuts_the_response() {
    // Regression: a bare CR inside a trailer line was accepted (chunk
    // lines refuse it). nginx: "upstream sent invalid chunked response",
    // the client's response is cut (no last chunk).
    let be = RawBackend::start(|_, _| {
        Reply::SendClose(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let (port, _p) = proxy_to(be.addr, "", "  drain_timeout: 1s").await;
    let r = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(!r.ends_with("0\r\n\r\n"), "relayed as complete: {r:?}");
}
