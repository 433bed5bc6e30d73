//! Test backends, a client and config helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hadeploy_config::proxy::ProxyConfig;
use hadeploy_proxy::Proxy;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A port that was free a moment ago (config validation rejects port 0).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn config(yaml: &str) -> ProxyConfig {
    let (cfg, _warnings) =
        hadeploy_config::parse_proxy(yaml, Path::new("test-proxy.yaml")).expect("valid config");
    cfg
}

/// A hyper backend that answers with its name, the request line and the
/// headers it saw, one per line.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    /// TCP connections accepted.
    pub conns: Arc<AtomicUsize>,
    /// Status for `/health`.
    pub health: Arc<AtomicU16>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_on("127.0.0.1:0".parse().expect("addr"), name).await
    }

    pub async fn start_on(addr: SocketAddr, name: &str) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("backend bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let health = Arc::new(AtomicU16::new(200));
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns = Arc::new(AtomicUsize::new(0));
        let (n, h, hl, t, cn) = (
            name.to_string(),
            hits.clone(),
            health.clone(),
            tasks.clone(),
            conns.clone(),
        );
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                cn.fetch_add(1, Ordering::SeqCst);
                let (n, h, hl) = (n.clone(), h.clone(), hl.clone());
                let svc = service_fn(move |req| {
                    let (n, h, hl) = (n.clone(), h.clone(), hl.clone());
                    async move { Ok::<_, Infallible>(answer(&n, &h, &hl, req).await) }
                });
                let conn = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
                t.lock().expect("lock").push(conn.abort_handle());
            }
        });
        tasks.lock().expect("lock").push(accept.abort_handle());
        Backend {
            addr,
            name: name.to_string(),
            hits,
            conns,
            health,
            tasks,
        }
    }

    /// Stops listening and drops every connection, like a crashed process.
    pub fn kill(&self) {
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn answer(
    name: &str,
    hits: &AtomicUsize,
    health: &AtomicU16,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        let code = health.load(Ordering::SeqCst);
        return Response::builder()
            .status(code)
            .body(Full::new(Bytes::from("health")))
            .expect("response");
    }
    hits.fetch_add(1, Ordering::SeqCst);
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/status/502" {
        return Response::builder()
            .status(502)
            .header("x-backend", name)
            .body(Full::new(Bytes::from("backend's own 502")))
            .expect("response");
    }
    let mut text = format!("{name}\n{} {}\n", req.method(), req.uri());
    for (k, v) in req.headers() {
        text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
    }
    let mut b = Response::builder().header("x-backend", name);
    if path == "/hop" {
        b = b
            .header("connection", "x-hop-resp")
            .header("x-hop-resp", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("x-end-to-end", "1");
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    text.push_str(&format!("body-len: {}\n", body.len()));
    b.body(Full::new(Bytes::from(text))).expect("response")
}

/// Parsed body of a [`Backend`] answer.
#[derive(Debug)]
pub struct Echo {
    pub backend: String,
    pub request_line: String,
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Echo {
    pub fn parse(text: &str) -> Echo {
        let mut lines = text.lines();
        let backend = lines.next().unwrap_or_default().to_string();
        let request_line = lines.next().unwrap_or_default().to_string();
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(": ") {
                headers
                    .entry(k.to_string())
                    .or_default()
                    .push(v.to_string());
            }
        }
        Echo {
            backend,
            request_line,
            headers,
        }
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .get(k)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Got {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

pub async fn send(c: &TestClient, req: Request<Full<Bytes>>) -> Result<Got, String> {
    let resp = c.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    Ok(Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn get(c: &TestClient, port: u16, host: &str, path: &str) -> Got {
    let req = Request::get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(c, req).await.expect("request failed")
}

/// Sends raw bytes and reads until the server closes or `wait` passes.
pub async fn raw(port: u16, data: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(data).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Starts a proxy and returns it with a stop trigger; the proxy drains when
/// the sender fires or is dropped.
pub async fn start_proxy(
    cfg: ProxyConfig,
) -> (
    Proxy,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let proxy = Proxy::bind(cfg).await.expect("proxy bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runner = proxy.clone();
    let handle = tokio::spawn(async move {
        runner
            .run(async move {
                let _ = rx.await;
            })
            .await
    });
    (proxy, tx, handle)
}

/// A one-upstream, one-site proxy config on `port` with extra YAML.
pub fn simple_yaml(port: u16, servers: &str, upstream_extra: &str, limits: &str) -> String {
    format!(
        r#"
node: test
limits:
{limits}
upstreams:
  backend:
    servers:
{servers}
{upstream_extra}
sites:
  - name: site
    listen: ["127.0.0.1:{port}"]
    locations:
      - path: /
        proxy:
          upstream: backend
"#
    )
}

/// One request (head + Content-Length body) off `s`, buffering extra bytes.
pub async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut tmp = [0u8; 4096];
                let n = s.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let whole = String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned();
            buf.drain(..end + 4 + len);
            return Some(whole);
        }
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}
