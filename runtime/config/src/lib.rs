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
mod unit;
pub mod vrrp;

pub use diag::{ConfigError, Diagnostic, Severity};
pub use load::{
    WriteError, did_you_mean, load_proxy, load_vrrp, locate, parse_proxy, parse_vrrp, parse_yaml,
    to_yaml,
};
pub use unit::Unit;

/// The runtime binary's path on a node as a literal, for `concat!` into the
/// shell scripts the CLI runs there; [`paths::RUNTIME_BIN`] everywhere else.
#[macro_export]
macro_rules! runtime_bin {
    () => {
        "/usr/local/sbin/hadeploy-runtime"
    };
}

/// The VRRP unit's systemd name as a literal (for `concat!` into shell
/// scripts); [`Unit::name`] everywhere else.
#[macro_export]
macro_rules! vrrp_unit {
    () => {
        "hadeploy-vrrp"
    };
}

/// The proxy unit's systemd name as a literal; [`Unit::name`] elsewhere.
#[macro_export]
macro_rules! proxy_unit {
    () => {
        "hadeploy-proxy"
    };
}

/// The node's config directory as a literal, spelled once (`concat!` needs
/// a literal, hence a macro); [`paths::CONFIG_DIR`] everywhere else.
#[macro_export]
macro_rules! config_dir {
    () => {
        "/etc/hadeploy"
    };
}

/// The manifest of the files hadeploy installed, as a literal for the node
/// scripts; [`paths::MANIFEST`] everywhere else.
#[macro_export]
macro_rules! manifest {
    () => {
        concat!($crate::config_dir!(), "/.manifest")
    };
}

/// Where the runtime looks for its files on a node; the CLI renders to these.
pub mod paths {
    /// Likewise for the log directory.
    macro_rules! log_dir {
        () => {
            "/var/log/hadeploy"
        };
    }

    pub const CONFIG_DIR: &str = crate::config_dir!();
    pub const VRRP_CONFIG: &str = concat!(crate::config_dir!(), "/vrrp.yaml");
    pub const PROXY_CONFIG: &str = concat!(crate::config_dir!(), "/proxy.yaml");
    /// The notify hook hadeploy installs beside the configs.
    pub const NOTIFY_HOOK: &str = concat!(crate::config_dir!(), "/notify.sh");
    /// The files hadeploy installed on the node, one a line (uninstall
    /// removes exactly these).
    pub const MANIFEST: &str = crate::manifest!();
    /// Where rendered access logs go unless a site names another file.
    pub const LOG_DIR: &str = log_dir!();
    /// The access log of the backend site hadeploy renders on a backend.
    pub const BACKEND_ACCESS_LOG: &str = concat!(log_dir!(), "/backend.access.log");
    pub const RUNTIME_BIN: &str = crate::runtime_bin!();
    pub const STATE_DIR: &str = "/run/hadeploy";
    pub const SYSCTL: &str = "/etc/sysctl.d/90-hadeploy.conf";
    /// Directories the units need (log directories).
    pub const TMPFILES: &str = "/etc/tmpfiles.d/hadeploy.conf";
    pub const LOGROTATE: &str = "/etc/logrotate.d/hadeploy";
    /// Rendered only where firewalld runs.
    pub const FIREWALLD_SERVICE: &str = "/etc/firewalld/services/hadeploy.xml";
}
