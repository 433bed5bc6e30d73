//! HTTP/2 with prior knowledge (h2c): what the HTTP/2 side checks on its
//! own (`:authority` against Host, methods) and its per-connection limits.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::common::*;

async fn proxy(limits: &str) -> (u16, Backend, tokio::sync::oneshot::Sender<()>) {
    let be = Backend::start("be").await;
    let port = free_port();
    let servers = format!("      - address: \"{}\"\n", be.addr);
    let (_p, stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", limits))).await;
    (port, be, stop)
}

/// An h2c connection to the proxy; the task driving it ends with the
/// connection (its handle says when).
async fn connect(port: u16) -> (SendRequest<Empty<Bytes>>, tokio::task::JoinHandle<()>) {
    let io = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driver)
}

async fn status(
    send: &mut SendRequest<Empty<Bytes>>,
    method: &str,
    uri: &str,
    host: Option<&str>,
) -> Result<(u16, String), String> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    let req = b.body(Empty::new()).expect("request");
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_must_agree_with_authority() {
    // Regression: a request whose `host` field and `:authority` differ was
    // served, routed by one while the backend may read the other (RFC 9113
    // 8.3.1: malformed).
    let (port, be, _stop) = proxy("  drain_timeout: 1s").await;
    let (mut send, _d) = connect(port).await;
    let (s, _) = status(&mut send, "GET", "http://a.example/x", Some("b.example"))
        .await
        .expect("answer");
    assert_eq!(s, 400);
    assert_eq!(be.hits(), 0);
    // The same name (any case), or either one alone, is fine. (nginx 1.22
    // refuses any request with both as a duplicate Host; RFC 9113 allows
    // them when they agree.)
    for (uri, host) in [
        ("http://a.example/x", Some("A.example")),
        ("http://a.example/x", None),
    ] {
        let (s, body) = status(&mut send, "GET", uri, host).await.expect("answer");
        assert_eq!(s, 200, "{uri} {host:?}");
        let seen = Echo::parse(&body)
            .header("host")
            .map(str::to_ascii_lowercase);
        assert_eq!(seen.as_deref(), Some("a.example"));
    }
    assert_eq!(be.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_are_checked_as_for_http1() {
    let (port, be, _stop) = proxy("  drain_timeout: 1s").await;
    let (mut send, _d) = connect(port).await;
    for (method, want) in [
        ("TRACE", 405),
        ("GE!T", 400),
        ("get", 400),
        ("FOO_BAR", 200),
    ] {
        let (s, _) = status(&mut send, method, "http://a.example/m", None)
            .await
            .expect("answer");
        assert_eq!(s, want, "{method}");
    }
    assert_eq!(be.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_goes_away_after_keepalive_requests_streams() {
    // Regression: there was no per-connection request limit (nginx's
    // keepalive_requests): after that many streams, a GOAWAY.
    let (port, be, _stop) = proxy("  keepalive_requests: 3\n  drain_timeout: 1s").await;
    let (mut send, driver) = connect(port).await;
    for i in 0..3 {
        let (s, _) = status(&mut send, "GET", &format!("http://a.example/{i}"), None)
            .await
            .expect("answer");
        assert_eq!(s, 200);
    }
    // The server sent GOAWAY: the client connection ends (well before the
    // 75 s keepalive_timeout).
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("connection closed after 3 streams")
        .expect("driver");
    assert!(
        status(&mut send, "GET", "http://a.example/4", None)
            .await
            .is_err()
    );
    assert_eq!(be.hits(), 3);
}
