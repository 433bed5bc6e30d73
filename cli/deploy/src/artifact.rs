//! The runtime binary pushed to nodes: found, checked and hashed once.
//!
//! CentOS 7 has glibc 2.17; a binary linked against a newer glibc does not
//! start there. Only a static x86_64 ELF (no program interpreter) is pushed.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(
        "no runtime binary found (looked in: {0}); build it with `cargo build --release --target x86_64-unknown-linux-musl -p hadeploy-runtime` or pass --runtime PATH"
    )]
    NotFound(String),
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: {reason}; CentOS 7 (glibc 2.17) needs a static x86_64 build (x86_64-unknown-linux-musl)"
    )]
    /// `reason` is in the message, not a source: callers print chains.
    NotStatic { path: PathBuf, reason: ElfError },
}

/// Why a file is not a static x86_64 executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF executable")]
    NotElf,
    #[error("not a 64-bit little-endian ELF")]
    NotElf64Le,
    #[error("built for ELF machine {0}, not x86_64 (62)")]
    Machine(u16),
    /// Which part ended early: `ELF header`, `program headers`.
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("dynamically linked (it has a program interpreter, e.g. a glibc loader)")]
    Dynamic,
}

/// Candidate locations, in order: explicit, `$HADEPLOY_RUNTIME`, next to
/// this executable, and the musl build directories of a cargo checkout.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("HADEPLOY_RUNTIME") {
        out.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        out.push(dir.join("hadeploy-runtime.musl"));
        // target/<profile>/hadeploy -> target/x86_64-unknown-linux-musl/<profile>/
        if let Some(target) = dir.parent() {
            for profile in ["release", "debug"] {
                out.push(
                    target
                        .join("x86_64-unknown-linux-musl")
                        .join(profile)
                        .join("hadeploy-runtime"),
                );
            }
        }
        out.push(dir.join("hadeploy-runtime"));
    }
    out
}

pub fn find(explicit: Option<&Path>) -> Result<Artifact, ArtifactError> {
    let list = candidates(explicit);
    let path = list.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        ArtifactError::NotFound(
            list.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    })?;
    load(&path)
}

pub fn load(path: &Path) -> Result<Artifact, ArtifactError> {
    let bytes = std::fs::read(path).map_err(|source| ArtifactError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if let Err(reason) = check_static_x86_64(&bytes) {
        return Err(ArtifactError::NotStatic {
            path: path.to_path_buf(),
            reason,
        });
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(Artifact {
        path: path.to_path_buf(),
        bytes: std::sync::Arc::new(bytes),
        sha256,
    })
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// A static executable has no PT_INTERP (the dynamic loader path) and no
/// DT_NEEDED libraries; static-pie binaries have PT_DYNAMIC but no interp.
pub fn check_static_x86_64(b: &[u8]) -> Result<(), ElfError> {
    const PT_INTERP: u32 = 3;
    const HEADER: ElfError = ElfError::Truncated("ELF header");
    if b.get(0..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err(ElfError::NotElf64Le);
    }
    let machine = u16_at(b, 18).ok_or(HEADER)?;
    if machine != 62 {
        return Err(ElfError::Machine(machine));
    }
    // An offset past the address space is past the end of the file too.
    let phoff = usize::try_from(u64_at(b, 32).ok_or(HEADER)?)
        .map_err(|_| ElfError::Truncated("program headers"))?;
    let phentsize = usize::from(u16_at(b, 54).ok_or(HEADER)?);
    let phnum = usize::from(u16_at(b, 56).ok_or(HEADER)?);
    for i in 0..phnum {
        let p_type =
            u32_at(b, phoff + i * phentsize).ok_or(ElfError::Truncated("program headers"))?;
        if p_type == PT_INTERP {
            return Err(ElfError::Dynamic);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_this_dynamically_linked_test_binary() {
        let exe = std::env::current_exe().expect("exe");
        let bytes = std::fs::read(exe).expect("read");
        let err = check_static_x86_64(&bytes).expect_err("test binaries link glibc dynamically");
        assert_eq!(err, ElfError::Dynamic);
        assert!(err.to_string().contains("dynamically linked"), "{err}");
    }

    #[test]
    fn rejects_non_elf() {
        assert_eq!(check_static_x86_64(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(
            check_static_x86_64(b"\x7fELF\x02\x01").map_err(|e| e.to_string()),
            Err("truncated ELF header".to_string())
        );
    }
}
