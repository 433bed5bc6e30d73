//! Host prerequisites: the Debian packages the lab drives.

use std::path::Path;

use crate::cmd::{cmd, run_inherit};
use crate::error::Result;

/// Host commands the lab needs and the Debian package providing each.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("/usr/sbin/debootstrap", "debootstrap"),
    ("/usr/bin/systemd-nspawn", "systemd-container"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/ip", "iproute2"),
    ("/usr/bin/nsenter", "util-linux"),
];

/// Install the host packages the lab needs when one of their commands is missing.
/// Does nothing (and runs no apt) when everything is present.
pub fn ensure_host_packages() -> Result<()> {
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
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    run_inherit(
        "host packages: apt-get update",
        cmd("apt-get", ["update"]).envs(env),
    )?;
    run_inherit(
        "host packages: apt-get install",
        cmd("apt-get", ["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .envs(env),
    )
}
