//! Bringing a lab up: idempotent, rebuilding a half-there lab, tearing down on failure.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use crate::boot::wait_ready;
use crate::down::down_dir;
use crate::error::{IoContext, LabError, Result};
use crate::exec::mux_fits;
use crate::host::ensure_host_packages;
use crate::lab::Lab;
use crate::net;
use crate::node::Node;
use crate::rootfs::ensure_rootfs_with;
use crate::spec::{CLIENT_HOST, LabSpec, bridge_name, host_link_name, lab_addr};
use crate::sshkeys::{SshHost, ensure_keypair, write_known_hosts, write_ssh_config};
use hadeploy_progress::Progress;

/// Bring a lab up, or return it when it is already up and healthy. A lab left half-up
/// (crash, killed nodes, spec change) is torn down and rebuilt. On failure everything
/// created is torn down again, unless HADEPLOY_LAB_KEEP_ON_FAILURE=1 (for debugging).
pub fn up(spec: &LabSpec) -> Result<Lab> {
    up_with(spec, &Progress::hidden())
}

/// [`up`], reporting its long steps (root file system build, boot) to `progress`.
pub fn up_with(spec: &LabSpec, progress: &Progress) -> Result<Lab> {
    spec.validate()?;
    ensure_host_packages(&spec.cache_dir, progress)?;
    crate::host::ensure_host_limits()?;
    let rootfs = ensure_rootfs_with(&spec.cache_dir, progress)?;

    let previous = Lab::load(&spec.state_dir).ok();
    if let Some(lab) = &previous {
        if lab.matches(spec) && lab.status().healthy() {
            tracing::info!(lab = %lab.name, "already up");
            return Ok(lab.clone());
        }
        tracing::info!(lab = %spec.name, "lab present but not healthy or changed: rebuilding");
    }
    let step = previous.is_some().then(|| {
        progress.step(format!(
            "removing lab {} (not healthy, or changed)",
            spec.name
        ))
    });
    down_dir(&spec.name, &spec.state_dir)?;
    if let Some(s) = step {
        s.done();
    }

    let started = Instant::now();
    match create(spec, rootfs, progress) {
        Ok(lab) => {
            tracing::info!(lab = %lab.name, secs = started.elapsed().as_secs_f64(), "up");
            Ok(lab)
        }
        Err(e) => {
            if std::env::var("HADEPLOY_LAB_KEEP_ON_FAILURE").as_deref() == Ok("1") {
                tracing::error!(%e, "bring-up failed; leaving the lab for inspection");
            } else if let Err(td) = down_dir(&spec.name, &spec.state_dir) {
                tracing::error!(%td, "tear-down after a failed bring-up");
            }
            Err(e)
        }
    }
}

fn choose_subnet(spec: &LabSpec) -> Result<u8> {
    let bridge = bridge_name(&spec.name);
    let addrs = net::ipv4_addresses()?;
    let taken = |i: u8| {
        addrs
            .iter()
            .any(|(ifname, a)| *ifname != bridge && a.octets()[..3] == [10, 77, i])
    };
    if let Some(i) = spec.subnet_index {
        if taken(i) {
            return Err(LabError::Spec(format!(
                "subnet 10.77.{i}.0/24 is already in use"
            )));
        }
        return Ok(i);
    }
    let start = crate::spec::preferred_subnet_index(&spec.name);
    (0..254u16)
        .map(|k| ((u16::from(start) - 1 + k) % 254) as u8 + 1)
        .find(|&i| !taken(i))
        .ok_or_else(|| LabError::Spec("no free subnet in 10.77.0.0/16".into()))
}

fn create(spec: &LabSpec, rootfs: PathBuf, progress: &Progress) -> Result<Lab> {
    let index = choose_subnet(spec)?;
    let sd = &spec.state_dir;
    fs::create_dir_all(sd).step(|| format!("create {}", sd.display()))?;
    fs::set_permissions(sd, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .step(|| format!("chmod {}", sd.display()))?;

    let nodes: Vec<Node> = spec
        .node_plan()
        .into_iter()
        .map(|(name, role, host)| {
            let link = host_link_name(&name);
            Node::new(sd, &name, role, lab_addr(index, host), link)
        })
        .collect();
    let lab = Lab {
        name: spec.name.clone(),
        state_dir: sd.clone(),
        cache_dir: spec.cache_dir.clone(),
        rootfs,
        bridge: bridge_name(&spec.name),
        subnet_index: index,
        subnet: format!("{}/24", lab_addr(index, 0)),
        prefix_len: 24,
        bridge_address: lab_addr(index, 1),
        vips: (0..spec.vips)
            .map(|i| lab_addr(index, 100 + i as u8))
            .collect(),
        client_address: lab_addr(index, CLIENT_HOST),
        ssh_key: sd.join("id_ed25519"),
        known_hosts: sd.join("known_hosts"),
        ssh_config: sd.join("ssh_config"),
        boot_timeout_secs: spec.boot_timeout.as_secs(),
        nodes,
    };
    // Written first so that a crash from here on leaves a description for `down`.
    lab.save()?;

    net::create_bridge(&lab.bridge, lab.bridge_address)?;
    let public = ensure_keypair(
        "lab key",
        &lab.ssh_key,
        &format!("hadeploy-lab-{}", lab.name),
    )?;
    let mut hosts = format!(
        "127.0.0.1 localhost\n{} {}-host\n",
        lab.bridge_address, lab.name
    );
    for n in &lab.nodes {
        hosts.push_str(&format!("{} {}\n", n.address, n.name));
    }
    let step = progress.step(format!(
        "lab {}: starting {} nodes on bridge {} ({})",
        lab.name,
        lab.nodes.len(),
        lab.bridge,
        lab.subnet
    ));
    let mut ssh_hosts = Vec::new();
    for n in &lab.nodes {
        n.mount(&lab.rootfs)?;
        let host_key = n.prepare(&public, &hosts)?;
        ssh_hosts.push(SshHost {
            name: &n.name,
            address: n.address,
            host_key,
        });
    }
    write_known_hosts(&lab.known_hosts, &ssh_hosts)?;
    let control_dir = mux_fits(sd).then_some(sd.as_path());
    write_ssh_config(
        &lab.ssh_config,
        &ssh_hosts,
        &lab.ssh_key,
        &lab.known_hosts,
        control_dir,
    )?;

    // Boot all, then wait: containers boot in parallel. The timeout covers both.
    let deadline = Instant::now() + spec.boot_timeout;
    for n in &lab.nodes {
        n.boot(&lab.bridge)?;
    }
    for (i, n) in lab.nodes.iter().enumerate() {
        step.detail(&format!("{i}/{} ready", lab.nodes.len()));
        wait_ready(&lab.ssh_config, n, deadline)?;
    }
    step.done();
    Ok(lab)
}
