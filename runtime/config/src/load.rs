//! Text -> typed config -> validated config, with positioned diagnostics.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::diag::{ConfigError, Diagnostic};
use crate::locate::SourceMap;
use crate::proxy::ProxyConfig;
use crate::vrrp::VrrpConfig;

/// Parses YAML into `T`, turning serde's errors into a positioned diagnostic
/// and adding a "did you mean" to unknown-key errors.
///
/// Shared with the inventory loader so both report errors the same way.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, Diagnostic> {
    let de = yaml_serde::Deserializer::from_str(text);
    let result: Result<T, _> = serde_path_to_error_lite(de);
    result.map_err(|(err, path)| {
        let mut d = Diagnostic::error(path, improve_message(&err.to_string()));
        d.file = Some(file.to_path_buf());
        if let Some(loc) = err.location() {
            d.line = Some(loc.line());
            d.column = Some(loc.column());
        }
        d
    })
}

/// yaml_serde does not report the path of the failing key; it does report
/// the position, which is what users need. The path is left empty here and
/// the message (with serde's "at line X column Y" suffix stripped) is kept.
fn serde_path_to_error_lite<'de, T: DeserializeOwned>(
    de: yaml_serde::Deserializer<'de>,
) -> Result<T, (yaml_serde::Error, String)> {
    T::deserialize(de).map_err(|e| (e, String::new()))
}

/// Serde says "unknown field `prioity`, expected one of `a`, `b`"; users want
/// "unknown key `prioity` (did you mean `priority`?)".
fn improve_message(msg: &str) -> String {
    // Strip yaml_serde's own position suffix: we print file:line:col first.
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    let Some(rest) = msg
        .find("unknown field `")
        .map(|i| &msg[i + "unknown field `".len()..])
    else {
        return msg.to_string();
    };
    let Some(end) = rest.find('`') else {
        return msg.to_string();
    };
    let bad = &rest[..end];
    let expected: Vec<&str> = rest[end..].split('`').skip(2).step_by(2).collect();
    let prefix = &msg[..msg.find("unknown field").unwrap_or(0)];
    let mut out = format!("{prefix}unknown key `{bad}`");
    if let Some(best) = did_you_mean(bad, &expected) {
        out.push_str(&format!(" (did you mean `{best}`?)"));
    }
    if !expected.is_empty() {
        out.push_str(&format!("; expected one of: {}", expected.join(", ")));
    }
    out
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(bad: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(bad, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Fills in file/line/column for diagnostics that only know their path.
pub fn locate(diags: &mut [Diagnostic], map: &SourceMap, file: &Path) {
    for d in diags {
        if d.file.is_none() {
            d.file = Some(file.to_path_buf());
        }
        if d.line.is_none()
            && let Some(pos) = map.key(&d.path)
        {
            d.line = Some(pos.line);
            d.column = Some(pos.column);
        }
    }
}

fn finish<T>(
    value: T,
    mut diags: Vec<Diagnostic>,
    text: &str,
    file: &Path,
) -> Result<(T, Vec<Diagnostic>), ConfigError> {
    let map = SourceMap::build(text);
    locate(&mut diags, &map, file);
    diags.sort_by_key(|d| (d.severity, d.line, d.column));
    if diags.iter().any(Diagnostic::is_error) {
        Err(ConfigError::Invalid(diags))
    } else {
        Ok((value, diags))
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: PathBuf::from(path),
        error,
    })
}

/// Parses and validates a VRRP config. Returns warnings beside the value.
pub fn parse_vrrp(text: &str, file: &Path) -> Result<(VrrpConfig, Vec<Diagnostic>), ConfigError> {
    let cfg: VrrpConfig = parse_yaml(text, file).map_err(|d| ConfigError::Invalid(vec![d]))?;
    let diags = cfg.validate();
    finish(cfg, diags, text, file)
}

/// Parses and validates a proxy config. Returns warnings beside the value.
pub fn parse_proxy(text: &str, file: &Path) -> Result<(ProxyConfig, Vec<Diagnostic>), ConfigError> {
    let cfg: ProxyConfig = parse_yaml(text, file).map_err(|d| ConfigError::Invalid(vec![d]))?;
    let diags = cfg.validate();
    finish(cfg, diags, text, file)
}

/// A typed config could not be written as YAML (a map key that is not a
/// string or number; no config type has one, so this is a bug).
#[derive(Debug, thiserror::Error)]
#[error("cannot write config as YAML: {0}")]
pub struct WriteError(#[from] yaml_serde::Error);

/// The YAML text of a typed config, written by the same crate that reads it
/// back ([`parse_vrrp`], [`parse_proxy`]), so what the CLI writes is what the
/// runtime loads: durations as humantime strings, defaults the serde
/// attributes allow left out.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, WriteError> {
    Ok(yaml_serde::to_string(value)?)
}

pub fn load_vrrp(path: &Path) -> Result<(VrrpConfig, Vec<Diagnostic>), ConfigError> {
    parse_vrrp(&read(path)?, path)
}

pub fn load_proxy(path: &Path) -> Result<(ProxyConfig, Vec<Diagnostic>), ConfigError> {
    parse_proxy(&read(path)?, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_gets_a_suggestion() {
        let m = improve_message(
            "instances[0]: unknown field `prioity`, expected one of `name`, `priority` at line 3 column 5",
        );
        assert_eq!(
            m,
            "instances[0]: unknown key `prioity` (did you mean `priority`?); expected one of: name, priority"
        );
    }

    #[test]
    fn no_suggestion_when_nothing_is_close() {
        let m = improve_message("unknown field `zzz`, expected `name` or `priority`");
        assert!(!m.contains("did you mean"), "{m}");
    }
}
