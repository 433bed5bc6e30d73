//! Overlay mounts of node roots and discovery of leftover mounts from the mount table
//! (not from our own records, which a crash may have lost).

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::{cmd, output, run};
use crate::error::{LabError, Result};

/// Mount `lower` + `upper` (with `work`) as an overlay on `merged`.
pub(crate) fn mount_overlay(
    node: &str,
    lower: &Path,
    upper: &Path,
    work: &Path,
    merged: &Path,
) -> Result<()> {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    run(
        &format!("node {node}: mount overlay"),
        cmd("mount", ["-t", "overlay", "overlay", "-o"])
            .arg(opts)
            .arg(merged),
    )?;
    Ok(())
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

pub(crate) fn is_mounted(path: &Path) -> bool {
    mounts_under(path).iter().any(|p| p == path)
}

/// Unmount everything at or below `dir`; a busy mount is detached lazily so tear-down
/// always makes progress. Returns the problems met.
pub(crate) fn unmount_all_under(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    // Stacked mounts on one point need one umount each: loop a few rounds.
    for _ in 0..4 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return problems;
        }
        for m in mounts {
            let step = format!("unmount {}", m.display());
            match output(&step, cmd("umount", [&m])) {
                Ok(o) if o.status.success() => {}
                _ => {
                    tracing::warn!(mount = %m.display(), "umount failed, detaching lazily");
                    if let Err(e) = run(&step, cmd("umount", ["-l".as_ref(), m.as_os_str()])) {
                        problems.push(e.to_string());
                    }
                }
            }
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        problems.push(format!("mounts still present: {left:?}"));
    }
    problems
}

/// Remove a directory tree, refusing while anything below it is still mounted (a
/// recursive delete through a mount would reach into what is mounted there).
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(LabError::State {
            path: dir.to_path_buf(),
            message: format!("not removed: still mounted below it: {left:?}"),
        });
    }
    fs::remove_dir_all(dir).map_err(|e| LabError::io(format!("remove {}", dir.display()), e))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let octal = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }
}
