//! Processes of a lab: pid files, discovery of systemd-nspawn processes from /proc (so a
//! lab whose state was lost can still be stopped), signals and reaping.
//!
//! Pitfall on this machine kind: PID 1 (not systemd) reaps orphans only lazily (seen: a
//! few seconds later), so a container started by a process that has since exited (the
//! CLI's `lab up`) lingers as a `<defunct>` systemd-nspawn for a moment after it dies. A
//! zombie counts as dead here, and we reap our own children whenever we can.

use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// Read a pid file; `None` when absent or unreadable.
pub(crate) fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Is `pid` a live (non-zombie) process?
pub(crate) fn is_alive(pid: i32) -> bool {
    reap(pid);
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3, after the parenthesised command name (which may contain spaces).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Arguments of a process (empty for zombies and kernel threads).
pub(crate) fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Live systemd-nspawn processes as `(pid, machine name, directory)`.
pub(crate) fn nspawn_processes() -> Vec<(i32, String, String)> {
    let mut found = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let args = cmdline(pid);
        if !args.first().is_some_and(|a| a.ends_with("systemd-nspawn")) || !is_alive(pid) {
            continue;
        }
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
                .unwrap_or_default()
        };
        found.push((pid, value("-M"), value("-D")));
    }
    found
}

/// Live ssh processes whose arguments mention `dir`: the lab's master connections
/// (their title is `ssh: <dir>/cm-<node> [mux]`) and clients using its ssh_config.
pub(crate) fn ssh_processes_under(dir: &Path) -> Vec<i32> {
    // With the separator, lab `hd` never matches lab `hdt`'s paths.
    let needle = format!("{}/", dir.to_string_lossy().trim_end_matches('/'));
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ssh")
                && cmdline(pid).iter().any(|a| a.contains(&needle))
                && is_alive(pid)
        })
        .collect()
}

/// Children of a process, from every thread's children list.
pub(crate) fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(list) = fs::read_to_string(t.path().join("children")) {
                out.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    out
}

pub(crate) fn signal(pid: i32, sig: Signal) {
    if let Err(e) = kill(Pid::from_raw(pid), sig) {
        tracing::debug!(pid, ?sig, %e, "kill");
    }
}

/// Reap `pid` if it is our exited child; harmless otherwise (ECHILD).
pub(crate) fn reap(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// Wait until none of `pids` is alive; true if they all died before `timeout`.
pub(crate) fn wait_dead(pids: &[i32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|&p| !is_alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
}

/// SIGTERM (a clean container shutdown), then SIGKILL whatever is left after `grace`.
/// Returns the pids still alive at the end.
pub(crate) fn terminate(pids: &[i32], grace: Duration) -> Vec<i32> {
    for &p in pids {
        signal(p, Signal::SIGTERM);
    }
    if !wait_dead(pids, grace) {
        for &p in pids.iter().filter(|&&p| is_alive(p)) {
            tracing::warn!(pid = p, "still alive after SIGTERM, sending SIGKILL");
            signal(p, Signal::SIGKILL);
        }
        wait_dead(pids, Duration::from_secs(5));
    }
    pids.iter().copied().filter(|&p| is_alive(p)).collect()
}
