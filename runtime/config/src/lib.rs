//! The one source of truth for the files a hadeploy node receives.
//!
//! `hadeploy render` (the CLI) and `hadeploy-runtime` (on the node) both load
//! rendered configs through [`load_vrrp`] / [`load_proxy`], so a file the CLI
//! accepts is exactly a file the runtime accepts, with the same error text.
//!
//! Loading is two passes: serde parses the YAML into typed structs (unknown
//! keys rejected), then `validate` checks what types cannot express (ranges,
//! cross references). Every diagnostic carries the YAML path of the offending
//! key, which [`locate::SourceMap`] turns into `file:line:column`.
//!
//! Writing is serde too ([`to_yaml`]): the CLI serializes the typed configs
//! it builds, so no template spells the schema out a second time.

pub mod diag;
pub mod duration;
mod load;
pub mod locate;
pub mod proxy;
pub mod status;
pub mod vrrp;

pub use diag::{ConfigError, Diagnostic, Severity};
pub use load::{
    WriteError, did_you_mean, load_proxy, load_vrrp, locate, parse_proxy, parse_vrrp, parse_yaml,
    to_yaml,
};

/// Where the runtime looks for its files on a node; the CLI renders to these.
pub mod paths {
    pub const CONFIG_DIR: &str = "/etc/hadeploy";
    pub const VRRP_CONFIG: &str = "/etc/hadeploy/vrrp.yaml";
    pub const PROXY_CONFIG: &str = "/etc/hadeploy/proxy.yaml";
    pub const RUNTIME_BIN: &str = "/usr/local/sbin/hadeploy-runtime";
    pub const STATE_DIR: &str = "/run/hadeploy";
}
