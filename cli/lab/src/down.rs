//! Tearing a lab down from what is found on the host (not only from its records), so
//! it works after a crash and is safe to repeat.

use std::fs;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::cgroup;
use crate::error::{LabError, Result};
use crate::lab::LAB_JSON;
use crate::mounts::{remove_tree, unmount_all_under};
use crate::net;
use crate::procs;
use crate::spec::{LabSpec, bridge_name, client_link_name, client_netns_name, is_node_of};

/// How long a container gets to shut down on SIGTERM before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// Tear down lab `name` whose state lives in `state_dir`: stop its containers (TERM,
/// then KILL), remove its client namespace, links and bridge, unmount its overlays and
/// delete the state (the rootfs cache stays). Leftovers are discovered from /proc, the
/// link list and the mount table, so this works after a crash and is safe to repeat.
pub fn down(spec: &LabSpec) -> Result<()> {
    spec.validate()?;
    down_dir(&spec.name, &spec.state_dir)
}

/// [`down`] from a lab name and state directory only.
pub fn down_dir(name: &str, state_dir: &Path) -> Result<()> {
    crate::spec::validate_name(name)?;
    if !state_dir.is_absolute() || state_dir.parent().is_none() {
        return Err(LabError::Spec(format!(
            "state_dir must be an absolute path below / ({})",
            state_dir.display()
        )));
    }
    let mut problems = Vec::new();

    // Containers: from /proc (whatever the pid files say) by directory or machine name.
    let mut pids: Vec<i32> = procs::nspawn_processes()
        .into_iter()
        .filter(|(_, machine, dir)| {
            Path::new(dir).starts_with(state_dir) || is_node_of(name, machine)
        })
        .map(|(pid, _, _)| pid)
        .collect();
    let mut inits = Vec::new();
    for &p in &pids {
        inits.extend(procs::children(p));
    }
    pids.sort_unstable();
    pids.dedup();
    if !pids.is_empty() {
        tracing::info!(lab = name, ?pids, "stopping containers");
        let left = procs::terminate(&pids, STOP_GRACE);
        // A container init whose nspawn died without taking it along: power it off.
        for &i in inits.iter().filter(|&&i| procs::is_alive(i)) {
            procs::signal(i, Signal::SIGKILL);
        }
        if !left.is_empty() {
            problems.push(format!("systemd-nspawn still alive: {left:?}"));
        }
    }

    // SSH master connections (and stray clients) of this lab.
    let ssh = procs::ssh_processes_under(state_dir);
    if !ssh.is_empty() {
        procs::terminate(&ssh, Duration::from_secs(2));
    }

    // Client namespace and whatever runs in it (load generators the tests started).
    let ns = client_netns_name(name);
    if net::netns_exists(&ns) {
        let in_ns = net::netns_pids(&ns);
        for &p in &in_ns {
            procs::signal(p, Signal::SIGKILL);
        }
        procs::wait_dead(&in_ns, Duration::from_secs(5));
        if let Err(e) = net::delete_netns(&ns) {
            problems.push(e.to_string());
        }
    }

    // Links: the client veth, vb-* of our nodes (normally gone with their containers),
    // then the bridge.
    match net::link_names() {
        Ok(links) => {
            for l in links {
                let ours = l == client_link_name(name)
                    || l.strip_prefix("vb-").is_some_and(|m| is_node_of(name, m))
                    || l == bridge_name(name);
                if ours && let Err(e) = net::delete_link(&l) {
                    problems.push(e.to_string());
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }

    problems.extend(unmount_all_under(state_dir));
    // The containers' cgroups (see cgroup.rs), found by name like the processes.
    for node in cgroup::nodes_with_cgroups() {
        if is_node_of(name, &node) {
            cgroup::remove(&node);
        }
    }
    if problems.is_empty()
        && let Err(e) = remove_state_dir(name, state_dir)
    {
        problems.push(e.to_string());
    }
    if problems.is_empty() {
        tracing::debug!(lab = name, "down");
        Ok(())
    } else {
        Err(LabError::TearDown {
            lab: name.to_string(),
            problems,
        })
    }
}

/// Delete the state directory, but only when it holds nothing but what a lab puts there:
/// a mistyped state_dir must never become a recursive delete of someone's data.
fn remove_state_dir(name: &str, state_dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return Ok(());
    };
    let ours = |f: &str| {
        matches!(
            f,
            LAB_JSON | "id_ed25519" | "id_ed25519.pub" | "known_hosts" | "ssh_config" | "inventory.yaml"
        ) || f.starts_with(".lab.json.") // temp of an interrupted save
            || is_node_of(name, f)
    };
    let foreign: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !ours(f))
        .collect();
    if !foreign.is_empty() {
        return Err(LabError::State {
            path: state_dir.to_path_buf(),
            message: format!("not removed: holds files a lab does not create: {foreign:?}"),
        });
    }
    remove_tree(state_dir)
}
