//! `hadeploy-runtime proxy` as the node runs it: several worker threads
//! accepting on one socket, SIGHUP reload, SIGTERM drain, access log on
//! disk. Loopback only; the backend is a plain thread in this test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hadeploy_testkit::bin;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A keep-alive backend answering `ok` to every request; counts requests.
fn backend() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let h = h.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut w = s;
                loop {
                    let mut line = String::new();
                    // Skip the head: every request here has no body.
                    loop {
                        line.clear();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, hits)
}

fn config(listen: &[u16], backend: u16, log: &std::path::Path) -> String {
    let listen: Vec<String> = listen
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    format!(
        "node: t\nworkers: 2\nlimits: {{drain_timeout: 5s}}\nupstreams:\n  b:\n    servers: [{{address: \"127.0.0.1:{backend}\"}}]\nsites:\n  - name: s\n    listen: [{}]\n    access_log: {{path: {}}}\n    locations:\n      - path: /\n        proxy: {{upstream: b}}\n",
        listen.join(", "),
        log.display()
    )
}

fn wait_for_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "port {port} did not open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` requests on one keep-alive connection; the number answered 200.
fn keepalive_gets(port: u16, n: usize) -> usize {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut ok = 0;
    for i in 0..n {
        w.write_all(format!("GET /r{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .expect("write");
        let mut status = String::new();
        r.read_line(&mut status).expect("status");
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).expect("body");
        if status.starts_with("HTTP/1.1 200") && body == b"ok" {
            ok += 1;
        }
    }
    ok
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn worker_threads_serve_reload_and_drain() {
    let (be, hits) = backend();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("access.log");
    let cfg = dir.path().join("proxy.yaml");
    let (p1, p2) = (free_port(), free_port());
    std::fs::write(&cfg, config(&[p1], be, &log)).expect("config");
    let child = Command::new(bin("hadeploy-runtime"))
        .args(["proxy", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut child = KillOnDrop(child);
    wait_for_port(p1);

    // Eight clients at once: connections land on both workers.
    let clients: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || keepalive_gets(p1, 50)))
        .collect();
    let ok: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    assert_eq!(ok, 400);
    assert_eq!(hits.load(Ordering::SeqCst), 400);

    // SIGHUP: a second listen address appears, the first keeps serving.
    std::fs::write(&cfg, config(&[p1, p2], be, &log)).expect("config");
    signal(&child.0, "-HUP");
    wait_for_port(p2);
    assert_eq!(keepalive_gets(p2, 5), 5);
    assert_eq!(keepalive_gets(p1, 5), 5);

    // SIGTERM: drain, flush the log, exit 0.
    signal(&child.0, "-TERM");
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.0.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < end, "proxy did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let lines = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        lines.lines().filter(|l| l.contains("\" 200 2 ")).count(),
        410
    );
}
