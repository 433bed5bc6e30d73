//! `check --config FILE`: the same loader the daemons use, so a file that
//! passes here starts there. Like `nginx -t`, it also checks what only the
//! node can tell: every access log must be openable for append here.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::ExitCode;

use hadeploy_config::locate::SourceMap;
use hadeploy_config::proxy::ProxyConfig;
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

/// Node-local checks of a proxy config, the way `nginx -t` opens its log
/// files: an access log that exists must open for append; one that does not
/// exist yet is created (as nginx does) when its directory exists. A missing
/// directory is only a warning: off the node (CI, `render`) it is expected,
/// and on the node `hadeploy apply` creates it with systemd-tmpfiles before
/// it validates.
pub fn node_checks(cfg: &ProxyConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, site) in cfg.sites.iter().enumerate() {
        let Some(log) = &site.access_log else {
            continue;
        };
        let key = format!("sites[{i}].access_log.path");
        let path = &log.path;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let exists = path.symlink_metadata().is_ok();
        if !exists && !dir.exists() {
            out.push(Diagnostic::warning(
                key,
                format!(
                    "directory {} does not exist on this machine: access log {} cannot be opened until it is created",
                    dir.display(),
                    path.display()
                ),
            ));
            continue;
        }
        if let Err(e) = OpenOptions::new().append(true).create(true).open(path) {
            out.push(Diagnostic::error(
                key,
                format!(
                    "access log {} cannot be opened for append on this node: {e}",
                    path.display()
                ),
            ));
        }
    }
    out
}

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let result: Result<Vec<Diagnostic>, ConfigError> = match detect(&text) {
        Some(Kind::Vrrp) => hadeploy_config::parse_vrrp(&text, path).map(|(_, w)| w),
        Some(Kind::Proxy) => hadeploy_config::parse_proxy(&text, path).and_then(|(cfg, mut w)| {
            let mut local = node_checks(&cfg);
            hadeploy_config::locate(&mut local, &SourceMap::build(&text), path);
            let failed = local.iter().any(Diagnostic::is_error);
            w.extend(local);
            if failed {
                Err(ConfigError::Invalid(w))
            } else {
                Ok(w)
            }
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with_log(path: &Path) -> ProxyConfig {
        let text = format!(
            "node: n\nsites:\n  - name: s\n    listen: [\"127.0.0.1:8080\"]\n    root: /srv\n    access_log: {{ path: \"{}\" }}\n",
            path.display()
        );
        hadeploy_config::parse_proxy(&text, Path::new("proxy.yaml"))
            .expect("valid")
            .0
    }

    #[test]
    fn log_that_is_a_directory_is_refused() {
        let dir = tempfile_dir();
        let log = dir.join("access.log");
        std::fs::create_dir_all(&log).expect("mkdir");
        let d = node_checks(&cfg_with_log(&log));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].is_error() && d[0].message.contains("cannot be opened for append"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_directory_is_a_warning_and_existing_dir_is_ok() {
        let dir = tempfile_dir();
        let d = node_checks(&cfg_with_log(&dir.join("nope/access.log")));
        assert_eq!(d.len(), 1);
        assert!(!d[0].is_error());
        assert!(node_checks(&cfg_with_log(&dir.join("access.log"))).is_empty());
        assert!(dir.join("access.log").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "hadeploy-check-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }
}
