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
    pub fn resolve(&self, base: &std::path::Path) -> Result<Secret, String> {
        match self {
            SecretSource::Inline(s) => Ok(Secret(s.clone())),
            SecretSource::Ref(SecretRef {
                env: Some(var),
                file: None,
            }) => std::env::var(var)
                .map(Secret)
                .map_err(|_| format!("environment variable `{var}` is not set")),
            SecretSource::Ref(SecretRef {
                env: None,
                file: Some(path),
            }) => {
                let p = base.join(path);
                std::fs::read_to_string(&p)
                    .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
                    .map_err(|e| format!("cannot read secret file {}: {e}", p.display()))
            }
            SecretSource::Ref(_) => {
                Err("a secret reference takes exactly one of `env` or `file`".to_string())
            }
        }
    }
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
