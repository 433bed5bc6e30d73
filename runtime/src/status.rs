//! `hadeploy-runtime status`: asks the local daemons (admin addresses from
//! the installed configs) for their status documents.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use hadeploy_config::paths;
use hadeploy_config::status::RuntimeStatus;

/// A plain HTTP/1.0 GET on loopback: enough for our own admin endpoint, and
/// no client stack in the status path.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(std::io::Error::other(format!(
            "unexpected answer from {addr}{path}"
        ))),
    }
}

fn query(config: &str, admin: Option<SocketAddr>) -> Result<Option<RuntimeStatus>, String> {
    if !Path::new(config).exists() {
        return Ok(None);
    }
    let Some(addr) = admin else {
        return Err(format!("{config} sets no admin address"));
    };
    let body = get(addr, "/status")
        .map_err(|e| format!("daemon for {config} not answering on {addr}: {e}"))?;
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|e| format!("bad status from {addr}: {e}"))
}

pub fn run(json: bool, brief: bool) -> anyhow::Result<ExitCode> {
    let mut doc = RuntimeStatus::default();
    let mut problems = Vec::new();
    if Path::new(paths::VRRP_CONFIG).exists() {
        match hadeploy_config::load_vrrp(Path::new(paths::VRRP_CONFIG)) {
            Ok((c, _)) => match query(paths::VRRP_CONFIG, c.admin) {
                Ok(s) => doc.vrrp = s.and_then(|s| s.vrrp),
                Err(e) => problems.push(e),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    if Path::new(paths::PROXY_CONFIG).exists() {
        match hadeploy_config::load_proxy(Path::new(paths::PROXY_CONFIG)) {
            Ok((c, _)) => match query(paths::PROXY_CONFIG, c.admin) {
                Ok(s) => doc.proxy = s.and_then(|s| s.proxy),
                Err(e) => problems.push(e),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Some(v) = &doc.vrrp {
        for i in &v.instances {
            if !i.state.is_running() {
                problems.push(format!("instance {} is {}", i.name, i.state));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let mut parts = Vec::new();
        if let Some(v) = &doc.vrrp {
            for i in &v.instances {
                parts.push(format!("{}={}", i.name, i.state));
            }
        }
        if let Some(p) = &doc.proxy {
            parts.push(format!("proxy requests={}", p.requests));
        }
        if !brief || problems.is_empty() {
            println!(
                "{}",
                if parts.is_empty() {
                    "nothing configured".to_string()
                } else {
                    parts.join(" ")
                }
            );
        }
        for p in &problems {
            eprintln!("{p}");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
