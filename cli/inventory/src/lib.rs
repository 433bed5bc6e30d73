//! The hadeploy inventory: YAML in, a validated model out, and from the
//! model the exact file tree each node receives.
//!
//! Pipeline: [`load`] parses (`raw`), resolves variables and defaults
//! (`vars`, `resolve`) into a [`model::Inventory`]; [`render::render`] turns
//! the model plus each node's facts into a [`render::NodeTree`].

pub mod facts;
pub mod generated;
pub mod model;
pub mod raw;
pub mod render;
mod resolve;
pub mod secret;
pub mod summary;
mod templates;
pub mod vagrant;
mod vars;

use std::path::Path;

pub use hadeploy_config::{ConfigError, Diagnostic, Severity};

/// " (did you mean `x`?)" or nothing.
pub(crate) fn hint(bad: &str, candidates: &[&str]) -> String {
    hadeploy_config::did_you_mean(bad, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Reads, parses and validates an inventory. On success returns the model
/// and any warnings; on failure every diagnostic found (errors first).
pub fn load(path: &Path) -> Result<(model::Inventory, Vec<Diagnostic>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text, path)
}

/// Like [`load`], from text (`path` is used for messages and relative
/// secret files).
pub fn parse(text: &str, path: &Path) -> Result<(model::Inventory, Vec<Diagnostic>), ConfigError> {
    let raw: raw::RawInventory =
        hadeploy_config::parse_yaml(text, path).map_err(|d| ConfigError::Invalid(vec![d]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut ctx = resolve::Ctx {
        diags: Vec::new(),
        base,
    };
    let inv = resolve::resolve(raw, path, &mut ctx);
    let mut diags = ctx.diags;
    let map = hadeploy_config::locate::SourceMap::build(text);
    hadeploy_config::locate(&mut diags, &map, path);
    diags.sort_by_key(|d| (d.severity, d.line, d.column));
    diags.dedup();
    if diags.iter().any(Diagnostic::is_error) {
        Err(ConfigError::Invalid(diags))
    } else {
        Ok((inv, diags))
    }
}
