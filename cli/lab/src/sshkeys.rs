//! SSH material of a lab: the client key, per-node host keys generated before boot (so
//! known_hosts is written strictly, never trust-on-first-use), known_hosts and an
//! ssh_config that makes `ssh -F <state>/ssh_config <node>` just work.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::cmd::{cmd, run};
use crate::error::{IoContext, Result};
use crate::rootfs::write_mode;

/// Create an ed25519 key pair at `key` (and `key.pub`) unless it exists.
pub(crate) fn ensure_keypair(step: &str, key: &Path, comment: &str) -> Result<String> {
    if !key.exists() {
        if let Some(dir) = key.parent() {
            fs::create_dir_all(dir).step(|| format!("{step}: create {}", dir.display()))?;
        }
        run(
            step,
            cmd(
                "ssh-keygen",
                ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"],
            )
            .arg(key),
        )?;
    }
    let pub_path = key.with_extension("pub");
    let text =
        fs::read_to_string(&pub_path).step(|| format!("{step}: read {}", pub_path.display()))?;
    Ok(text.trim().to_string())
}

/// Public host key of a node as `type base64` (without the comment).
pub(crate) fn host_key_line(public: &str) -> String {
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Install the lab's public key as root's authorized key in a node root.
pub(crate) fn authorize(root: &Path, public: &str) -> Result<()> {
    let dir = root.join("root/.ssh");
    fs::create_dir_all(&dir).step(|| format!("create {}", dir.display()))?;
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .step(|| format!("chmod {}", dir.display()))?;
    write_mode(&dir.join("authorized_keys"), &format!("{public}\n"), 0o600)
}

/// A node entry for known_hosts and ssh_config.
pub(crate) struct SshHost<'a> {
    pub name: &'a str,
    pub address: Ipv4Addr,
    pub host_key: String,
}

pub(crate) fn write_known_hosts(path: &Path, hosts: &[SshHost<'_>]) -> Result<()> {
    let mut text = String::new();
    for h in hosts {
        text.push_str(&format!("{},{} {}\n", h.name, h.address, h.host_key));
    }
    write_mode(path, &text, 0o644)
}

pub(crate) fn write_ssh_config(
    path: &Path,
    hosts: &[SshHost<'_>],
    key: &Path,
    known_hosts: &Path,
    control_dir: Option<&Path>,
) -> Result<()> {
    let mut text = String::from("# Written by hadeploy-lab; `ssh -F <this file> <node>`.\n");
    // Commands reuse a master connection when one is up (the lab starts them); plain
    // `ssh -F` use never starts one, so nothing lingers that the lab did not start.
    let mux = control_dir
        .map(|d| format!("  ControlMaster no\n  ControlPath {}/cm-%n\n", d.display()))
        .unwrap_or_default();
    for h in hosts {
        text.push_str(&format!(
            "\nHost {name}\n  HostName {addr}\n  User root\n  IdentityFile {key}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 3\n  \
             ServerAliveInterval 2\n  ServerAliveCountMax 3\n  LogLevel ERROR\n{mux}",
            name = h.name,
            addr = h.address,
            key = key.display(),
            kh = known_hosts.display(),
        ));
    }
    write_mode(path, &text, 0o644)
}
