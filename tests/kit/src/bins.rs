//! The binaries under test, and proof that they are current.
//!
//! Tests run binaries that `cargo build` made (the test binary's own cargo
//! run does not build other packages' binaries). A binary older than one of
//! its sources is a stale build: testing it would pass or fail for code that
//! is not in the tree. Cargo writes the list of every source file a binary
//! was built from next to it (`<binary>.d`); a binary is current when it is
//! newer than all of them, the check cargo itself makes. Checking instead of
//! building keeps tests parallel-safe (no second cargo waiting on the build
//! lock `cargo test` holds) and costs a few hundred `stat`s per binary, once
//! per test process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// What `.ci/test` runs before the tests; a stale or missing binary's
/// failure names the one that rebuilds it.
const BUILD_WORKSPACE: &str = "cargo build --workspace";
const BUILD_RUNTIME: &str =
    "cargo build --release --target x86_64-unknown-linux-musl -p hadeploy-runtime";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/kit lies two levels below the repository root")
        .to_path_buf()
}

/// The target directory the running test binary was built into
/// (`<target>/<profile>/deps/<test>-<hash>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binaries live in <target>/<profile>/deps")
        .to_path_buf()
}

/// A workspace binary from the profile directory of this test binary
/// (`cargo build --workspace`); fails if it is missing or stale.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps");
    let path = dir.join(name);
    assert_current(&path, BUILD_WORKSPACE);
    path
}

/// The static runtime `hadeploy apply` pushes: `$HADEPLOY_RUNTIME` if set
/// (taken as given), else the musl release build in this target directory,
/// which must be current.
pub fn runtime_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HADEPLOY_RUNTIME") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "HADEPLOY_RUNTIME={} is no file", p.display());
        return p;
    }
    let path = target_dir().join("x86_64-unknown-linux-musl/release/hadeploy-runtime");
    assert_current(&path, BUILD_RUNTIME);
    path
}

/// Panics, naming `build`, unless `binary` exists and is newer than every
/// source cargo built it from.
fn assert_current(binary: &Path, build: &str) {
    static CHECKED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    if checked.contains(binary) {
        return;
    }
    if let Err(why) = current(binary) {
        panic!(
            "{}: {why}; run `{build}` before the tests (.ci/test does)",
            binary.display()
        );
    }
    checked.insert(binary.to_path_buf());
}

/// Why a binary cannot be tested.
#[derive(Debug, PartialEq, thiserror::Error)]
enum NotCurrent {
    #[error("not found ({0:?})")]
    Missing(std::io::ErrorKind),
    #[error("cannot tell whether it is current: {0} unreadable ({1:?})")]
    NoDepinfo(PathBuf, std::io::ErrorKind),
    #[error("{0} lists no sources")]
    NoSources(PathBuf),
    #[error("stale: {0} changed after it was built")]
    Changed(PathBuf),
    #[error("stale: its source {0} is gone")]
    Gone(PathBuf),
}

fn current(binary: &Path) -> Result<(), NotCurrent> {
    let built = mtime(binary).map_err(|e| NotCurrent::Missing(e.kind()))?;
    let depinfo = PathBuf::from(format!("{}.d", binary.display()));
    let text = std::fs::read_to_string(&depinfo)
        .map_err(|e| NotCurrent::NoDepinfo(depinfo.clone(), e.kind()))?;
    let sources = sources(&text);
    if sources.is_empty() {
        return Err(NotCurrent::NoSources(depinfo));
    }
    for src in sources {
        match mtime(&src) {
            Ok(t) if t > built => return Err(NotCurrent::Changed(src)),
            Ok(_) => {}
            Err(_) => return Err(NotCurrent::Gone(src)),
        }
    }
    Ok(())
}

fn mtime(p: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(p)?.modified()
}

/// The prerequisites of a Makefile-style dep-info file (`target: a b \` ...,
/// spaces in paths escaped as `\ `).
fn sources(depinfo: &str) -> Vec<PathBuf> {
    let joined = depinfo.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut word = String::new();
        let mut chars = deps.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => word.extend(chars.next()),
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut word)));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(PathBuf::from(word));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depinfo_sources_with_escaped_spaces_and_continuations() {
        let d = "/t/debug/hadeploy: /r/cli/src/main.rs /r/a\\ b.rs \\\n /r/c.rs\n\n/r/c.rs:\n";
        assert_eq!(
            sources(d),
            ["/r/cli/src/main.rs", "/r/a b.rs", "/r/c.rs"]
                .map(PathBuf::from)
                .to_vec()
        );
    }

    #[test]
    fn a_source_newer_than_the_binary_is_stale_and_the_reverse_current() {
        let dir = std::env::temp_dir().join(format!("testkit-bins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (bin, src) = (dir.join("b"), dir.join("s.rs"));
        std::fs::write(&src, "").expect("src");
        std::fs::write(&bin, "").expect("bin");
        let d = format!("{}: {}\n", bin.display(), src.display());
        std::fs::write(dir.join("b.d"), d).expect("depinfo");
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        let f = std::fs::File::options()
            .write(true)
            .open(&src)
            .expect("open");
        f.set_modified(old).expect("set mtime");
        assert_eq!(current(&bin), Ok(()));
        let f = std::fs::File::options()
            .write(true)
            .open(&bin)
            .expect("open");
        f.set_modified(old - std::time::Duration::from_secs(60))
            .expect("set mtime");
        assert_eq!(current(&bin), Err(NotCurrent::Changed(src.clone())));
        std::fs::remove_file(&src).expect("rm");
        assert_eq!(current(&bin), Err(NotCurrent::Gone(src)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
