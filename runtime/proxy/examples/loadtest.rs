//! Rough throughput check on loopback: a hyper backend, the proxy in front
//! of it, N keep-alive clients for a few seconds, direct and proxied
//! alternately. Compare the ratio, not the absolute numbers (the clients,
//! the backend and the proxy share the same cores).
//!
//! `cargo run --release -p hadeploy-proxy --example loadtest -- [clients] [seconds]`
//!
//! For an A/B against nginx with wrk, run the pieces as processes:
//! `loadtest backend PORT` and `loadtest proxy PORT BACKEND_PORT`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

async fn backend(port: u16) -> SocketAddr {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        &[b'x'; 512],
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

async fn load(port: u16, clients: usize, secs: u64) -> (f64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (ok, failed) = (ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let c: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            let uri: hyper::Uri = format!("http://127.0.0.1:{port}/").parse().expect("uri");
            while Instant::now() < end {
                let req = hyper::Request::get(uri.clone())
                    .body(Full::new(Bytes::new()))
                    .expect("req");
                match c.request(req).await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.into_body().collect().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        ok.load(Ordering::Relaxed) as f64 / secs as f64,
        failed.load(Ordering::Relaxed),
    )
}

fn proxy_config(port: u16, be: SocketAddr) -> hadeploy_config::proxy::ProxyConfig {
    let yaml = format!(
        "node: bench\nupstreams:\n  b:\n    servers: [{{address: \"{be}\"}}]\nsites:\n  - name: s\n    listen: [\"127.0.0.1:{port}\"]\n    locations:\n      - path: /\n        proxy: {{upstream: b}}\n"
    );
    hadeploy_config::parse_proxy(&yaml, Path::new("bench.yaml"))
        .expect("config")
        .0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    match args.get(1).map(String::as_str) {
        Some("backend") => {
            backend(num(2, 18080) as u16).await;
            std::future::pending::<()>().await;
        }
        Some("proxy1") => {
            // The proxy alone on a current-thread runtime in its own thread.
            let be: SocketAddr = format!("127.0.0.1:{}", num(3, 18080))
                .parse()
                .expect("addr");
            let cfg = proxy_config(num(2, 18081) as u16, be);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let p = hadeploy_proxy::Proxy::bind(cfg).await.expect("proxy");
                    p.run(std::future::pending::<()>()).await;
                });
            })
            .join()
            .expect("proxy thread");
        }
        Some("proxy") => {
            let be: SocketAddr = format!("127.0.0.1:{}", num(3, 18080))
                .parse()
                .expect("addr");
            let p = hadeploy_proxy::Proxy::bind(proxy_config(num(2, 18081) as u16, be))
                .await
                .expect("proxy");
            p.run(std::future::pending::<()>()).await;
        }
        _ => {
            let clients = num(1, 32) as usize;
            let secs = num(2, 3);
            let be = backend(0).await;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("port")
                .port();
            let _proxy = hadeploy_proxy::Proxy::bind(proxy_config(port, be))
                .await
                .expect("proxy");
            for round in 0..2 {
                let (direct, df) = load(be.port(), clients, secs).await;
                let (proxied, pf) = load(port, clients, secs).await;
                println!(
                    "round {round}: direct {direct:.0} req/s ({df} failed), proxied {proxied:.0} req/s ({pf} failed), ratio {:.2}",
                    proxied / direct
                );
            }
        }
    }
}
