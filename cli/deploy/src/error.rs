//! Errors that name the host and the step, as every deploy error must.

use std::fmt;

/// The step of an apply a failure happened in; shown in errors and progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Connect,
    Facts,
    Preflight,
    Plan,
    Upload,
    Validate,
    Handlers,
    Health,
    Status,
    Uninstall,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Step::Connect => "connect",
            Step::Facts => "gather facts",
            Step::Preflight => "preflight",
            Step::Plan => "plan",
            Step::Upload => "upload",
            Step::Validate => "validate",
            Step::Handlers => "handlers",
            Step::Health => "health",
            Step::Status => "status",
            Step::Uninstall => "uninstall",
        };
        f.write_str(s)
    }
}

impl hadeploy_progress::StepName for Step {}

/// Why a run (apply, status, uninstall) could not start at all; per-host
/// failures are [`DeployError`]s in the recap instead.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--limit` matched no host of the inventory.
    #[error(transparent)]
    Limit(#[from] hadeploy_inventory::model::LimitError),
    #[error(transparent)]
    Artifact(#[from] crate::artifact::ArtifactError),
}

impl RunError {
    /// The hosts `--limit` selects, owned: runs hand them to tasks.
    pub fn select(
        inv: &hadeploy_inventory::model::Inventory,
        limit: &[String],
    ) -> Result<Vec<hadeploy_inventory::model::Host>, RunError> {
        let hosts = inv.limit(limit)?;
        Ok(hosts.into_iter().cloned().collect())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{host}: {step}: {message}")]
pub struct DeployError {
    pub host: String,
    pub step: Step,
    pub message: String,
    /// The host could not be reached at all (Ansible's "unreachable").
    pub unreachable: bool,
}

impl DeployError {
    pub fn new(host: &str, step: Step, message: impl Into<String>) -> Self {
        DeployError {
            host: host.to_string(),
            step,
            message: message.into(),
            unreachable: false,
        }
    }

    pub fn unreachable(host: &str, message: impl Into<String>) -> Self {
        DeployError {
            unreachable: true,
            ..Self::new(host, Step::Connect, message)
        }
    }
}
