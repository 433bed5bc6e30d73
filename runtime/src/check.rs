//! `check --config FILE`: the same loader the daemons use, so a file that
//! passes here starts there.

use std::path::Path;
use std::process::ExitCode;

use hadeploy_config::{ConfigError, Diagnostic};

/// Which daemon a file is for, decided by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vrrp,
    Proxy,
}

pub fn detect(text: &str) -> Option<Kind> {
    // A cheap look at top-level keys: `instances:` is VRRP, `sites:` proxy.
    for line in text.lines() {
        if line.starts_with("instances:") {
            return Some(Kind::Vrrp);
        }
        if line.starts_with("sites:") {
            return Some(Kind::Proxy);
        }
    }
    None
}

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let result: Result<Vec<Diagnostic>, ConfigError> = match detect(&text) {
        Some(Kind::Vrrp) => hadeploy_config::parse_vrrp(&text, path).map(|(_, w)| w),
        Some(Kind::Proxy) => hadeploy_config::parse_proxy(&text, path).map(|(_, w)| w),
        None => {
            eprintln!(
                "{}: error: not a hadeploy runtime config (expected top-level `instances:` for VRRP or `sites:` for the proxy)",
                path.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    match result {
        Ok(warnings) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            println!("{}: syntax is ok, test is successful", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(ConfigError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
