//! A cgroup of its own for every node's systemd-nspawn, on hosts where no systemd owns
//! the cgroup tree (this machine kind: PID 1 is not systemd).
//!
//! Why: with `--keep-unit --register=no`, nspawn uses the cgroup it was started in and
//! creates `payload/` (the container) and `supervisor/` (itself) below it. Started from
//! the root cgroup, every container of every lab got the same `/payload`, so their
//! systemds managed one shared tree: the same unit on two nodes was one cgroup. Seen: a
//! unit on one node failing `219/CGROUP` ("Failed at step CGROUP spawning ...: No such
//! file or directory") because another node's systemd removed the cgroup it was being
//! spawned into (the flaky "system state degraded" boots), a node reading another
//! node's processes as pid 0 in its unit's `cgroup.procs`, and "Failed to kill control
//! group ... Input/output error" on stop. Each nspawn now starts in
//! `<hierarchy>/hadeploy-lab/<node>`, so each container's tree is its own.
//!
//! On a host run by systemd the tree is systemd's (one writer per tree): nothing is
//! created there and nspawn keeps the cgroup it is started in.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::{IoContext, Result};

/// Directory below each hierarchy's root holding one cgroup per node.
pub const LAB_CGROUP: &str = "hadeploy-lab";

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Is the host's PID 1 systemd (sd_booted(3): /run/systemd/system exists)?
pub(crate) fn host_runs_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The hierarchies nspawn and a container's systemd place processes in: the v2 root
/// when /sys/fs/cgroup is cgroup2, else the named v1 `systemd` hierarchy and the
/// unified v2 one next to it (hybrid). Empty on a systemd host.
pub(crate) fn hierarchies() -> Vec<PathBuf> {
    if host_runs_systemd() {
        return Vec::new();
    }
    hierarchies_under(Path::new(CGROUP_ROOT))
}

fn hierarchies_under(root: &Path) -> Vec<PathBuf> {
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| root.join(h))
        .filter(|h| h.join("cgroup.procs").exists())
        .collect()
}

/// `<hierarchy>/hadeploy-lab/<node>` for every hierarchy in use.
pub(crate) fn node_cgroups(node: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(LAB_CGROUP).join(node))
        .collect()
}

/// Create the node's cgroups, empty: what a previous boot of the node left below them
/// (its container's tree, empty once it is dead) is removed first. Returns the
/// `cgroup.procs` files the nspawn process must write its pid to before it starts.
pub(crate) fn prepare(node: &str) -> Result<Vec<PathBuf>> {
    let mut procs = Vec::new();
    for cg in node_cgroups(node) {
        if let Err(e) = remove_tree(&cg) {
            tracing::warn!(node, cgroup = %cg.display(), %e, "stale cgroup not removed");
        }
        fs::create_dir_all(&cg).step(|| format!("node {node}: create cgroup {}", cg.display()))?;
        procs.push(cg.join("cgroup.procs"));
    }
    Ok(procs)
}

/// Remove the node's cgroups once its processes are gone. A cgroup still listing a
/// process (a dead nspawn not yet reaped: PID 1 here reaps lazily) is retried for a
/// moment, then left with a warning: it is empty and harmless, and the node's next
/// boot removes it.
pub(crate) fn remove(node: &str) {
    for cg in node_cgroups(node) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match remove_tree(&cg) {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(100)),
                Err(e) => {
                    tracing::warn!(node, cgroup = %cg.display(), %e, "cgroup not removed");
                    break;
                }
            }
        }
    }
    // The shared parent goes with the last node; busy (and kept) otherwise.
    for h in hierarchies() {
        let _ = fs::remove_dir(h.join(LAB_CGROUP));
    }
}

/// Node names that have a cgroup (to find leftovers of a lab whose state was lost).
pub(crate) fn nodes_with_cgroups() -> Vec<String> {
    let mut names: Vec<String> = hierarchies()
        .into_iter()
        .filter_map(|h| fs::read_dir(h.join(LAB_CGROUP)).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// rmdir a cgroup and its children, deepest first (a cgroup directory is removed with
/// rmdir, its files are not real). Absent is fine.
fn remove_tree(cg: &Path) -> std::io::Result<()> {
    let entries = match fs::read_dir(cg) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    match fs::remove_dir(cg) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_of_each_layout() {
        let t = std::env::temp_dir().join(format!("hd-cgroup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        // Hybrid: the named systemd v1 hierarchy and the unified one.
        for h in ["systemd", "unified", "memory"] {
            fs::create_dir_all(t.join(h)).expect("mkdir");
        }
        fs::write(t.join("systemd/cgroup.procs"), "").expect("write");
        fs::write(t.join("unified/cgroup.procs"), "").expect("write");
        assert_eq!(
            hierarchies_under(&t),
            vec![t.join("systemd"), t.join("unified")]
        );
        // Pure v2: the root itself.
        fs::write(t.join("cgroup.controllers"), "").expect("write");
        assert_eq!(hierarchies_under(&t), vec![t.clone()]);
        fs::remove_dir_all(&t).expect("clean");
    }
}
