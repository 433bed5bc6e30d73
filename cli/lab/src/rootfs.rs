//! The shared base root file system: Debian bookworm built once with debootstrap into the
//! cache, then used read-only as the lower layer of every node's overlay.
//!
//! The build happens in a temporary directory that is renamed into place only when
//! complete (with a marker file listing its packages), so a crashed build is never
//! reused. A lock file serialises concurrent builds (two test binaries at once). The
//! raw output of every build command (debootstrap, apt-get in the chroot) goes to
//! `<cache>/<ROOTFS_DIR>.log`, which a failed build names; progress goes to the
//! caller's [`Progress`].

use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::cmd::{cmd, run, run_logged};
use crate::error::{IoContext, LabError, Result};
use crate::mirror::host_debian_mirror;
use crate::mounts::{remove_tree, unmount_all_under};
use hadeploy_progress::Progress;

/// Debian suite of the lab's nodes.
pub const SUITE: &str = "bookworm";
/// Directory name of the cached root file system; bump the suffix whenever the recipe
/// below changes, so an old cache is not mistaken for the new one.
pub const ROOTFS_DIR: &str = "rootfs-bookworm-v1";
/// Marker written last; its presence means the build completed.
pub const MARKER: &str = ".hadeploy-rootfs";
/// Packages debootstrap includes.
pub const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "openssh-server",
    "iproute2",
    "dbus",
    "procps",
    "curl",
    "ca-certificates",
    "iputils-ping",
    "kmod",
];
/// Packages installed afterwards for comparison runs; installed but disabled at boot.
pub const COMPARISON_PACKAGES: &[&str] = &["nginx", "keepalived"];

/// Path of the cached root file system below `cache_dir`.
pub fn rootfs_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(ROOTFS_DIR)
}

fn marker_text(mirror: &str) -> String {
    format!(
        "suite={SUITE}\nmirror={mirror}\nbase={}\ncomparison={}\n",
        BASE_PACKAGES.join(","),
        COMPARISON_PACKAGES.join(",")
    )
}

/// The build log below `cache_dir` (kept after the build; the next build replaces it).
pub fn rootfs_log_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(format!("{ROOTFS_DIR}.log"))
}

/// Is a complete root file system cached?
pub fn rootfs_ready(cache_dir: &Path) -> bool {
    rootfs_path(cache_dir).join(MARKER).is_file()
}

/// Return the cached root file system, building it first when absent.
pub fn ensure_rootfs(cache_dir: &Path) -> Result<PathBuf> {
    ensure_rootfs_with(cache_dir, &Progress::hidden())
}

/// [`ensure_rootfs`], reporting the build's steps to `progress`.
pub fn ensure_rootfs_with(cache_dir: &Path, progress: &Progress) -> Result<PathBuf> {
    let final_dir = rootfs_path(cache_dir);
    if rootfs_ready(cache_dir) {
        return Ok(final_dir);
    }
    fs::create_dir_all(cache_dir).step(|| format!("create cache {}", cache_dir.display()))?;
    let lock_path = cache_dir.join(".rootfs.lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .step(|| format!("open {}", lock_path.display()))?;
    let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((file, _)) => {
            // Another process is building: wait for it, then use its result.
            let waiting = progress.step(format!(
                "lab root file system: waiting for another build ({})",
                lock_path.display()
            ));
            let l = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| {
                LabError::io(format!("lock {}", lock_path.display()), e.into())
            })?;
            waiting.done();
            l
        }
    };
    // Another process may have finished the build while we waited for the lock.
    if rootfs_ready(cache_dir) {
        return Ok(final_dir);
    }
    if final_dir.exists() {
        // Without the marker it is not ours to trust (only a rename publishes it).
        remove_tree(&final_dir)?;
    }
    remove_stale_builds(cache_dir)?;

    let tmp = cache_dir.join(format!("{ROOTFS_DIR}.tmp-{}", std::process::id()));
    let log = rootfs_log_path(cache_dir);
    fs::write(&log, "").step(|| format!("create {}", log.display()))?;
    let started = std::time::Instant::now();
    let mirror = host_debian_mirror(SUITE);
    tracing::info!(dir = %tmp.display(), %mirror, log = %log.display(), "building base root file system");
    let built = build(&tmp, &mirror, &log, progress);
    if let Err(e) = built {
        keep_debootstrap_log(&tmp, &log);
        let _ = unmount_all_under(&tmp);
        let _ = remove_tree(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &final_dir)
        .step(|| format!("rename {} to {}", tmp.display(), final_dir.display()))?;
    drop(lock);
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        "base root file system ready"
    );
    Ok(final_dir)
}

/// debootstrap keeps its detailed log inside the root it was building, which a failed
/// build removes: append it to the build log first.
fn keep_debootstrap_log(root: &Path, log: &Path) {
    let inner = root.join("debootstrap/debootstrap.log");
    if let Ok(text) = fs::read(&inner)
        && let Ok(mut f) = OpenOptions::new().append(true).open(log)
    {
        use std::io::Write as _;
        let _ = writeln!(f, "==> {} (debootstrap's own log)", inner.display());
        let _ = f.write_all(&text);
    }
}

fn remove_stale_builds(cache_dir: &Path) -> Result<()> {
    let prefix = format!("{ROOTFS_DIR}.tmp-");
    let entries = fs::read_dir(cache_dir).step(|| format!("list {}", cache_dir.display()))?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::warn!(dir = %e.path().display(), "removing an unfinished build");
            let _ = unmount_all_under(&e.path());
            remove_tree(&e.path())?;
        }
    }
    Ok(())
}

fn build(root: &Path, mirror: &str, log: &Path, progress: &Progress) -> Result<()> {
    let step = progress.step(format!(
        "lab root file system: debootstrap {SUITE} from {mirror} (once, cached in {})",
        root.parent().unwrap_or(root).display()
    ));
    run_logged(
        "rootfs: debootstrap",
        cmd("debootstrap", ["--variant=minbase"])
            .arg(format!("--include={}", BASE_PACKAGES.join(",")))
            .arg(SUITE)
            .arg(root)
            .arg(mirror),
        log,
    )?;
    step.done();
    install_comparison_packages(root, log, progress)?;
    let step = progress.step("lab root file system: configuring");
    configure(root)?;
    fs::write(root.join(MARKER), marker_text(mirror)).step(|| "rootfs: write marker".into())?;
    step.done();
    Ok(())
}

/// nginx and keepalived for side-by-side comparisons. A policy-rc.d denying service
/// starts is essential: without it their postinst scripts would start nginx (port 80)
/// and keepalived in the host's own network namespace.
fn install_comparison_packages(root: &Path, log: &Path, progress: &Progress) -> Result<()> {
    let step = progress.step(format!(
        "lab root file system: apt-get install {}",
        COMPARISON_PACKAGES.join(" ")
    ));
    fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"))
        .step(|| "rootfs: copy /etc/resolv.conf".into())?;
    let policy = root.join("usr/sbin/policy-rc.d");
    write_mode(
        &policy,
        "#!/bin/sh\n# hadeploy-lab build: never start services\nexit 101\n",
        0o755,
    )?;
    let apt = |step: &str, args: &[&str]| {
        run_logged(
            step,
            cmd("chroot", [root.as_os_str()])
                .arg("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .env("LC_ALL", "C"),
            log,
        )
    };
    apt("rootfs: apt-get update", &["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend_from_slice(COMPARISON_PACKAGES);
    if let Err(first) = apt("rootfs: apt-get install", &install) {
        // A half-configured package blocks the next install: repair and retry once.
        tracing::warn!(%first, "retrying after apt-get -f install");
        apt("rootfs: apt-get -f install", &["-f", "install", "-y"])?;
        apt("rootfs: apt-get install (retry)", &install)?;
    }
    apt("rootfs: apt-get clean", &["clean"])?;
    fs::remove_file(&policy).step(|| "rootfs: remove policy-rc.d".into())?;
    step.done();
    Ok(())
}

/// Boot-time configuration shared by every node.
fn configure(root: &Path) -> Result<()> {
    let systemctl = |step: &str, args: &[&str]| {
        run(
            step,
            cmd("systemctl", ["--root".as_ref(), root.as_os_str()]).args(args),
        )
    };
    // Installed for comparisons only: they must not start on boot (tests start them).
    systemctl(
        "rootfs: disable nginx/keepalived",
        &["disable", "nginx", "keepalived"],
    )?;
    // Static addresses come from a per-node .network file (see node.rs).
    systemctl("rootfs: enable networkd", &["enable", "systemd-networkd"])?;
    systemctl("rootfs: enable ssh", &["enable", "ssh"])?;
    // Each node gets its own host keys before boot; shared ones would defeat strict
    // known_hosts entries.
    for e in fs::read_dir(root.join("etc/ssh")).step(|| "rootfs: list etc/ssh".into())? {
        let e = e.step(|| "rootfs: list etc/ssh".into())?;
        if e.file_name().to_string_lossy().starts_with("ssh_host_") {
            fs::remove_file(e.path()).step(|| format!("rootfs: remove {}", e.path().display()))?;
        }
    }
    write_mode(
        &root.join("etc/ssh/sshd_config.d/10-hadeploy-lab.conf"),
        "# hadeploy lab: one per-node ed25519 host key, keys only\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n\
         PasswordAuthentication no\n\
         PermitRootLogin prohibit-password\n",
        0o644,
    )?;
    // A per-node machine-id is written before boot; an empty one here would make
    // systemd treat each boot as a first boot and apply presets (re-enabling services).
    write_mode(&root.join("etc/machine-id"), "", 0o444)?;
    Ok(())
}

pub(crate) fn write_mode(path: &Path, content: &str, mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).step(|| format!("create {}", dir.display()))?;
    }
    fs::write(path, content).step(|| format!("write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .step(|| format!("chmod {}", path.display()))
}
