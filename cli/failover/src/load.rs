//! Open-loop HTTP load against the VIP, like wrk2: a new request starts
//! every `interval` whatever the earlier ones are doing, so a stalled
//! connection never hides how fast service came back. Each request is a
//! fresh connection (`Connection: close`), as a client meeting a failover
//! would make after its old connection broke.
//!
//! In the lab the load runs inside the lab's client network namespace (a
//! thread that `setns`es before creating any socket), so no packet to the VIP
//! leaves from this machine's own namespace.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{LoadError, RequestError};

#[derive(Debug, Clone)]
pub struct Sample {
    pub start: Instant,
    pub end: Instant,
    pub ok: bool,
    /// Which backend served it (from the lab's index page).
    pub backend: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: SocketAddr,
    pub host_header: String,
    pub interval: Duration,
    /// A connection not established in this time counts as failed; above
    /// TCP's first SYN retransmit (1 s), so a brief outage delays rather
    /// than fails a request, as it would for a browser.
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Run inside this network namespace (`ip netns` name).
    pub netns: Option<String>,
}

pub struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(spec: LoadSpec) -> Result<Load, LoadError> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s2 = samples.clone();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("failover-load".into())
            .spawn(move || {
                if let Some(ns) = &spec.netns
                    && let Err(e) = enter_netns(ns)
                {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(LoadError::Thread(e)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                rt.block_on(generate(spec, s2, stop2));
            })
            .map_err(LoadError::Thread)?;
        ready_rx.recv().map_err(LoadError::Gone)??;
        Ok(Load {
            samples,
            stop,
            thread: Some(thread),
        })
    }

    /// Samples so far (completed requests).
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

fn enter_netns(name: &str) -> Result<(), LoadError> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).map_err(|source| LoadError::Netns { path, source })?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| {
        LoadError::Setns {
            name: name.to_string(),
            source,
        }
    })
}

async fn generate(spec: LoadSpec, samples: Arc<Mutex<Vec<Sample>>>, stop: Arc<AtomicBool>) {
    let spec = Arc::new(spec);
    let mut tick = tokio::time::interval(spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tasks = tokio::task::JoinSet::new();
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let spec = spec.clone();
        let samples = samples.clone();
        tasks.spawn(async move {
            let start = Instant::now();
            let r = one_request(&spec).await;
            let end = Instant::now();
            let s = match r {
                Ok(backend) => Sample {
                    start,
                    end,
                    ok: true,
                    backend,
                    error: None,
                },
                Err(e) => Sample {
                    start,
                    end,
                    ok: false,
                    backend: None,
                    error: Some(e.to_string()),
                },
            };
            if let Ok(mut v) = samples.lock() {
                v.push(s);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    // In-flight requests finish within request_timeout.
    while tasks.join_next().await.is_some() {}
}

async fn one_request(spec: &LoadSpec) -> Result<Option<String>, RequestError> {
    let mut stream = tokio::time::timeout(
        spec.connect_timeout,
        tokio::net::TcpStream::connect(spec.target),
    )
    .await
    .map_err(|_| RequestError::ConnectTimeout)?
    .map_err(RequestError::Connect)?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: hadeploy-test-failover\r\nConnection: close\r\n\r\n",
        spec.host_header
    );
    let work = async {
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(RequestError::Send)?;
        let mut buf = Vec::with_capacity(1024);
        stream
            .read_to_end(&mut buf)
            .await
            .map_err(RequestError::Read)?;
        Ok::<_, RequestError>(buf)
    };
    let buf = tokio::time::timeout(spec.request_timeout, work)
        .await
        .map_err(|_| RequestError::Timeout)??;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(RequestError::Status(status.to_string()));
    }
    Ok(text
        .split("id=\"backend\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .map(str::to_string))
}
