//! vagrant/Vagrantfile is valid for Debian's vagrant (offline: no box is
//! downloaded, no VM started).

use hadeploy_testkit::{repo, stderr, stdout};

#[test]
fn vagrantfile_validates() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        repo().join("vagrant/Vagrantfile"),
        dir.path().join("Vagrantfile"),
    )
    .expect("copy");
    let o = std::process::Command::new("vagrant")
        .arg("validate")
        .current_dir(dir.path())
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant is installed by .ci/setup-test (apt-get install vagrant vagrant-libvirt)");
    assert!(
        o.status.success(),
        "vagrant validate failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("validated successfully"),
        "{}",
        stdout(&o)
    );
}
