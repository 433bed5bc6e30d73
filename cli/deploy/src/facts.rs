//! Facts gathered in one round trip: what rendering and preflight need, and
//! the hashes of every file hadeploy manages (so planning needs no second
//! trip). The script is POSIX sh that runs on CentOS 7 (coreutils 8.22,
//! iproute 3.10) and newer.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use hadeploy_inventory::facts::Facts;

use crate::error::{DeployError, Step};
use crate::ssh::Remote;

pub const GATHER: &str = concat!(
    r#"
set -u
echo "uid=$(id -u)"
( . /etc/os-release 2>/dev/null; echo "os=${ID:-unknown}:${VERSION_ID:-0}" )
echo "systemd=$(systemctl --version 2>/dev/null | head -n1 | awk '{print $2}')"
echo "arch=$(uname -m)"
echo "firewalld=$(systemctl is-active firewalld 2>/dev/null || true)"
echo "selinux=$(getenforce 2>/dev/null || echo Disabled)"
echo "disk_kb=$(df -Pk /usr/local 2>/dev/null | awk 'NR==2{print $4}')"
for u in nginx keepalived "#,
    hadeploy_config::vrrp_unit!(),
    " ",
    hadeploy_config::proxy_unit!(),
    r#"; do echo "unit.$u=$(systemctl is-active $u 2>/dev/null || true)"; done
ip -o link 2>/dev/null | awk '{sub(":","",$2); sub("@.*","",$2); up=($0 ~ /[<,]UP[,>]/ && $0 ~ /LOWER_UP/)?"up":"down"; print "link="$2" "up}'
ip -o -4 addr 2>/dev/null | awk '{print "addr="$2" "$4}'
ss -ltnp 2>/dev/null | awk 'NR>1{print "listen="$4" "$6}'
if [ -f "#,
    hadeploy_config::manifest!(),
    r#" ]; then sed 's/^/managed=/' "#,
    hadeploy_config::manifest!(),
    r#"; fi
for f in "$@"; do
  if [ -f "$f" ]; then echo "hash=$(sha256sum "$f" | awk '{print $1}') $f"; else echo "hash=- $f"; fi
done
"#
);

#[derive(Debug, Clone, Default)]
pub struct RemoteFacts {
    pub uid: u32,
    pub os: String,
    pub systemd_version: u32,
    pub arch: String,
    pub firewalld: bool,
    pub selinux_enforcing: bool,
    pub disk_free_kb: u64,
    pub units: BTreeMap<String, bool>,
    /// Interface name -> link up (carrier).
    pub links: BTreeMap<String, bool>,
    pub addrs: Vec<(String, Ipv4Addr, u8)>,
    /// Listening TCP sockets with the owning process (when ss could tell).
    pub listeners: Vec<(SocketAddr, String)>,
    /// Managed path -> sha256, or None when absent.
    pub hashes: BTreeMap<String, Option<String>>,
    /// Paths the last apply installed (its manifest).
    pub managed: Vec<String>,
}

impl RemoteFacts {
    pub fn render_facts(&self) -> Facts {
        Facts {
            os: self.os.clone(),
            systemd_version: self.systemd_version,
            firewalld: self.firewalld,
        }
    }

    /// Whether `unit` (with or without `.service`) is active.
    pub fn unit_active(&self, unit: &str) -> bool {
        let name = unit.strip_suffix(".service").unwrap_or(unit);
        self.units.get(name).copied().unwrap_or(false)
    }

    pub fn has_addr(&self, a: Ipv4Addr) -> Option<&str> {
        self.addrs
            .iter()
            .find(|(_, x, _)| *x == a)
            .map(|(i, _, _)| i.as_str())
    }
}

pub async fn gather(remote: &Remote, paths: &[&str]) -> Result<RemoteFacts, DeployError> {
    let res = remote.sh(Step::Facts, GATHER, paths, None).await;
    if remote.uses_sudo() {
        // The fact script is the first command run with `sudo -n`: when it
        // fails, most likely sudo itself did (missing, or wants a password).
        let detail = match &res {
            Ok(o) if o.ok() => None,
            Ok(o) => Some(o.stderr.trim().to_string()),
            Err(e) => Some(e.message.clone()),
        };
        if let Some(detail) = detail {
            return Err(sudo_failed(remote, &detail).await);
        }
    }
    let out = res?;
    if !out.ok() {
        return Err(remote.err(
            Step::Facts,
            format!("fact script failed: {}", out.stderr.trim()),
        ));
    }
    parse(&out.stdout).map_err(|e| remote.err(Step::Facts, e.to_string()))
}

/// Explains a failing `sudo -n` (become_root) with who we are on the node.
async fn sudo_failed(remote: &Remote, detail: &str) -> DeployError {
    let probe = remote
        .sh_as_login_user(
            Step::Preflight,
            r#"echo "$(id -un) uid $(id -u)"; command -v sudo >/dev/null 2>&1 && echo sudo || echo nosudo"#,
        )
        .await
        .map(|o| o.stdout)
        .unwrap_or_default();
    let mut lines = probe.lines();
    let who = lines.next().unwrap_or("a non-root user").trim().to_string();
    let why = if lines.next().map(str::trim) == Some("nosudo") {
        "sudo is not installed on the node".to_string()
    } else {
        format!("`sudo -n` failed: {detail}")
    };
    remote.err(
        Step::Preflight,
        format!(
            "connected as {who} without root; become_root: true needs passwordless sudo, but {why}: install sudo and allow this user NOPASSWD, or set ssh_user: root"
        ),
    )
}

/// Fact script output that cannot describe a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    #[error("bad uid {0:?}")]
    Uid(String),
    #[error("could not read /etc/os-release")]
    NoOsRelease,
}

pub fn parse(text: &str) -> Result<RemoteFacts, FactsError> {
    let mut f = RemoteFacts::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "uid" => {
                f.uid = v
                    .trim()
                    .parse()
                    .map_err(|_| FactsError::Uid(v.to_string()))?
            }
            "os" => f.os = v.trim().to_string(),
            "systemd" => f.systemd_version = v.trim().parse().unwrap_or(0),
            "arch" => f.arch = v.trim().to_string(),
            "firewalld" => f.firewalld = v.trim() == "active",
            "selinux" => f.selinux_enforcing = v.trim() == "Enforcing",
            "disk_kb" => f.disk_free_kb = v.trim().parse().unwrap_or(0),
            "link" => {
                if let Some((name, state)) = v.split_once(' ') {
                    f.links.insert(name.to_string(), state == "up");
                }
            }
            "addr" => {
                let mut it = v.split_whitespace();
                if let (Some(dev), Some(cidr)) = (it.next(), it.next())
                    && let Some((a, p)) = cidr.split_once('/')
                    && let (Ok(a), Ok(p)) = (a.parse(), p.parse())
                {
                    f.addrs.push((dev.to_string(), a, p));
                }
            }
            "listen" => {
                let mut it = v.splitn(2, ' ');
                let addr = it.next().unwrap_or_default();
                let proc_ = it.next().unwrap_or_default();
                // ss prints `*:80` or `0.0.0.0:80` or `[::]:80`.
                let addr = addr.replace('*', "0.0.0.0");
                if let Ok(sa) = addr.parse::<SocketAddr>() {
                    f.listeners.push((sa, process_name(proc_)));
                }
            }
            "managed" => f.managed.push(v.trim().to_string()),
            "hash" => {
                if let Some((h, p)) = v.split_once(' ') {
                    f.hashes
                        .insert(p.to_string(), (h != "-").then(|| h.to_string()));
                }
            }
            _ if k.starts_with("unit.") => {
                f.units
                    .insert(k["unit.".len()..].to_string(), v.trim() == "active");
            }
            _ => {}
        }
    }
    if f.os.is_empty() {
        return Err(FactsError::NoOsRelease);
    }
    Ok(f)
}

/// `users:(("nginx",pid=12,fd=6),...)` -> `nginx`.
fn process_name(s: &str) -> String {
    s.split('"').nth(1).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_reads_the_manifest() {
        assert!(GATHER.contains(
            "if [ -f /etc/hadeploy/.manifest ]; then sed 's/^/managed=/' /etc/hadeploy/.manifest; fi\n"
        ));
    }

    #[test]
    fn parses_centos7_like_output() {
        let text = "uid=0\nos=centos:7\nsystemd=219\narch=x86_64\nfirewalld=active\nselinux=Enforcing\ndisk_kb=1000000\n\
unit.nginx=active\nunit.keepalived=inactive\nlink=lo up\nlink=eth0 up\nlink=eth1 down\naddr=eth0 192.168.10.10/24\n\
listen=0.0.0.0:80 users:((\"nginx\",pid=1,fd=6))\nlisten=*:22 users:((\"sshd\",pid=2,fd=3))\n\
hash=abc /etc/hadeploy/proxy.yaml\nhash=- /etc/hadeploy/vrrp.yaml\n";
        let f = parse(text).expect("parse");
        assert_eq!(f.systemd_version, 219);
        assert!(f.firewalld && f.selinux_enforcing);
        assert!(f.unit_active("nginx") && !f.unit_active("keepalived"));
        assert!(f.unit_active("nginx.service"));
        assert_eq!(f.links.get("eth1"), Some(&false));
        assert_eq!(
            f.has_addr("192.168.10.10".parse().expect("ip")),
            Some("eth0")
        );
        assert_eq!(f.listeners[0].1, "nginx");
        assert_eq!(f.listeners[1].0.port(), 22);
        assert_eq!(f.hashes["/etc/hadeploy/proxy.yaml"].as_deref(), Some("abc"));
        assert_eq!(f.hashes["/etc/hadeploy/vrrp.yaml"], None);
    }
}
