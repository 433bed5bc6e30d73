//! One multiplexed SSH master connection per host (the `openssh` crate, so
//! the user's ~/.ssh/config, agent and ProxyJump apply), and the few remote
//! operations apply needs, each naming the host and step on failure.

use std::sync::Arc;
use std::time::Duration;

use hadeploy_inventory::model::Host;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::error::{DeployError, Step};

/// sshd's MaxSessions defaults to 10 channels per connection.
const MAX_CHANNELS: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectOptions {
    /// accept-new instead of strict host key checking (first contact).
    pub trust_new_host_keys: bool,
    pub timeout: Option<Duration>,
}

pub struct Remote {
    pub host: String,
    session: Session,
    /// `sudo -n` prefix when the SSH user is not root.
    sudo: bool,
    channels: Arc<Semaphore>,
}

/// Output of a remote command.
#[derive(Debug)]
pub struct Out {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

pub async fn connect(host: &Host, opts: ConnectOptions) -> Result<Remote, DeployError> {
    let mut b = SessionBuilder::default();
    b.user(host.ssh.user.clone())
        .port(host.ssh.port)
        .connect_timeout(opts.timeout.unwrap_or(Duration::from_secs(10)))
        .server_alive_interval(Duration::from_secs(5))
        // The ControlPath must fit in sun_path (108 bytes): keep it short.
        .control_directory(std::env::temp_dir())
        .known_hosts_check(if opts.trust_new_host_keys {
            KnownHosts::Add
        } else {
            KnownHosts::Strict
        });
    if let Some(k) = &host.ssh.key {
        b.keyfile(k);
    }
    if let Some(kh) = &host.ssh.known_hosts {
        b.user_known_hosts_file(kh);
    }
    if let Some(j) = &host.ssh.jump {
        b.jump_hosts([j]);
    }
    let session = b
        .connect_mux(&host.ssh.host)
        .await
        .map_err(|e| DeployError::unreachable(&host.name, explain_connect(&e, host)))?;
    Ok(Remote {
        host: host.name.clone(),
        session,
        sudo: host.ssh.user != "root" && host.ssh.become_root,
        channels: Arc::new(Semaphore::new(MAX_CHANNELS)),
    })
}

/// Turns ssh's failure into what the user should check.
fn explain_connect(e: &openssh::Error, host: &Host) -> String {
    let text = format!("{e}");
    let detail = match e {
        openssh::Error::Connect(io) => io.to_string(),
        _ => text.clone(),
    };
    let target = format!("{}@{}:{}", host.ssh.user, host.ssh.host, host.ssh.port);
    let known_hosts = host.ssh.known_hosts.as_ref().map_or_else(
        || "~/.ssh/known_hosts".to_string(),
        |p| p.display().to_string(),
    );
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        // ssh's banner is long; keep the lines that say what and where.
        let keep: Vec<&str> = detail
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.starts_with("Offending")
                    || l.starts_with("Host key for")
                    || l.starts_with("The fingerprint")
                    || l.starts_with("SHA256:")
            })
            .collect();
        return format!(
            "host key CHANGED: the key {target} presents is not the one in known_hosts ({known_hosts}); a reinstalled host or a man-in-the-middle: verify it, then fix known_hosts (--trust-new-host-keys never accepts a changed key): {}",
            keep.join(" ")
        );
    }
    let hint = if detail.contains("Host key verification failed") {
        format!(
            "host key not known: no key for this host in known_hosts ({known_hosts}): add it, or pass --trust-new-host-keys on first contact"
        )
    } else if detail.contains("Permission denied") {
        "authentication failed: check ssh_user and ssh_key".to_string()
    } else if detail.contains("timed out")
        || detail.contains("No route")
        || detail.contains("refused")
    {
        "sshd not reachable: check ssh_host, ssh_port and the network".to_string()
    } else {
        "ssh could not connect".to_string()
    };
    format!("{hint} ({target}): {}", detail.trim())
}

/// Quotes one word for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Remote {
    /// Runs `script` with `sh -c` as root (via `sudo -n` when needed), with
    /// `args` as $1.., optionally feeding `stdin`.
    pub async fn sh(
        &self,
        step: Step,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Out, DeployError> {
        self.run(step, script, args, stdin, self.sudo).await
    }

    /// Runs `script` as the SSH user, without `sudo` (to explain a failing sudo).
    pub async fn sh_as_login_user(&self, step: Step, script: &str) -> Result<Out, DeployError> {
        self.run(step, script, &[], None, false).await
    }

    /// Whether commands go through `sudo -n` (become_root with a non-root user).
    pub fn uses_sudo(&self) -> bool {
        self.sudo
    }

    async fn run(
        &self,
        step: Step,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
        sudo: bool,
    ) -> Result<Out, DeployError> {
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| self.err(step, "connection closed"))?;
        let mut words: Vec<String> = Vec::new();
        if sudo {
            words.extend(["sudo", "-n"].map(String::from));
        }
        words.extend(["sh", "-c"].map(String::from));
        words.push(script.to_string());
        words.push("hadeploy".to_string());
        words.extend(args.iter().map(|a| a.to_string()));
        let line = words
            .iter()
            .map(|w| sh_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = self.session.raw_command(line);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .await
            .map_err(|e| self.err(step, format!("cannot start remote command: {e}")))?;
        if let Some(data) = stdin
            && let Some(mut w) = child.stdin().take()
        {
            w.write_all(data)
                .await
                .map_err(|e| self.err(step, format!("sending data: {e}")))?;
            w.shutdown()
                .await
                .map_err(|e| self.err(step, format!("sending data: {e}")))?;
            drop(w);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.err(step, format!("remote command failed: {e}")))?;
        Ok(Out {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Like [`Remote::sh`], failing on a non-zero exit with stderr in the message.
    pub async fn sh_ok(
        &self,
        step: Step,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<String, DeployError> {
        let out = self.sh(step, script, args, stdin).await?;
        if out.ok() {
            Ok(out.stdout)
        } else {
            let msg = out.stderr.trim();
            let msg = if msg.is_empty() {
                out.stdout.trim()
            } else {
                msg
            };
            Err(self.err(
                step,
                format!(
                    "exit {}: {msg}",
                    out.status.map_or("signal".to_string(), |c| c.to_string())
                ),
            ))
        }
    }

    pub fn err(&self, step: Step, msg: impl Into<String>) -> DeployError {
        DeployError::new(&self.host, step, msg)
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("abc/def-1.2"), "abc/def-1.2");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b;rm"), "'a b;rm'");
    }
}
