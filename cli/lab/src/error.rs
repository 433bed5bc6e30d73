//! Errors of the lab: every variant names the step (and the node when there is one) so a
//! failed `lab up` says what to look at without a debugger.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab spec: {0}")]
    Spec(String),

    #[error("{step}: `{command}` exited with {status}: {stderr}")]
    Command {
        step: String,
        command: String,
        status: String,
        stderr: String,
    },

    #[error(
        "{step}: `{command}` exited with {status}{}; full output in {log}",
        last.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
        log = log.display()
    )]
    Build {
        step: String,
        command: String,
        status: String,
        /// The command's whole output (and that of the build's earlier steps).
        log: PathBuf,
        /// Its last error line, if any.
        last: Option<String>,
    },

    // The io error is in the message and not a `source`: callers print error chains
    // (`{:#}`), which would print it twice.
    #[error("{step}: {error}")]
    Io { step: String, error: std::io::Error },

    #[error("node {node}: {step}: {message}")]
    Node {
        node: String,
        step: String,
        message: String,
    },

    #[error(
        "node {node}: not ready after {secs} s ({last}); console log {console}:\n{tail}",
        console = console.display()
    )]
    BootTimeout {
        node: String,
        secs: u64,
        last: String,
        console: PathBuf,
        tail: String,
    },

    #[error(
        "node {node}: boot ended degraded:{}\n  console log {console}",
        crate::boot::describe_failed(failed),
        console = console.display()
    )]
    Degraded {
        node: String,
        failed: Vec<crate::boot::FailedUnit>,
        console: PathBuf,
    },

    #[error("unknown node {0:?} in this lab")]
    UnknownNode(String),

    #[error("lab state {path}: {message}", path = path.display())]
    State { path: PathBuf, message: String },

    #[error("tear-down of lab {lab} left problems: {}", problems.join("; "))]
    TearDown { lab: String, problems: Vec<String> },
}

impl LabError {
    pub(crate) fn io(step: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            step: step.into(),
            error: source,
        }
    }

    pub(crate) fn node(node: &str, step: &str, message: impl Into<String>) -> Self {
        LabError::Node {
            node: node.to_string(),
            step: step.to_string(),
            message: message.into(),
        }
    }
}

/// Attach a step description to an `std::io::Result`.
pub(crate) trait IoContext<T> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| LabError::io(step(), e))
    }
}
