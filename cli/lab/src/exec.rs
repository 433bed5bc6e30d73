//! Commands on nodes over SSH (strict host keys, the lab's own ssh_config).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::cmd::output;
use crate::error::Result;

/// Result of a command run on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Exit code; -1 when killed by a signal. ssh itself failing gives 255.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// `ssh -F <ssh_config> [options] <node> -- <command>`.
pub(crate) fn ssh_command(
    ssh_config: &Path,
    options: &[&str],
    node: &str,
    command: &str,
) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg(ssh_config)
        .args(options)
        .arg(node)
        .arg("--")
        .arg(command);
    c
}

pub(crate) fn exec(ssh_config: &Path, node: &str, command: &str) -> Result<ExecOutput> {
    ensure_master(ssh_config, node);
    run_ssh(node, ssh_command(ssh_config, &[], node, command))
}

/// Control socket of a node's master connection, next to the ssh_config.
pub(crate) fn control_socket(ssh_config: &Path, node: &str) -> PathBuf {
    ssh_config
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!("cm-{node}"))
}

/// Can the state dir hold control sockets? sun_path is 108 bytes and ssh appends a
/// 17-byte random suffix while creating one.
pub(crate) fn mux_fits(state_dir: &Path) -> bool {
    state_dir.as_os_str().len() + "/cm-".len() + 12 + 17 < 104
}

/// Start a background master connection for a node if none exists: a plain ssh costs
/// ~230 ms here (key exchange, PAM session), a multiplexed one ~10 ms, which matters
/// when failover tests poll. The master is started with /dev/null as stdio: one that
/// `ControlMaster=auto` forks from a piped client keeps the client's stderr pipe open and
/// a caller reading it to EOF would wait for the master to exit. Failure is fine: exec
/// then connects directly.
fn ensure_master(ssh_config: &Path, node: &str) {
    let sock = control_socket(ssh_config, node);
    if sock.exists() || !mux_configured(ssh_config) {
        return;
    }
    let started = Command::new("ssh")
        .arg("-F")
        .arg(ssh_config)
        .args([
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=120",
            "-f",
            "-N",
            node,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    tracing::debug!(node, ?started, "ssh master");
}

fn mux_configured(ssh_config: &Path) -> bool {
    std::fs::read_to_string(ssh_config).is_ok_and(|t| t.contains("ControlPath "))
}

/// Close a node's master connection (before a power cut or cable pull, so later commands
/// fail or reconnect at once instead of waiting on a dead connection).
pub(crate) fn close_master(ssh_config: &Path, node: &str) {
    let sock = control_socket(ssh_config, node);
    if !sock.exists() {
        return;
    }
    let _ = Command::new("ssh")
        .arg("-F")
        .arg(ssh_config)
        .args(["-O", "exit", node])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_file(&sock);
}

pub(crate) fn run_ssh(node: &str, cmd: Command) -> Result<ExecOutput> {
    let out = output(&format!("node {node}: ssh"), cmd)?;
    Ok(ExecOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
