//! Running one external command with a time limit, for notify hooks and
//! track scripts alike.
//!
//! The child gets no stdin and no shell. Its stdout and stderr are captured
//! (the first [`OUTPUT_LIMIT`] bytes, the rest drained so the child never
//! blocks on a full pipe) for the log line. When the limit passes the child
//! is killed with SIGKILL: a hook that hangs must not pile up.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Bytes of output kept per run for the log.
pub const OUTPUT_LIMIT: usize = 2048;
/// Lines of output shown in a log line.
pub const OUTPUT_LINES: usize = 5;
/// How long to wait for output pipes after the child exited: a script that
/// started a daemon may leave them open forever.
const PIPE_GRACE: Duration = Duration::from_millis(200);

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Exited(ExitStatus),
    TimedOut,
    SpawnFailed(std::io::Error),
}

impl Outcome {
    pub fn success(&self) -> bool {
        matches!(self, Outcome::Exited(s) if s.success())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(s) => write!(f, "{s}"),
            Outcome::TimedOut => f.write_str("timed out, killed"),
            Outcome::SpawnFailed(e) => write!(f, "could not start: {e}"),
        }
    }
}

/// One finished run: outcome and the first lines of output.
#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub output: String,
}

type Buf = Arc<Mutex<Vec<u8>>>;

async fn collect(mut pipe: impl AsyncRead + Unpin, buf: Buf) {
    let mut chunk = [0u8; 512];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        if let Ok(mut b) = buf.lock() {
            let room = OUTPUT_LIMIT.saturating_sub(b.len());
            b.extend_from_slice(&chunk[..n.min(room)]);
        }
    }
}

/// The first [`OUTPUT_LINES`] non-empty lines, joined with " | " so the
/// whole run fits one journald line.
pub fn first_lines(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .take(OUTPUT_LINES)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs `argv` (absolute program path first) plus `extra` arguments, with
/// `env` added to the inherited environment. Must be called inside a tokio
/// runtime with I/O and time enabled.
pub async fn run(
    argv: &[String],
    extra: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Run {
    let Some((prog, args)) = argv.split_first() else {
        return Run {
            outcome: Outcome::SpawnFailed(std::io::Error::other("empty command")),
            output: String::new(),
        };
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the child (on timeout) sends SIGKILL; tokio reaps it.
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Run {
                outcome: Outcome::SpawnFailed(e),
                output: String::new(),
            };
        }
    };
    let buf: Buf = Arc::default();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(collect(out, buf.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(collect(err, buf.clone())));
    }
    let outcome = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Outcome::Exited(status),
        Ok(Err(e)) => Outcome::SpawnFailed(e),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    };
    for r in readers {
        // A grandchild holding the pipe keeps a reader alive: stop waiting
        // and keep what was read so far.
        let abort = r.abort_handle();
        if tokio::time::timeout(PIPE_GRACE, r).await.is_err() {
            abort.abort();
        }
    }
    let output = buf.lock().map(|b| first_lines(&b)).unwrap_or_default();
    Run { outcome, output }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn first_lines_joins_and_limits() {
        assert_eq!(first_lines(b"a\n\nb  \nc\nd\ne\nf\n"), "a | b | c | d | e");
    }

    #[tokio::test]
    async fn captures_status_and_output() {
        let r = run(
            &sh("echo out; echo err >&2; exit 3"),
            &[],
            &[],
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(&r.outcome, Outcome::Exited(s) if s.code() == Some(3)),
            "{:?}",
            r.outcome
        );
        assert!(
            r.output.contains("out") && r.output.contains("err"),
            "{}",
            r.output
        );
    }

    #[tokio::test]
    async fn extra_args_follow_argv() {
        let r = run(
            &sh("echo \"$0 $1 $HD_T\""),
            &["x".into(), "y".into()],
            &[("HD_T".into(), "z".into())],
            Duration::from_secs(5),
        )
        .await;
        assert!(r.outcome.success());
        assert_eq!(r.output, "x y z");
    }

    #[tokio::test]
    async fn slow_command_is_killed() {
        let t = std::time::Instant::now();
        let r = run(&sh("sleep 30"), &[], &[], Duration::from_millis(200)).await;
        assert!(matches!(r.outcome, Outcome::TimedOut));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn background_grandchild_does_not_hold_us() {
        let t = std::time::Instant::now();
        let r = run(
            &sh("sleep 5 & echo started"),
            &[],
            &[],
            Duration::from_secs(3),
        )
        .await;
        assert!(r.outcome.success(), "{}", r.outcome);
        assert_eq!(r.output, "started");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn missing_program_is_reported() {
        let r = run(
            &["/nonexistent/hook".into()],
            &[],
            &[],
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(r.outcome, Outcome::SpawnFailed(_)));
    }
}
