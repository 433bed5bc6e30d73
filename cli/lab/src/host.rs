//! Host prerequisites: the Debian packages the lab drives.

use std::path::Path;

use crate::cmd::{cmd, run_logged};
use crate::error::{LabError, Result};
use hadeploy_progress::Progress;

/// Host commands the lab needs and the Debian package providing each.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("/usr/sbin/debootstrap", "debootstrap"),
    ("/usr/bin/systemd-nspawn", "systemd-container"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/ip", "iproute2"),
    ("/usr/bin/nsenter", "util-linux"),
];

/// Install the host packages the lab needs when one of their commands is missing, apt's
/// output going to `<cache_dir>/host-packages.log`. Does nothing (and runs no apt) when
/// everything is present.
pub fn ensure_host_packages(cache_dir: &Path, progress: &Progress) -> Result<()> {
    let mut missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(?missing, "installing host packages");
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| LabError::io(format!("create {}", cache_dir.display()), e))?;
    let log = cache_dir.join("host-packages.log");
    let step = progress.step(format!(
        "lab host packages: apt-get install {}",
        missing.join(" ")
    ));
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    run_logged(
        "host packages: apt-get update",
        cmd("apt-get", ["update"]).envs(env),
        &log,
    )?;
    run_logged(
        "host packages: apt-get install",
        cmd("apt-get", ["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .envs(env),
        &log,
    )?;
    step.done();
    Ok(())
}

/// Every container's systemd takes several inotify instances; the kernel's
/// default of 128 per user runs out near a dozen containers ("Failed to
/// allocate manager object: Too many open files"). Raised, never lowered.
const INOTIFY_LIMITS: &[(&str, u64)] = &[
    ("/proc/sys/fs/inotify/max_user_instances", 8192),
    ("/proc/sys/fs/inotify/max_user_watches", 524_288),
];

pub fn ensure_host_limits() -> Result<()> {
    for (path, want) in INOTIFY_LIMITS {
        let have: u64 = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if have < *want {
            std::fs::write(path, want.to_string())
                .map_err(|e| LabError::io(format!("raising {path} to {want}"), e))?;
            tracing::info!(
                path,
                from = have,
                to = want,
                "raised kernel limit for containers"
            );
        }
    }
    Ok(())
}
