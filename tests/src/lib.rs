//! Support for the integration test binary: finding the built binaries and
//! the repository's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A binary of the workspace, built by `cargo build` into the same target
/// directory as this test binary (target/<profile>/deps/integration-*).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

/// Runs a workspace binary with arguments; returns its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("spawn")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// End-to-end tests need root (containers, namespaces) and the static
/// runtime that `hadeploy apply` pushes. Missing either is a failure with
/// the fix in the message, never a silent skip.
pub fn require_root_and_runtime() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    assert!(
        uid.split_whitespace().nth(1) == Some("0"),
        "this end-to-end test needs root (it creates containers and network namespaces)"
    );
    let runtime = runtime_path();
    assert!(
        runtime.exists(),
        "{} missing: build it with `cargo build --release --target x86_64-unknown-linux-musl -p hadeploy-runtime`",
        runtime.display()
    );
}

/// The static runtime built by `.ci/test` in this target directory.
pub fn runtime_path() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let target = exe.ancestors().nth(3).expect("target dir");
    target.join("x86_64-unknown-linux-musl/release/hadeploy-runtime")
}
