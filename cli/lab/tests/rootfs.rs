//! The cached base root file system (real debootstrap, as root). The first run on a
//! machine builds it (a few minutes) and prints the time; later runs find it cached.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[test]
#[ignore = "needs root: debootstraps the lab's root file system"]
fn rootfs_is_built_once_with_comparison_packages_disabled() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    hadeploy_testkit::require_root();
    let cache = Path::new("/var/cache/hadeploy");
    let cold = !hadeploy_lab::rootfs_ready(cache);
    let t = Instant::now();
    let root = hadeploy_lab::ensure_rootfs(cache).expect("rootfs");
    let first = t.elapsed();
    eprintln!(
        "TIMING rootfs {} in {:.1} s",
        if cold { "cold build" } else { "cached" },
        first.as_secs_f64()
    );

    let t = Instant::now();
    assert_eq!(
        hadeploy_lab::ensure_rootfs(cache).expect("rootfs again"),
        root
    );
    assert!(
        t.elapsed().as_secs() < 2,
        "second call must reuse the cache"
    );

    for bin in [
        "usr/sbin/nginx",
        "usr/sbin/keepalived",
        "usr/sbin/sshd",
        "usr/bin/curl",
    ] {
        assert!(root.join(bin).exists(), "{bin} missing from the rootfs");
    }
    // nginx and keepalived are installed but not started at boot.
    for unit in ["nginx", "keepalived"] {
        let out = Command::new("systemctl")
            .args(["--root"])
            .arg(&root)
            .args(["is-enabled", unit])
            .output()
            .expect("systemctl");
        let state = String::from_utf8_lossy(&out.stdout);
        assert!(
            state.trim() == "disabled" || state.trim() == "masked",
            "{unit} is {state}"
        );
    }
    // No shared host keys: each node gets its own before boot.
    let shared = std::fs::read_dir(root.join("etc/ssh"))
        .expect("etc/ssh")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ssh_host_"))
        .count();
    assert_eq!(shared, 0);
}
