//! Differential tests: the same raw requests go to a real nginx and to the
//! proxy, configured alike, each in front of its own recording backend;
//! the status, the redirect target and the request-target the backend
//! received must be the same. Where the proxy differs from nginx on
//! purpose, runtime/proxy/README.md says so and the case is not here.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;
use crate::reference::{Answer, Nginx, Recorder, exchange, read_answer};

/// Both servers: `/api/` proxied with a URI (`proxy_pass http://b/v1/`),
/// `/` proxied without one, `/static/` served from a root that has the
/// directory `static/sub`.
struct Pair {
    nginx: Nginx,
    nginx_be: Recorder,
    ours_port: u16,
    ours_be: Recorder,
    _www: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn pair(nginx_http_extra: &str, our_limits: &str) -> Pair {
    let www = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(www.path().join("static/sub")).expect("mkdir");
    std::fs::write(www.path().join("static/sub/index.html"), "sub\n").expect("w");
    let root = www.path().display();
    let nginx_be = Recorder::start().await;
    let ours_be = Recorder::start().await;
    let nginx = Nginx::start(
        &format!(
            "location /api/ {{ proxy_pass http://{a}/v1/; }}\n\
             location / {{ proxy_pass http://{a}; }}\n\
             location /static/ {{ root {root}; }}",
            a = nginx_be.addr
        ),
        nginx_http_extra,
    )
    .await;
    let ours_port = free_port();
    let yaml = format!(
        r#"
node: test
limits:
  drain_timeout: 1s
{our_limits}
upstreams:
  b:
    servers:
      - address: "{a}"
sites:
  - name: site
    server_names: [site]
    listen: ["127.0.0.1:{ours_port}"]
    locations:
      - path: /api/
        proxy: {{upstream: b, uri: /v1/}}
      - path: /
        proxy: {{upstream: b}}
      - path: /static/
        root: {root}
"#,
        a = ours_be.addr
    );
    let (_p, stop, _h) = start_proxy(config(&yaml)).await;
    Pair {
        nginx,
        nginx_be,
        ours_port,
        ours_be,
        _www: www,
        _stop: stop,
    }
}

/// One server's answer to a case, with what its backend received; the
/// listen port in a redirect is written `PORT`.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    answer: Answer,
    backend: Vec<String>,
}

fn seen(mut answer: Answer, port: u16, backend: Vec<String>) -> Seen {
    answer.location = answer
        .location
        .map(|l| l.replace(&format!(":{port}/"), ":PORT/"));
    // Only the status, target and redirect are compared.
    answer.close = false;
    Seen { answer, backend }
}

impl Pair {
    async fn both(&self, req: &[u8], wait: Duration) -> (Seen, Seen) {
        let n = exchange(self.nginx.port, req, wait).await;
        let n = seen(n, self.nginx.port, self.nginx_be.take());
        let o = exchange(self.ours_port, req, wait).await;
        let o = seen(o, self.ours_port, self.ours_be.take());
        (n, o)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_requests_are_answered_as_nginx_answers_them() {
    let p = pair("", "").await;
    let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: site\r\n\r\n");
    let post = |headers: &str, body: &str| {
        format!("POST /a HTTP/1.1\r\nHost: site\r\n{headers}\r\n{body}")
    };
    let chunked = |rest: &str| {
        format!("POST /a HTTP/1.1\r\nHost: site\r\nTransfer-Encoding: chunked\r\n\r\n{rest}")
    };
    let cases: Vec<(&str, String)> = vec![
        // proxy_pass with a URI: the prefix of the normalized path is
        // replaced (a backend must not see `/v1/../api/admin`).
        ("dot segments", get("/api/../api/admin")),
        ("encoded dot segments", get("/api/%2e%2e/api/admin")),
        ("mixed encoded dots", get("/api/.%2E/api/admin")),
        ("deeper dot segments", get("/api/x/../../api/admin")),
        ("encoded slashes", get("/api/x/..%2f..%2fapi/admin")),
        ("above the root", get("/api/x/../../../admin")),
        ("merged slashes", get("//api//x")),
        ("escapes and query", get("/api//a%20b/./c%41?q=%2e")),
        ("decoded slash", get("/api/a%2fb")),
        ("trailing dot segment", get("/api/x/..")),
        ("trailing dot", get("/api/x/.")),
        ("absolute form", get("http://site/api/../api/admin")),
        // Without a URI the target goes as the client sent it.
        ("no uri: raw target", get("/x/../y%2e%2e//z")),
        ("no uri: above the root", get("/x/../../y")),
        // Percent escapes are two hex digits, no sign.
        ("plus sign escape", get("/a%+1")),
        ("plus sign escape, uri", get("/api/a%+1")),
        ("minus sign escape", get("/api/a%-1")),
        // The directory redirect is absolute and built from the
        // normalized path (no protocol-relative `//evil.example/`).
        (
            "redirect from a raw path",
            get("//evil.example/..%2fstatic/sub"),
        ),
        ("redirect keeps the query", get("/static/sub?a=1")),
        (
            "redirect host from Host",
            "GET /static//./s%75b HTTP/1.1\r\nHost: Site:9999\r\n\r\n".into(),
        ),
        (
            "redirect host without Host",
            "GET /static/sub HTTP/1.0\r\n\r\n".into(),
        ),
        (
            "redirect host from an absolute target",
            "GET http://other.example/static/sub HTTP/1.1\r\nHost: site\r\n\r\n".into(),
        ),
        // Content-Length: one line, digits only.
        ("length 5,", post("Content-Length: 5,\r\n", "hello")),
        ("length 5, 5", post("Content-Length: 5, 5\r\n", "hello")),
        (
            "two identical length lines",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            "empty length line first",
            post("Content-Length:\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            "empty length line last",
            post("Content-Length: 5\r\nContent-Length:\r\n", "hello"),
        ),
        (
            "length with spaces",
            post("Content-Length:  5 \r\n", "hello"),
        ),
        (
            "length with a leading zero",
            post("Content-Length: 05\r\n", "hello"),
        ),
        // Methods: nginx's alphabet (A-Z, `_`, `-`); TRACE is refused.
        ("TRACE", "TRACE /a HTTP/1.1\r\nHost: site\r\n\r\n".into()),
        (
            "TRACE on a file",
            "TRACE /static/sub/ HTTP/1.1\r\nHost: site\r\n\r\n".into(),
        ),
        ("GE!T", "GE!T /a HTTP/1.1\r\nHost: site\r\n\r\n".into()),
        (
            "lower-case get",
            "get /a HTTP/1.1\r\nHost: site\r\n\r\n".into(),
        ),
        ("GET1", "GET1 /a HTTP/1.1\r\nHost: site\r\n\r\n".into()),
        (
            "extension method",
            "FOO_BAR /a HTTP/1.1\r\nHost: site\r\n\r\n".into(),
        ),
        (
            "extension method with -",
            "F-O /a HTTP/1.1\r\nHost: site\r\n\r\n".into(),
        ),
        // Chunked bodies.
        (
            "bare CR in a trailer",
            chunked("5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n"),
        ),
        ("trailer", chunked("5\r\nhello\r\n0\r\nX-T: ab\r\n\r\n")),
        // A chunk larger than client_max_body_size: 413 at once.
        ("huge chunk", chunked("fffffff\r\nhello")),
        ("chunk just over the limit", chunked("100001\r\nhello")),
        (
            "length over the limit",
            post("Content-Length: 1048577\r\n", "hello"),
        ),
    ];
    let mut diffs = Vec::new();
    for (name, req) in &cases {
        let (n, o) = p.both(req.as_bytes(), Duration::from_secs(3)).await;
        if n != o {
            diffs.push(format!("{name}: {req:?}\n  nginx: {n:?}\n  ours:  {o:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "differences from nginx:\n{}",
        diffs.join("\n")
    );
}

/// An HTTP/2 (h2c) request: status and what the backend received.
async fn h2(port: u16, method: &str, uri: &str, host: Option<&str>) -> (u16, Vec<String>) {
    let io = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    let req = b.body(Empty::<Bytes>::new()).expect("request");
    match tokio::time::timeout(Duration::from_secs(3), send.send_request(req)).await {
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            (status, Vec::new())
        }
        // A stream reset counts as nginx's refusal of a malformed request.
        Ok(Err(_)) => (400, Vec::new()),
        Err(_) => (0, Vec::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_are_answered_as_nginx_answers_them() {
    let p = pair("", "").await;
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("GET", "http://site/api/../api/admin", None),
        ("GET", "http://site/api/%2e%2e/api/admin", None),
        ("GET", "http://site/api/x/../../api/admin", None),
        ("GET", "http://site/api/x/../../../admin", None),
        ("GET", "http://site/x/../y", None),
        ("TRACE", "http://site/a", None),
        ("GET", "http://site/a", Some("other")),
    ];
    let mut diffs = Vec::new();
    for &(method, uri, host) in cases {
        let (ns, _) = h2(p.nginx.h2_port, method, uri, host).await;
        let nb = p.nginx_be.take();
        let (os, _) = h2(p.ours_port, method, uri, host).await;
        let ob = p.ours_be.take();
        if (ns, &nb) != (os, &ob) {
            diffs.push(format!(
                "{method} {uri} host {host:?}\n  nginx: {ns} {nb:?}\n  ours:  {os} {ob:?}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "differences from nginx:\n{}",
        diffs.join("\n")
    );
}

/// Requests on one connection until it closes: each answer's status and
/// whether it said `Connection: close`.
async fn keepalive_run(port: u16) -> Vec<(String, bool)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut out = Vec::new();
    for i in 0..6 {
        let req = format!("GET /k/{i} HTTP/1.1\r\nHost: site\r\n\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            out.push(("write failed".to_string(), true));
            break;
        }
        let a = read_answer(&mut s, Duration::from_secs(3)).await;
        let end = a.status == "closed" || a.status == "timeout";
        out.push((a.status, a.close));
        if end {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_requests_end_connections_as_nginx_does() {
    // Regression: there was no per-connection request limit.
    let p = pair("keepalive_requests 3;", "  keepalive_requests: 3").await;
    let n = keepalive_run(p.nginx.port).await;
    let o = keepalive_run(p.ours_port).await;
    assert_eq!(o, n, "ours vs nginx");
    // The third response says close, then the connection ends.
    assert_eq!(o.len(), 4, "{o:?}");
    assert!(o[2].1 && !o[1].1, "{o:?}");
}
