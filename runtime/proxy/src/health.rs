//! Active health checks: one task per server, keepalived's real-server
//! checks with nginx-plus-like rise/fall.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hadeploy_config::proxy::HealthCheck;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::task::AbortHandle;

use crate::balancer::PeerHealth;
use crate::upstream::UpstreamRt;

/// Starts the checkers of an upstream; the handles stop them on reload or
/// shutdown.
pub(crate) fn spawn(up: &Arc<UpstreamRt>) -> Vec<AbortHandle> {
    let Some(hc) = up.cfg.health_check.clone() else {
        return Vec::new();
    };
    let mut handles = Vec::new();
    for (i, server) in up.cfg.servers.iter().enumerate() {
        if server.down {
            continue;
        }
        let Some(health) = up.balancer.health.get(i).cloned() else {
            continue;
        };
        let name = up.name.clone();
        let addr = server.address;
        let hc = hc.clone();
        let task = tokio::spawn(async move { check_loop(name, addr, hc, health).await });
        handles.push(task.abort_handle());
    }
    handles
}

async fn check_loop(upstream: String, addr: SocketAddr, hc: HealthCheck, health: Arc<PeerHealth>) {
    let mut ok_run = 0u32;
    let mut fail_run = 0u32;
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = tokio::time::timeout(hc.timeout, check_once(addr, &hc)).await;
        let ok = match result {
            Ok(Ok(status)) => status_ok(&hc, status),
            Ok(Err(e)) => {
                tracing::debug!(%upstream, server = %addr, error = %e, "health check failed");
                false
            }
            Err(_) => {
                tracing::debug!(%upstream, server = %addr, "health check timed out");
                false
            }
        };
        if ok {
            ok_run = ok_run.saturating_add(1);
            fail_run = 0;
        } else {
            fail_run = fail_run.saturating_add(1);
            ok_run = 0;
        }
        let healthy = health.healthy.load(Ordering::Relaxed);
        if healthy && fail_run >= hc.fall {
            health.healthy.store(false, Ordering::Relaxed);
            tracing::warn!(%upstream, server = %addr, fails = fail_run, "health check: server is down");
        } else if !healthy && ok_run >= hc.rise {
            health.healthy.store(true, Ordering::Relaxed);
            tracing::info!(%upstream, server = %addr, "health check: server is up");
        }
    }
}

fn status_ok(hc: &HealthCheck, status: StatusCode) -> bool {
    if hc.expect_status.is_empty() {
        (200..=399).contains(&status.as_u16())
    } else {
        hc.expect_status.contains(&status.as_u16())
    }
}

type CheckError = Box<dyn std::error::Error + Send + Sync>;

/// One GET on a fresh connection (`Connection: close`): a check must see
/// whether the server accepts connections, not reuse a pooled one.
async fn check_once(addr: SocketAddr, hc: &HealthCheck) -> Result<StatusCode, CheckError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let host = hc.host.clone().unwrap_or_else(|| addr.to_string());
    let req = Request::get(hc.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, "hadeploy-health-check")
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await;
    driver.abort();
    Ok(resp?.status())
}
