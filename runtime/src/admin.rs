//! The admin endpoint each daemon serves on its `admin` address:
//! `GET /metrics` (Prometheus text) and `GET /status` (JSON, the shared
//! `hadeploy_config::status` document). Loopback by default.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the endpoint shows, computed on each request.
pub trait Source: Send + Sync + 'static {
    fn metrics(&self) -> String;
    fn status_json(&self) -> String;
}

pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin address {addr}: {e}"))
}

/// Serves until the task is dropped. Errors on one connection are logged
/// and never stop the daemon.
pub async fn serve(listener: TcpListener, source: Arc<dyn Source>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("admin accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(respond(&req, source.as_ref())) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!("admin connection: {e}");
            }
        });
    }
}

fn respond(req: &Request<Incoming>, source: &dyn Source) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            source.metrics(),
        ),
        "/status" => (StatusCode::OK, "application/json", source.status_json()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics or /status\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
