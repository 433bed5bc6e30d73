//! Weights, retries, passive and active health.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::common::*;

const LIMITS: &str = "  drain_timeout: 2s";

fn server(addr: std::net::SocketAddr, extra: &str) -> String {
    format!("      - address: \"{addr}\"\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_5_1_follow_nginx_sequence_over_600_requests() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let servers = format!(
        "{}{}",
        server(a.addr, "        weight: 5\n"),
        server(b.addr, "        weight: 1\n")
    );
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", LIMITS))).await;
    let c = client();
    let mut seq = String::new();
    for _ in 0..600 {
        let g = get(&c, port, "x", "/").await;
        assert_eq!(g.status, 200);
        seq.push_str(&Echo::parse(&g.body).backend);
    }
    // nginx's smooth WRR for 5:1: currents (5,1)->a (4,2)->a (3,3)->a
    // (2,4)->b (7,-1)->a (6,0)->a, then it repeats.
    assert_eq!(seq, "aaabaa".repeat(100));
    assert_eq!((a.hits(), b.hits()), (500, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_under_load_fails_no_get() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let servers = format!("{}{}", server(a.addr, ""), server(b.addr, ""));
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", LIMITS))).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            for i in 0..150 {
                let req = Request::get(format!("http://127.0.0.1:{port}/slow/2"))
                    .body(Full::new(Bytes::new()))
                    .expect("req");
                match send(&c, req).await {
                    Ok(g) if g.status == 200 => {}
                    Ok(g) => failures.push(format!("#{i}: status {}", g.status)),
                    Err(e) => failures.push(format!("#{i}: {e}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }
    while done.load(Ordering::SeqCst) < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.kill();
    let hits_b_at_kill = b.hits();
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.expect("task"));
    }
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        hits_b_at_kill > 30,
        "b served before the kill: {hits_b_at_kill}"
    );
    // A request b took but never answered is counted by both.
    assert!(a.hits() + b.hits() >= 600);
}

/// A backend that reads a request and closes without answering.
async fn rude_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                // Dropped: the connection closes with no response.
            });
        }
    });
    (addr, conns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_not_retried_but_get_is() {
    let (rude, rude_conns) = rude_backend().await;
    let good = Backend::start("good").await;
    let port = free_port();
    // max_fails 0: keep both in rotation so the order stays rude, good, ...
    let servers = format!(
        "{}{}",
        server(rude, "        max_fails: 0\n"),
        server(good.addr, "        max_fails: 0\n")
    );
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", LIMITS))).await;
    let c = client();
    let post = Request::post(format!("http://127.0.0.1:{port}/submit"))
        .body(Full::new(Bytes::from("payload")))
        .expect("req");
    let g = send(&c, post).await.expect("post");
    assert_eq!(
        g.status, 502,
        "POST after the request was sent must not be retried"
    );
    assert_eq!(good.hits(), 0);
    assert_eq!(rude_conns.load(Ordering::SeqCst), 1);
    // Next pick is `good` (WRR), the one after is `rude` -> retried on good.
    assert_eq!(get(&c, port, "x", "/1").await.status, 200);
    assert_eq!(get(&c, port, "x", "/2").await.status, 200);
    assert_eq!(good.hits(), 2);
    assert_eq!(rude_conns.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_retried_after_connect_error() {
    let dead = free_port();
    let good = Backend::start("good").await;
    let port = free_port();
    let servers = format!(
        "{}{}",
        server(format!("127.0.0.1:{dead}").parse().expect("addr"), ""),
        server(good.addr, "")
    );
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", LIMITS))).await;
    let c = client();
    let post = Request::post(format!("http://127.0.0.1:{port}/submit"))
        .body(Full::new(Bytes::from("payload")))
        .expect("req");
    let g = send(&c, post).await.expect("post");
    assert_eq!(g.status, 200);
    let e = Echo::parse(&g.body);
    assert_eq!(e.backend, "good");
    assert_eq!(e.header("body-len"), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_used_only_when_primaries_are_down() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let bk = Backend::start("backup").await;
    let port = free_port();
    let servers = format!(
        "{}{}{}",
        server(a.addr, "        fail_timeout: 30s\n"),
        server(b.addr, "        fail_timeout: 30s\n"),
        server(bk.addr, "        backup: true\n")
    );
    let (p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", LIMITS))).await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(get(&c, port, "x", "/").await.status, 200);
    }
    assert_eq!((a.hits(), b.hits(), bk.hits()), (5, 5, 0));
    a.kill();
    b.kill();
    for _ in 0..10 {
        let g = get(&c, port, "x", "/").await;
        assert_eq!(g.status, 200);
        assert_eq!(Echo::parse(&g.body).backend, "backup");
    }
    assert_eq!(bk.hits(), 10);
    let st = p.status();
    assert_eq!(st.node, "test");
    assert_eq!(st.requests, 20);
    let servers: Vec<(String, bool, bool)> = st.upstreams[0]
        .servers
        .iter()
        .map(|s| (s.address.clone(), s.healthy, s.backup))
        .collect();
    assert_eq!(
        servers,
        vec![
            (a.addr.to_string(), false, false),
            (b.addr.to_string(), false, false),
            (bk.addr.to_string(), true, true)
        ]
    );
    let m = p.metrics_text();
    assert!(
        m.contains(&format!(
            "hadeploy_proxy_upstream_up{{upstream=\"backend\",server=\"{}\"}} 0",
            a.addr
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "hadeploy_proxy_upstream_up{{upstream=\"backend\",server=\"{}\"}} 1",
            bk.addr
        )),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_dead_gives_502() {
    let port = free_port();
    let servers = format!(
        "{}{}",
        server(format!("127.0.0.1:{}", free_port()).parse().expect("a"), ""),
        server(format!("127.0.0.1:{}", free_port()).parse().expect("a"), "")
    );
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, "", LIMITS))).await;
    let c = client();
    assert_eq!(get(&c, port, "x", "/").await.status, 502);
    // Both are now marked failed: "no live upstreams" is a 502 too.
    assert_eq!(get(&c, port, "x", "/").await.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_timeout_gives_504() {
    let slow = Backend::start("slow").await;
    let port = free_port();
    let servers = server(slow.addr, "");
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(
        port,
        &servers,
        "    read_timeout: 300ms\n    connect_timeout: 300ms",
        LIMITS,
    )))
    .await;
    let c = client();
    let t = std::time::Instant::now();
    assert_eq!(get(&c, port, "x", "/slow/3000").await.status, 504);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(get(&c, port, "x", "/fast").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_rise_and_fall() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let servers = format!("{}{}", server(a.addr, ""), server(b.addr, ""));
    let hc = "    health_check:\n      interval: 100ms\n      timeout: 500ms\n      path: /health\n      rise: 2\n      fall: 3\n";
    let (p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, hc, LIMITS))).await;
    let c = client();
    let up_line = |addr: std::net::SocketAddr, v: u8| {
        format!("hadeploy_proxy_upstream_up{{upstream=\"backend\",server=\"{addr}\"}} {v}")
    };

    a.health.store(503, Ordering::SeqCst);
    // fall 3 at 100 ms: down after ~200 ms, not after one or two failed checks.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        p.metrics_text().contains(&up_line(a.addr, 1)),
        "one failed check must not mark a server down"
    );
    wait_for(|| p.metrics_text().contains(&up_line(a.addr, 0))).await;
    let before = a.hits();
    for _ in 0..10 {
        let g = get(&c, port, "x", "/").await;
        assert_eq!(Echo::parse(&g.body).backend, "b");
    }
    assert_eq!(a.hits(), before);

    // Every server failing its checks: traffic flows anyway.
    b.health.store(500, Ordering::SeqCst);
    wait_for(|| p.metrics_text().contains(&up_line(b.addr, 0))).await;
    for _ in 0..4 {
        assert_eq!(get(&c, port, "x", "/").await.status, 200);
    }

    a.health.store(200, Ordering::SeqCst);
    b.health.store(200, Ordering::SeqCst);
    wait_for(|| {
        p.metrics_text().contains(&up_line(a.addr, 1))
            && p.metrics_text().contains(&up_line(b.addr, 1))
    })
    .await;
    let mut seen = String::new();
    for _ in 0..4 {
        seen.push_str(&Echo::parse(&get(&c, port, "x", "/").await.body).backend);
    }
    assert!(seen.contains('a') && seen.contains('b'), "{seen}");
}

pub async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused() {
    let a = Backend::start("a").await;
    let port = free_port();
    let (_p, _stop, _h) =
        start_proxy(config(&simple_yaml(port, &server(a.addr, ""), "", LIMITS))).await;
    let c = client();
    for _ in 0..50 {
        assert_eq!(get(&c, port, "x", "/").await.status, 200);
    }
    assert_eq!(
        a.conns.load(Ordering::SeqCst),
        1,
        "sequential requests share one pooled connection"
    );

    // keepalive.max_idle 0: no pool, a connection per request.
    let b = Backend::start("b").await;
    let port = free_port();
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(
        port,
        &server(b.addr, ""),
        "    keepalive: {max_idle: 0}",
        LIMITS,
    )))
    .await;
    for _ in 0..5 {
        assert_eq!(get(&c, port, "x", "/").await.status, 200);
    }
    assert_eq!(b.conns.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_body_is_streamed() {
    let a = Backend::start("a").await;
    let port = free_port();
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(
        port,
        &server(a.addr, ""),
        "",
        "  max_body_bytes: 0",
    )))
    .await;
    let c = client();
    let req = Request::put(format!("http://127.0.0.1:{port}/upload"))
        .body(Full::new(Bytes::from(vec![b'z'; 3 * 1024 * 1024])))
        .expect("req");
    let g = send(&c, req).await.expect("put");
    assert_eq!(g.status, 200);
    assert_eq!(Echo::parse(&g.body).header("body-len"), Some("3145728"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_verdict_survives_reload() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let servers = format!("{}{}", server(a.addr, ""), server(b.addr, ""));
    let hc = "    health_check:\n      interval: 50ms\n      path: /health\n      rise: 2\n      fall: 1\n";
    let with_hc = simple_yaml(port, &servers, hc, LIMITS);
    let (p, _stop, _h) = start_proxy(config(&with_hc)).await;
    let c = client();
    a.health.store(500, Ordering::SeqCst);
    let down = format!(
        "hadeploy_proxy_upstream_up{{upstream=\"backend\",server=\"{}\"}} 0",
        a.addr
    );
    wait_for(|| p.metrics_text().contains(&down)).await;
    p.reload(config(&with_hc)).expect("reload");
    assert!(
        p.metrics_text().contains(&down),
        "reload forgot the failing check"
    );
    let before = a.hits();
    for _ in 0..6 {
        get(&c, port, "x", "/").await;
    }
    assert_eq!(a.hits(), before);
    // Dropping the health check drops its verdict too.
    p.reload(config(&simple_yaml(port, &servers, "", LIMITS)))
        .expect("reload");
    for _ in 0..6 {
        get(&c, port, "x", "/").await;
    }
    assert_eq!(a.hits(), before + 3);
}

/// A backend that reads a request and never answers.
async fn hanging_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (addr, conns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_retries_get_but_not_post() {
    let (hang, hang_conns) = hanging_backend().await;
    let good = Backend::start("good").await;
    let port = free_port();
    let servers = format!(
        "{}{}",
        server(hang, "        max_fails: 0\n"),
        server(good.addr, "        max_fails: 0\n")
    );
    let extra = "    read_timeout: 300ms\n    connect_timeout: 300ms";
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(port, &servers, extra, LIMITS))).await;
    let c = client();
    // First pick is the hanging server: GET times out there, then good.
    let t = std::time::Instant::now();
    let g = get(&c, port, "x", "/g").await;
    assert_eq!(g.status, 200);
    assert_eq!(Echo::parse(&g.body).backend, "good");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(get(&c, port, "x", "/g2").await.status, 200); // good again (WRR)
    let post = Request::post(format!("http://127.0.0.1:{port}/p"))
        .body(Full::new(Bytes::from("x")))
        .expect("req");
    assert_eq!(send(&c, post).await.expect("post").status, 504);
    assert_eq!(hang_conns.load(Ordering::SeqCst), 2);
    assert_eq!(good.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_upstream_tries_bounds_retries() {
    let (r1, c1) = rude_backend().await;
    let (r2, c2) = rude_backend().await;
    let good = Backend::start("good").await;
    let port = free_port();
    let servers = format!(
        "{}{}{}",
        server(r1, "        max_fails: 0\n"),
        server(r2, "        max_fails: 0\n"),
        server(good.addr, "        max_fails: 0\n")
    );
    let (_p, _stop, _h) = start_proxy(config(&simple_yaml(
        port,
        &servers,
        "    next_upstream_tries: 2",
        LIMITS,
    )))
    .await;
    let g = get(&client(), port, "x", "/").await;
    assert_eq!(g.status, 502);
    assert_eq!(
        (
            c1.load(Ordering::SeqCst),
            c2.load(Ordering::SeqCst),
            good.hits()
        ),
        (1, 1, 0)
    );
}
