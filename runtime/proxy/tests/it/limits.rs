//! Client-side limits: slowloris, oversized heads and bodies, garbage.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

async fn proxy_with(limits: &str) -> (u16, Backend, tokio::sync::oneshot::Sender<()>) {
    let be = Backend::start("be").await;
    let port = free_port();
    let servers = format!("      - address: \"{}\"\n", be.addr);
    let (_p, stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", limits))).await;
    (port, be, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_head_is_cut_at_header_timeout() {
    let (port, _be, _stop) = proxy_with("  header_timeout: 500ms").await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let t = Instant::now();
    let mut buf = Vec::new();
    // Keep trickling a byte now and then; the deadline is for the whole head.
    let closed = loop {
        tokio::select! {
            r = s.read_to_end(&mut buf) => break r.is_ok() || r.is_err(),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if s.write_all(b"a").await.is_err() {
                    break true;
                }
            }
        }
        if t.elapsed() > Duration::from_secs(5) {
            break false;
        }
    };
    let took = t.elapsed();
    assert!(closed, "connection still open after 5 s");
    assert!(
        took >= Duration::from_millis(400),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "closed too late: {took:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_head_gets_431() {
    let (port, be, _stop) = proxy_with("  max_header_bytes: 8192").await;
    let big = "a".repeat(20_000);
    let r = raw(
        port,
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r:.200}");
    assert_eq!(be.hits(), 0);
    // A head under the limit passes.
    let ok = "a".repeat(4_000);
    let r = raw(
        port,
        format!("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {ok}\r\n\r\n").as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r:.200}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_gives_413() {
    let (port, be, _stop) = proxy_with("  max_body_bytes: 1000").await;
    let c = client();
    let post = |n: usize| {
        Request::post(format!("http://127.0.0.1:{port}/up"))
            .body(Full::new(Bytes::from(vec![b'x'; n])))
            .expect("req")
    };
    assert_eq!(send(&c, post(1001)).await.expect("r").status, 413);
    // A large declared body: the 413 must still reach the client.
    for _ in 0..5 {
        assert_eq!(
            send(&client(), post(8_000_000)).await.expect("big").status,
            413
        );
    }
    let g = send(&c, post(1000)).await.expect("r");
    assert_eq!(g.status, 200);
    assert_eq!(Echo::parse(&g.body).header("body-len"), Some("1000"));
    // Chunked, no Content-Length: caught while reading.
    let chunk = "x".repeat(600);
    let r = raw(
        port,
        format!("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n").as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r:.200}");
    assert_eq!(be.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_over_the_body_limit_is_refused_at_once() {
    // Regression: a chunk size far over max_body_bytes waited for the data
    // (io_timeout, then 408) instead of answering 413 at once as nginx
    // does. A size line alone is enough here (nginx waits for one data
    // byte first).
    let (port, be, _stop) = proxy_with("  max_body_bytes: 1000").await;
    for body in ["fffffff\r\nhello", "3e9\r\n", "1f4\r\n{500}\r\n1f5\r\n"] {
        let body = body.replace("{500}", &"x".repeat(500));
        let t = Instant::now();
        let r = raw(
            port,
            format!("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
                .as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 413"), "{body:.20}: {r:.200}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    assert_eq!(be.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400() {
    let (port, be, _stop) = proxy_with("  drain_timeout: 1s").await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let r = raw(port, bad, Duration::from_secs(2)).await;
        assert!(
            r.starts_with("HTTP/1.1 400"),
            "{:?} -> {r:.200}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(be.hits(), 0);
    // The proxy is still fine.
    assert_eq!(get(&client(), port, "x", "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connection_is_closed() {
    let (port, _be, _stop) = proxy_with("  keepalive_timeout: 300ms").await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let t = Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "idle connection not closed");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_queues_extra_clients() {
    let (port, _be, _stop) = proxy_with("  max_connections: 2\n  keepalive_timeout: 30s").await;
    // Two idle keep-alive connections hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    // The third waits in the backlog: no answer while the slots are taken.
    let mut third = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let early = tokio::time::timeout(Duration::from_millis(300), third.read_to_end(&mut buf)).await;
    assert!(
        early.is_err() && buf.is_empty(),
        "served beyond max_connections"
    );
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(3), third.read_to_end(&mut buf))
        .await
        .expect("served once a slot is free")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_is_proxied() {
    let (port, _be, _stop) = proxy_with("  drain_timeout: 1s").await;
    // The authority names a host that does not resolve: connect by address.
    let io = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get("http://h2.example/h2")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let resp = send.send_request(req).await.expect("h2 request");
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let e = Echo::parse(&String::from_utf8_lossy(&body));
    assert_eq!(e.request_line, "GET /h2");
    assert_eq!(e.header("host"), Some("h2.example"));
    assert_eq!(e.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stalling_mid_body_is_cut_at_read_timeout() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let port = free_port();
    let servers = format!("      - address: \"{addr}\"\n");
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(
        port,
        &servers,
        "    read_timeout: 400ms",
        "  drain_timeout: 1s",
    )))
    .await;
    let t = Instant::now();
    let r = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let took = t.elapsed();
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("0123456789"),
        "{r}"
    );
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_dropped_after_io_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let size = 48 * 1024 * 1024;
    std::fs::write(dir.path().join("big.bin"), vec![7u8; size]).expect("write");
    let port = free_port();
    let yaml = format!(
        "node: test\nlimits:\n  io_timeout: 300ms\nsites:\n  - name: s\n    listen: [\"127.0.0.1:{port}\"]\n    root: {}\n",
        dir.path().display()
    );
    let (_p, _stop, _h) = start_proxy(config(&yaml)).await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // Read nothing while the socket buffers fill and the timeout passes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        buf.len() < size,
        "the whole file arrived: the stalled client was not cut"
    );
    assert!(buf.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_keepalive_timeouts_are_separate() {
    let (port, _be, _stop) =
        proxy_with("  header_timeout: 300ms\n  keepalive_timeout: 1500ms").await;
    // A silent new connection gets header_timeout.
    let t = Instant::now();
    let r = raw(port, b"", Duration::from_secs(3)).await;
    assert!(r.is_empty());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1200),
        "{took:?}"
    );

    // Between requests the longer keepalive_timeout applies.
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut buf = [0u8; 8192];
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let n = s.read(&mut buf).await.expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let t = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
        .await
        .expect("closed at keepalive_timeout")
        .expect("read");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1400),
        "{took:?}"
    );
}
