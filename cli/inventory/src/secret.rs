//! Secrets: written inline, or taken from an environment variable or a file,
//! and never shown again (Debug, Display and serialization for plans mask).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SecretSource {
    Inline(String),
    Ref(SecretRef),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A resolved secret. The value is only reachable through [`Secret::expose`],
/// which the renderer calls for the one file that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl SecretSource {
    /// Reads the secret. `base` is the inventory's directory, for relative
    /// file references. Errors never contain the secret itself.
    pub fn resolve(&self, base: &std::path::Path) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Inline(s) => Ok(Secret(s.clone())),
            SecretSource::Ref(SecretRef {
                env: Some(var),
                file: None,
            }) => std::env::var(var)
                .map(Secret)
                .map_err(|_| SecretError::Unset(var.clone())),
            SecretSource::Ref(SecretRef {
                env: None,
                file: Some(path),
            }) => {
                let p = base.join(path);
                std::fs::read_to_string(&p)
                    .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
                    .map_err(|source| SecretError::Read { path: p, source })
            }
            SecretSource::Ref(_) => Err(SecretError::Ambiguous),
        }
    }
}

/// Why a secret reference did not resolve; never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    #[error("cannot read secret file {}: {source}", .path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("a secret reference takes exactly one of `env` or `file`")]
    Ambiguous,
}

/// Keys whose values are secrets in the files `render` produces.
const SECRET_KEYS: &[&str] = &["auth_pass:"];

/// A rendered file with every secret value replaced by `****`, for plans,
/// diffs and `render --show`. Line structure is kept so diffs still align.
pub fn mask_rendered(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for l in text.lines() {
        match SECRET_KEYS.iter().find_map(|k| l.find(k).map(|i| (i, k))) {
            Some((i, k)) => out.push_str(&format!("{}{k} \"****\"", &l[..i])),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}
