//! Static files and error pages.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use crate::common::*;

struct Site {
    _dir: tempfile::TempDir,
    port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn site(extra_site: &str, upstreams: &str) -> Site {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("html");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    std::fs::create_dir_all(root.join("docs")).expect("mkdir");
    std::fs::create_dir_all(root.join("a b")).expect("mkdir");
    std::fs::write(root.join("index.html"), "<h1>home</h1>\n").expect("w");
    std::fs::write(root.join("docs/index.htm"), "docs htm\n").expect("w");
    std::fs::write(root.join("docs/index.html"), "docs html\n").expect("w");
    std::fs::write(root.join("style.css"), "body{}\n").expect("w");
    std::fs::write(root.join("data.bin"), (0u8..=99).collect::<Vec<u8>>()).expect("w");
    std::fs::write(root.join("404.html"), "custom not found\n").expect("w");
    std::fs::write(root.join("50x.html"), "custom 50x\n").expect("w");
    std::fs::write(dir.path().join("secret.txt"), "secret\n").expect("w");
    let port = free_port();
    let yaml = format!(
        r#"
node: test
{upstreams}
sites:
  - name: files
    listen: ["127.0.0.1:{port}"]
    root: {root}
    index: [index.htm, index.html]
{extra_site}
"#,
        root = root.display()
    );
    let (_p, stop, _h) = start_proxy(config(&yaml)).await;
    Site {
        _dir: dir,
        port,
        _stop: stop,
    }
}

fn req(port: u16, method: Method, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).expect("req")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_index_types_and_errors() {
    let s = site("", "").await;
    let c = client();
    let g = get(&c, s.port, "x", "/").await;
    assert_eq!(
        (g.status.as_u16(), g.body.as_str()),
        (200, "<h1>home</h1>\n")
    );
    assert_eq!(g.headers["content-type"], "text/html");
    // The index list is tried in order.
    assert_eq!(get(&c, s.port, "x", "/docs/").await.body, "docs htm\n");
    let g = get(&c, s.port, "x", "/style.css").await;
    assert_eq!(g.headers["content-type"], "text/css");
    assert_eq!(g.headers["content-length"], "7");
    // Directory without index: 403; without slash: 301 to the slash.
    assert_eq!(get(&c, s.port, "x", "/sub/").await.status, 403);
    let g = get(&c, s.port, "x", "/docs?x=1").await;
    assert_eq!(g.status, 301);
    // Absolute, as nginx's (absolute_redirect on, the request's host).
    assert_eq!(
        g.headers["location"],
        format!("http://x:{}/docs/?x=1", s.port).as_str()
    );
    assert_eq!(get(&c, s.port, "x", "/missing.html").await.status, 404);
    // HEAD: headers only.
    let g = send(&c, req(s.port, Method::HEAD, "/style.css", &[]))
        .await
        .expect("head");
    assert_eq!((g.status.as_u16(), g.body.as_str()), (200, ""));
    assert_eq!(g.headers["content-length"], "7");
    assert_eq!(
        send(&c, req(s.port, Method::POST, "/style.css", &[]))
            .await
            .expect("post")
            .status,
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_is_rejected() {
    let s = site("", "").await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/%2E%2E%2fsecret.txt",
    ] {
        let r = raw(
            s.port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{path}: {r}");
        assert!(!r.contains("secret"), "{path}");
    }
    // Dot segments inside the root are fine.
    let r = raw(
        s.port,
        b"GET /sub/../style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_redirect_is_absolute_and_normalized() {
    // Regression: `Location` was the raw path plus `/`: `GET
    // //evil.example/..%2fdocs` answered `Location: //evil.example/..%2fdocs/`,
    // a protocol-relative redirect off site.
    let s = site("", "").await;
    let p = s.port;
    let cases: &[(&str, String)] = &[
        (
            "GET //evil.example/..%2fdocs HTTP/1.1\r\nHost: x\r\n",
            format!("http://x:{p}/docs/"),
        ),
        (
            "GET /sub/..//do%63s?a=%2f HTTP/1.1\r\nHost: X.Example:81\r\n",
            format!("http://x.example:{p}/docs/?a=%2f"),
        ),
        (
            "GET /docs HTTP/1.0\r\n",
            format!("http://127.0.0.1:{p}/docs/"),
        ),
        (
            "GET http://other.example/docs HTTP/1.1\r\nHost: x\r\n",
            format!("http://other.example:{p}/docs/"),
        ),
        (
            "GET /a%20b HTTP/1.1\r\nHost: x\r\n",
            format!("http://x:{p}/a%20b/"),
        ),
    ];
    for (head, want) in cases {
        let r = raw(
            p,
            format!("{head}Connection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 301"), "{head}: {r}");
        let line = format!("\r\nlocation: {want}\r\n");
        assert!(r.to_ascii_lowercase().contains(&line), "{head}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_and_range_requests() {
    let s = site("", "").await;
    let c = client();
    let g = get(&c, s.port, "x", "/data.bin").await;
    let etag = g.headers["etag"].to_str().expect("etag").to_string();
    let lm = g.headers["last-modified"].to_str().expect("lm").to_string();
    assert!(etag.starts_with('"') && etag.ends_with("-64\""), "{etag}");
    assert_eq!(g.headers["accept-ranges"], "bytes");

    let g = send(
        &c,
        req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("if-none-match", &etag)],
        ),
    )
    .await
    .expect("r");
    assert_eq!((g.status.as_u16(), g.body.len()), (304, 0));
    assert_eq!(g.headers["etag"], etag.as_str());
    let g = send(
        &c,
        req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("if-none-match", "\"other\"")],
        ),
    )
    .await
    .expect("r");
    assert_eq!(g.status, 200);
    let g = send(
        &c,
        req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("if-modified-since", &lm)],
        ),
    )
    .await
    .expect("r");
    assert_eq!(g.status, 304);
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    let g = send(
        &c,
        req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("if-modified-since", old)],
        ),
    )
    .await
    .expect("r");
    assert_eq!(g.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let g = send(
        &c,
        req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("if-none-match", "\"x\""), ("if-modified-since", &lm)],
        ),
    )
    .await
    .expect("r");
    assert_eq!(g.status, 200);

    let c2 = client();
    let resp = c2
        .request(req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("range", "bytes=10-19")],
        ))
        .await
        .expect("r");
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 10-19/100");
    assert_eq!(resp.headers()["content-length"], "10");
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("b")
        .to_bytes();
    assert_eq!(&body[..], &(10u8..20).collect::<Vec<u8>>()[..]);
    let resp = c2
        .request(req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("range", "bytes=-5")],
        ))
        .await
        .expect("r");
    assert_eq!(resp.headers()["content-range"], "bytes 95-99/100");
    let g = send(
        &c,
        req(s.port, Method::GET, "/data.bin", &[("range", "bytes=100-")]),
    )
    .await
    .expect("r");
    assert_eq!(g.status, 416);
    assert_eq!(g.headers["content-range"], "bytes */100");
    // If-Range with a stale validator: the whole file.
    let g = send(
        &c,
        req(
            s.port,
            Method::GET,
            "/data.bin",
            &[("range", "bytes=0-1"), ("if-range", "\"stale\"")],
        ),
    )
    .await
    .expect("r");
    assert_eq!((g.status.as_u16(), g.body.len()), (200, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_for_generated_errors_only() {
    let be = Backend::start("be").await;
    let dead = free_port();
    let upstreams = format!(
        "upstreams:\n  live:\n    servers: [{{address: \"{}\"}}]\n  dead:\n    servers: [{{address: \"127.0.0.1:{dead}\"}}]\n",
        be.addr
    );
    let extra = r#"    error_pages:
      404: /404.html
      502: /50x.html
    locations:
      - path: /
      - path: /app/
        proxy: {upstream: live, uri: /}
      - path: /down/
        proxy: {upstream: dead}
"#;
    let s = site(extra, &upstreams).await;
    let c = client();
    let g = get(&c, s.port, "x", "/nope").await;
    assert_eq!(
        (g.status.as_u16(), g.body.as_str()),
        (404, "custom not found\n")
    );
    let g = get(&c, s.port, "x", "/down/x").await;
    assert_eq!((g.status.as_u16(), g.body.as_str()), (502, "custom 50x\n"));
    assert_eq!(g.headers["content-type"], "text/html");
    // A backend's own 502 passes through untouched.
    let g = get(&c, s.port, "x", "/app/status/502").await;
    assert_eq!(g.status, 502);
    assert_eq!(g.body, "backend's own 502");
    assert_eq!(g.headers["x-backend"], "be");
}
