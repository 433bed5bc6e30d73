//! The reference to compare with: a real nginx (Debian's /usr/sbin/nginx,
//! or `$NGINX`) run by the test itself on 127.0.0.1 with its own prefix,
//! config, pid and log files in a temporary directory, in front of a
//! backend that records the request-targets it receives; and a raw HTTP/1
//! exchange that sends the same bytes to nginx and to the proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{free_port, read_request};

/// A backend that records the request-target of every request it gets and
/// answers `200 ok`, keeping the connection open (nginx closes it: it
/// speaks HTTP/1.0 upstream by default).
pub struct Recorder {
    pub addr: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let targets: Arc<Mutex<Vec<String>>> = Arc::default();
        let t = targets.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let t = t.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(req) = read_request(&mut s, &mut buf).await {
                        let target = req.split(' ').nth(1).unwrap_or_default();
                        t.lock().expect("lock").push(target.to_string());
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if s.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Recorder { addr, targets }
    }

    /// The targets received since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.targets.lock().expect("lock"))
    }
}

/// An nginx process of the test's own: `daemon off; master_process off`,
/// so the child is the only process and dropping it stops everything.
pub struct Nginx {
    pub port: u16,
    /// A second listener speaking HTTP/2 with prior knowledge (h2c).
    pub h2_port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// The nginx binary: `$NGINX`, else Debian's.
fn nginx_binary() -> PathBuf {
    let p = std::env::var_os("NGINX").map_or_else(|| PathBuf::from("/usr/sbin/nginx"), Into::into);
    assert!(
        p.exists(),
        "{} not found: the differential tests need nginx (apt-get install nginx-light, or set NGINX)",
        p.display()
    );
    p
}

impl Nginx {
    /// Starts nginx with `server_body` inside its one `server {}` block
    /// (listening on `port` and, with `http2`, on `h2_port`) and `http_extra`
    /// in the `http {}` block. Waits until it accepts connections.
    pub async fn start(server_body: &str, http_extra: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().display().to_string();
        let (port, h2_port) = (free_port(), free_port());
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    {http_extra}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{h2_port} http2;
        server_name site;
        {server_body}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx {
            port,
            h2_port,
            dir,
            child,
        };
        for _ in 0..100 {
            if let Ok(Some(status)) = n.child.try_wait() {
                let log =
                    std::fs::read_to_string(n.dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited at start ({status}): {log}");
            }
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok()
                && TcpStream::connect(("127.0.0.1", h2_port)).await.is_ok()
            {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not start listening on 127.0.0.1:{port}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Our own child, by its handle (single process: no workers left).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a server answered to one raw request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code, or `timeout` / `closed` when no head came back.
    pub status: String,
    pub location: Option<String>,
    /// `Connection: close` in the head.
    pub close: bool,
}

/// Sends `data` on a fresh connection and reads one response (by its
/// Content-Length or chunked framing, or until the server closes) within
/// `wait`.
pub async fn exchange(port: u16, data: &[u8], wait: Duration) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(data).await.expect("write");
    read_answer(&mut s, wait).await
}

/// Reads one response off `s` (see [`exchange`]); bytes after it are lost.
pub async fn read_answer(s: &mut TcpStream, wait: Duration) -> Answer {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    let mut answer: Option<Answer> = None;
    loop {
        if answer.is_none()
            && let Some(h) = got.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&got[..h]).into_owned();
            let status = head.split(' ').nth(1).unwrap_or("?").to_string();
            let header = |name: &str| {
                head.lines().skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            let a = Answer {
                status,
                location: header("location"),
                close: header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
            };
            let len: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
            let chunked = header("transfer-encoding").is_some();
            let body = &got[h + 4..];
            let complete = match len {
                Some(n) => body.len() >= n,
                None if chunked => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                return a;
            }
            answer = Some(a);
        }
        let mut tmp = [0u8; 16 * 1024];
        match tokio::time::timeout_at(end, s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&tmp[..n]),
            Ok(_) => {
                return answer.unwrap_or(Answer {
                    status: "closed".into(),
                    location: None,
                    close: true,
                });
            }
            Err(_) => {
                return answer.unwrap_or(Answer {
                    status: "timeout".into(),
                    location: None,
                    close: false,
                });
            }
        }
    }
}
