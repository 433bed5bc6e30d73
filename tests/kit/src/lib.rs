//! The test kit: what the workspace's tests (and bench/) share.
//!
//! - [`netns`]: the one network-namespace harness (unique names, torn down
//!   on drop and on panic, nothing in the root namespace).
//! - [`is_root`] / [`require_root`]: tests that need root are
//!   `#[ignore = "needs root: ..."]`; run with `--include-ignored` they call
//!   [`require_root`] so a run without root fails saying why.
//! - [`bin`] / [`runtime_path`]: the binaries under test, checked against
//!   cargo's own list of their sources, so a stale build fails with the
//!   command that rebuilds it instead of being tested silently.

mod bins;
pub mod netns;

use std::path::Path;
use std::process::{Command, Output};

pub use bins::{bin, repo, runtime_path, target_dir};

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Fails the test unless it runs as root. For `#[ignore = "needs root: ..."]`
/// tests, which `.ci/test` runs as root with `--include-ignored`.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root (it is #[ignore]d for that reason): run it as root with \
         `-- --include-ignored`, as .ci/test does"
    );
}

/// Fails the test unless `path` (a tool the test runs against) exists;
/// `.ci/setup-test` installs it from Debian's `package`.
pub fn require_tool(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: install Debian's `{package}` (`bash .ci/setup-test` installs every \
         tool the tests use)"
    );
}

/// Runs a workspace binary (see [`bin`]) with arguments in the repository
/// root; returns its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"))
}

/// A command's stdout as text (lossy).
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text (lossy).
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
