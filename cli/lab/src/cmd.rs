//! Running host commands (ip, mount, debootstrap, ssh-keygen...) with uniform errors and
//! tracing, so every failure carries the command line and its stderr (short commands)
//! or the path of its log (long builds).

use std::borrow::BorrowMut;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::{LabError, Result};

/// Render a command line for logs and errors.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run to completion and capture output; a non-zero exit is NOT an error here.
pub(crate) fn output(step: &str, mut cmd: impl BorrowMut<Command>) -> Result<Output> {
    let cmd = cmd.borrow_mut();
    let line = describe(cmd);
    tracing::debug!(step, command = %line, "run");
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::io(format!("{step}: spawn `{line}`"), e))
}

/// Run to completion; a non-zero exit is an error naming the step.
pub(crate) fn run(step: &str, mut cmd: impl BorrowMut<Command>) -> Result<Output> {
    let cmd = cmd.borrow_mut();
    let out = output(step, &mut *cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            step: step.to_string(),
            command: describe(cmd),
            status: out.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&out.stderr), 20),
        })
    }
}

/// Run a long command with its stdout and stderr appended to `log` (after a header
/// line naming the step and command), never to ours: the user sees progress, the log
/// keeps the raw output. A non-zero exit is an error naming the step, the log file and
/// the log's last error line, not its content.
pub(crate) fn run_logged(step: &str, mut cmd: impl BorrowMut<Command>, log: &Path) -> Result<()> {
    let cmd = cmd.borrow_mut();
    let line = describe(cmd);
    tracing::debug!(step, command = %line, log = %log.display(), "run");
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LabError::io(format!("{step}: open log {}", log.display()), e))
    };
    let mut file = open()?;
    let _ = writeln!(file, "==> {step}: {line}");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .status()
        .map_err(|e| LabError::io(format!("{step}: spawn `{line}`"), e))?;
    let _ = writeln!(file, "==> {step}: {status}");
    if status.success() {
        Ok(())
    } else {
        Err(LabError::Build {
            step: step.to_string(),
            command: line,
            status: status.to_string(),
            log: log.to_path_buf(),
            last: last_error_line(log),
        })
    }
}

/// The line of a log that best says what went wrong: the last `E:` line (apt and
/// debootstrap errors), else the last line that is not one of our headers.
pub(crate) fn last_error_line(log: &Path) -> Option<String> {
    let text = fs::read(log).ok()?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("==> "))
        .collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("E: "))
        .or(lines.last())?;
    let mut s: String = pick.chars().take(300).collect();
    if s.len() < pick.len() {
        s.push_str("...");
    }
    Some(s)
}

/// Last `n` lines of a text, for error messages.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Build a command from a program and arguments (readability at call sites).
pub(crate) fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("hd-cmd-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn logged_output_goes_to_the_log_and_the_error_names_it_once() {
        let d = temp("logged");
        let log = d.join("build.log");
        run_logged(
            "ok step",
            cmd("sh", ["-c", "echo hello; echo warn >&2"]),
            &log,
        )
        .expect("success");
        // The output's words are not in the command line, which the error does name.
        let script = "for i in $(seq 200); do echo no''ise $i; done; echo 'E: no release file' >&2; \
                      echo trailing >&2; exit 3";
        let err = run_logged("bad step", cmd("sh", ["-c", script]), &log).expect_err("exit 3");
        let msg = err.to_string();
        let text = fs::read_to_string(&log).expect("log");
        assert!(text.contains("==> ok step: sh -c"), "{text}");
        assert!(
            text.contains("hello\n") && text.contains("warn\n"),
            "{text}"
        );
        assert!(text.contains("noise 200"), "{text}");
        assert_eq!(msg.matches(&*log.to_string_lossy()).count(), 1, "{msg}");
        assert!(msg.starts_with("bad step: `sh -c"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("E: no release file"), "{msg}");
        assert!(
            !msg.contains("noise"),
            "the error must not carry the log: {msg}"
        );
        fs::remove_dir_all(&d).expect("clean");
    }

    #[test]
    fn last_error_line_prefers_apt_errors() {
        let d = temp("last");
        let log = d.join("l.log");
        fs::write(
            &log,
            "==> s: cmd\nE: first\nsome\n\n==> s: exit status: 1\n",
        )
        .expect("w");
        assert_eq!(last_error_line(&log).as_deref(), Some("E: first"));
        fs::write(&log, "a\nb\n==> s: exit status: 1\n").expect("w");
        assert_eq!(last_error_line(&log).as_deref(), Some("b"));
        assert_eq!(last_error_line(&d.join("absent")), None);
        fs::remove_dir_all(&d).expect("clean");
    }
}
