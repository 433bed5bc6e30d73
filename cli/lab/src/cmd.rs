//! Running host commands (ip, mount, debootstrap, ssh-keygen...) with uniform errors and
//! tracing, so every failure carries the command line and its stderr.

use std::borrow::BorrowMut;
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

/// Run with the child's output going to our own stdout/stderr (long builds: the user
/// sees progress), still failing with the step on a non-zero exit.
pub(crate) fn run_inherit(step: &str, mut cmd: impl BorrowMut<Command>) -> Result<()> {
    let cmd = cmd.borrow_mut();
    let line = describe(cmd);
    tracing::info!(step, command = %line, "run");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| LabError::io(format!("{step}: spawn `{line}`"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            step: step.to_string(),
            command: line,
            status: status.to_string(),
            stderr: "(see output above)".into(),
        })
    }
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
