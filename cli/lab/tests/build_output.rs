//! Where the root file system build's output goes: into the build log, never onto the
//! caller's stdout (`inv=$(hadeploy lab up)` must capture the inventory path only), and a
//! failed build names its log once instead of printing it.
//!
//! debootstrap here is a stand-in script put first on PATH (labelled as such): it writes
//! debootstrap-like lines on stdout and stderr and fails, which is what matters for where
//! output goes and for the error. The real debootstrap runs in the cold-path CI step
//! (.ci/cold-path) and in tests/rootfs.rs. No root needed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHILD: &str = "HD_BUILD_OUTPUT_CHILD_CACHE";
const TEST: &str = "failed_build_keeps_stdout_clean_and_names_its_log_once";

const FAKE_DEBOOTSTRAP: &str = r#"#!/bin/sh
# Stand-in for debootstrap (test only): noisy on both streams, then fails.
# Arguments as the lab passes them: --variant=minbase --include=... SUITE ROOT MIRROR.
root=$4
echo "I: Retrieving InRelease"
echo "I: Validating Packages" >&2
mkdir -p "$root/debootstrap"
echo "detail only debootstrap's own log has" > "$root/debootstrap/debootstrap.log"
echo "E: Couldn't download packages: stand-in failure" >&2
exit 1
"#;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hd-build-output-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn failed_build_keeps_stdout_clean_and_names_its_log_once() {
    // Child: the build itself, with the stand-in first on PATH.
    if let Ok(cache) = std::env::var(CHILD) {
        let err = hadeploy_lab::ensure_rootfs(Path::new(&cache)).expect_err("stand-in fails");
        eprintln!("BUILD-ERROR: {err}");
        return;
    }

    let dir = temp_dir("parent");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let fake = bin.join("debootstrap");
    std::fs::write(&fake, FAKE_DEBOOTSTRAP).expect("write stand-in");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cache = dir.join("cache");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, &cache)
        .env("PATH", path)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");

    // The defect: debootstrap's output on stdout.
    for noise in ["I: Retrieving", "I: Validating", "E: Couldn't"] {
        assert!(!stdout.contains(noise), "build output on stdout:\n{stdout}");
    }
    let error = stderr
        .lines()
        .find_map(|l| l.strip_prefix("BUILD-ERROR: "))
        .unwrap_or_else(|| panic!("no error reported:\n{stderr}"));

    // The error names the log once, says what failed, and does not carry the log.
    // `<cache>/<ROOTFS_DIR>.log` (hadeploy_lab::rootfs_log_path).
    let log = cache.join(format!("{}.log", hadeploy_lab::ROOTFS_DIR));
    let log_s = log.to_string_lossy();
    assert_eq!(error.matches(&*log_s).count(), 1, "{error}");
    assert!(error.contains("rootfs: debootstrap"), "{error}");
    assert!(
        error.contains("E: Couldn't download packages: stand-in failure"),
        "{error}"
    );
    assert!(!error.contains("I: Retrieving"), "{error}");

    // The log holds everything, debootstrap's own log included (its build dir is gone).
    let text = std::fs::read_to_string(&log).expect("build log");
    for line in [
        "I: Retrieving InRelease",
        "I: Validating Packages",
        "E: Couldn't download packages",
        "detail only debootstrap's own log has",
    ] {
        assert!(
            text.contains(line),
            "{line:?} missing from the log:\n{text}"
        );
    }
    assert!(!hadeploy_lab::rootfs_ready(&cache));
    let left: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "unfinished build left: {left:?}");
    std::fs::remove_dir_all(&dir).expect("clean");
}
