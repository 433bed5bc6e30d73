//! Reload, graceful shutdown, access logs and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hadeploy_proxy::Proxy;
use http::Request;
use http_body_util::Full;

use crate::common::*;

fn one_backend(port: u16, be: std::net::SocketAddr, extra_site: &str) -> String {
    format!(
        r#"
node: test
limits:
  drain_timeout: 3s
upstreams:
  backend:
    servers: [{{address: "{be}"}}]
sites:
  - name: site
    listen: ["127.0.0.1:{port}"]
{extra_site}
    locations:
      - path: /
        proxy: {{upstream: backend}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_nothing() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let (p, _stop, _h) = start_proxy(config(&one_backend(port, a.addr, ""))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut failures) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let req = Request::get(format!("http://127.0.0.1:{port}/slow/3"))
                    .body(Full::new(Bytes::new()))
                    .expect("req");
                match send(&c, req).await {
                    Ok(g) if g.status == 200 => ok += 1,
                    Ok(g) => failures.push(format!("status {}", g.status)),
                    Err(e) => failures.push(e),
                }
            }
            (ok, failures)
        }));
    }
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let target = if i % 2 == 0 { b.addr } else { a.addr };
        p.reload(config(&one_backend(port, target, "")))
            .expect("reload");
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for t in tasks {
        let (ok, failures) = t.await.expect("task");
        assert!(failures.is_empty(), "failed during reloads: {failures:?}");
        total += ok;
    }
    assert!(total > 50, "only {total} requests");
    assert!(a.hits() > 0 && b.hits() > 0);
    // Last reload pointed at a: new requests go there.
    let before = b.hits();
    let g = get(&client(), port, "x", "/").await;
    assert_eq!(Echo::parse(&g.body).backend, "a");
    assert_eq!(b.hits(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reload_keeps_old_config_and_listen_changes_apply() {
    let a = Backend::start("a").await;
    let port = free_port();
    let (p, _stop, _h) = start_proxy(config(&one_backend(port, a.addr, ""))).await;
    let c = client();
    // Invalid: references a missing upstream (bypassing the loader, which
    // would refuse it earlier).
    let mut bad = config(&one_backend(port, a.addr, ""));
    bad.sites[0].locations[0]
        .proxy
        .as_mut()
        .expect("proxy")
        .upstream = "nope".into();
    let err = p.reload(bad).expect_err("invalid config must be refused");
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(get(&c, port, "x", "/").await.status, 200);

    // Move to another port: the new one serves, the old one stops.
    let port2 = free_port();
    p.reload(config(&one_backend(port2, a.addr, "")))
        .expect("reload");
    assert_eq!(get(&c, port2, "x", "/").await.status, 200);
    assert_eq!(
        p.listen_addrs(),
        vec![format!("127.0.0.1:{port2}").parse().expect("a")]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "old port still accepts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests() {
    let a = Backend::start("a").await;
    let port = free_port();
    let (_p, stop, h) = start_proxy(config(&one_backend(port, a.addr, ""))).await;
    let slow = tokio::spawn(async move { get(&client(), port, "x", "/slow/700").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    stop.send(()).expect("stop");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "still accepting while draining"
    );
    let g = slow.await.expect("task");
    assert_eq!(g.status, 200, "in-flight request must finish");
    h.await.expect("run");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// Splits an nginx combined/main line into its fields.
fn parse_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let (field, next) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').expect("closing quote");
            (&r[..end], &r[end + 1..])
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').expect("closing bracket");
            (&r[..end], &r[end + 1..])
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        fields.push(field.to_string());
        rest = next;
    }
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_and_reopen() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().expect("tmp");
    let combined = dir.path().join("logs/combined.log");
    let main = dir.path().join("main.log");
    let port = free_port();
    let port2 = free_port();
    let yaml = format!(
        r#"
node: test
upstreams:
  backend:
    servers: [{{address: "{be}"}}]
sites:
  - name: one
    listen: ["127.0.0.1:{port}"]
    access_log: {{path: {combined}}}
    locations:
      - path: /
        proxy: {{upstream: backend}}
  - name: two
    listen: ["127.0.0.1:{port2}"]
    access_log: {{path: {main}, format: main}}
    locations:
      - path: /
        proxy: {{upstream: backend}}
"#,
        be = a.addr,
        combined = combined.display(),
        main = main.display()
    );
    let (p, stop, h) = start_proxy(config(&yaml)).await;
    let c = client();
    let r = Request::get(format!("http://127.0.0.1:{port}/path?q=1"))
        .header("user-agent", "tester/1.0 \"quoted\"")
        .header("referer", "http://ref.example/")
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let g = send(&c, r).await.expect("r");
    let sent = g.body.len();
    let r = Request::get(format!("http://127.0.0.1:{port2}/m"))
        .header("x-forwarded-for", "198.51.100.1")
        .body(Full::new(Bytes::new()))
        .expect("req");
    send(&c, r).await.expect("r");

    // Lines reach the disk within about a second without any shutdown.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let text = std::fs::read_to_string(&combined).expect("combined log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let f = parse_line(lines[0]);
    assert_eq!(f.len(), 9, "{f:?}");
    assert_eq!(f[0], "127.0.0.1");
    assert_eq!((f[1].as_str(), f[2].as_str()), ("-", "alice"));
    // 25/Nov/2026:17:55:36 +0000
    let t = &f[3];
    assert_eq!(t.len(), 26, "{t}");
    assert_eq!(&t[2..3], "/");
    assert_eq!(&t[6..7], "/");
    assert_eq!(&t[11..12], ":");
    // The node's zone offset, like nginx: ` +0000` on a UTC machine.
    let off = &t[20..];
    assert!(off.starts_with(" +") || off.starts_with(" -"), "{t}");
    assert!(off[2..].chars().all(|c| c.is_ascii_digit()), "{t}");
    assert_eq!(f[4], "GET /path?q=1 HTTP/1.1");
    assert_eq!(f[5], "200");
    assert_eq!(f[6], sent.to_string());
    assert_eq!(f[7], "http://ref.example/");
    assert_eq!(f[8], "tester/1.0 \\x22quoted\\x22");

    let text = std::fs::read_to_string(&main).expect("main log");
    let f = parse_line(text.lines().next().expect("line"));
    assert_eq!(f.len(), 10, "{f:?}");
    assert_eq!(f[4], "GET /m HTTP/1.1");
    assert_eq!(
        (f[7].as_str(), f[8].as_str(), f[9].as_str()),
        ("-", "-", "198.51.100.1")
    );

    // A head hyper refuses is logged on the default site as nginx does.
    let r = raw(port, b"GARBAGE\r\n\r\n", Duration::from_secs(2)).await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // The line is written when hyper's connection task ends, just after
    // the close the client saw.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // logrotate: move the file, SIGUSR1, new lines go to a new file.
    let rotated = dir.path().join("combined.log.1");
    std::fs::rename(&combined, &rotated).expect("rename");
    p.reopen_logs();
    get(&c, port, "x", "/after").await;
    drop(stop);
    h.await.expect("run");
    // Read after the drain: a request is counted in its log phase, just
    // after the client has its response.
    let m = p.metrics_text();
    let new = std::fs::read_to_string(&combined).expect("new log");
    assert_eq!(new.lines().count(), 1);
    assert!(new.contains("\"GET /after HTTP/1.1\" 200"), "{new}");
    let old = std::fs::read_to_string(&rotated).expect("rotated");
    let old: Vec<&str> = old.lines().collect();
    assert_eq!(old.len(), 2, "{old:?}");
    let f = parse_line(old[1]);
    assert_eq!(
        (f[4].as_str(), f[5].as_str(), f[6].as_str()),
        ("-", "400", "0")
    );

    assert!(
        m.contains("hadeploy_proxy_requests_total{site=\"one\",status=\"200\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("hadeploy_proxy_requests_total{site=\"two\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("hadeploy_proxy_request_duration_seconds_count{site=\"one\"} 2"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "hadeploy_proxy_upstream_up{{upstream=\"backend\",server=\"{}\"}} 1",
            a.addr
        )),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_a_non_local_address() {
    // 192.0.2.0/24 is TEST-NET-1: never on this machine. IP_FREEBIND lets
    // the proxy bind it anyway, as it must for a VIP held by the peer. No
    // traffic is sent to it.
    let port = free_port();
    let yaml = format!(
        r#"
node: test
sites:
  - name: vip
    listen: ["192.0.2.10:{port}"]
    root: /tmp
"#
    );
    let p = Proxy::bind(config(&yaml))
        .await
        .expect("bind a non-local VIP");
    assert_eq!(p.listen_addrs().len(), 1);
}
