//! Waiting for a node that was just booted: it answers over SSH, systemd has finished
//! booting, and no unit failed. A unit that failed while systemd was setting its process
//! up (exit statuses 200-243: systemd's own, before the program ran, e.g. 219/CGROUP)
//! is started once more; any other failure is reported with the unit's result and the
//! end of its journal.

use std::fmt::Write as _;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::exec::{exec, run_ssh, ssh_command};
use crate::node::Node;

/// Journal lines kept per failed unit in an error.
const JOURNAL_LINES: usize = 8;

/// A unit found failed at the end of a node's boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedUnit {
    pub unit: String,
    /// systemd's `Result` (`exit-code`, `signal`, `timeout`, ...).
    pub result: String,
    /// `ExecMainStatus`: the exit status, or the signal number when killed.
    pub status: i32,
    /// Last lines of the unit's journal of this boot.
    pub journal: String,
}

impl FailedUnit {
    /// Failed in systemd's own set-up of the process (the program never ran): on this
    /// machine kind such failures can be transient, so one more start is worth it.
    pub fn before_exec(&self) -> bool {
        self.result == "exit-code" && (200..=243).contains(&self.status)
    }
}

impl FailedUnit {
    /// The journal line that says why: systemd's "Failed at step ..." or "Main process
    /// exited ..." line, else the last one.
    pub fn cause(&self) -> &str {
        let lines = || self.journal.lines();
        lines()
            .find(|l| l.contains("Failed at step"))
            .or_else(|| lines().find(|l| l.contains("Main process exited")))
            .or_else(|| lines().last())
            .unwrap_or("")
    }
}

/// The failed units as an error message names them, each with its journal excerpt.
pub(crate) fn describe_failed(units: &[FailedUnit]) -> String {
    let mut s = String::new();
    for u in units {
        let _ = write!(
            s,
            "\n  {} failed (result {}, status {})",
            u.unit, u.result, u.status
        );
        if u.before_exec() {
            s.push_str(", also when started again");
        }
        if u.journal.trim().is_empty() {
            s.push_str("; no journal lines");
        } else {
            s.push_str("; its journal:");
            for l in u.journal.lines() {
                let _ = write!(s, "\n    {l}");
            }
        }
    }
    s
}

/// Wait until the node answers over SSH and systemd has finished booting cleanly
/// (`running`). A `degraded` boot is settled (see the module comment) or an error
/// naming every failed unit.
pub(crate) fn wait_ready(ssh_config: &Path, node: &Node, deadline: Instant) -> Result<()> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if !node.is_running() {
            return Err(LabError::node(
                &node.name,
                "wait for boot",
                format!(
                    "systemd-nspawn exited; console log {}:\n{}",
                    node.console_log.display(),
                    node.console_tail(30)
                ),
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LabError::BootTimeout {
                node: node.name.clone(),
                secs: started.elapsed().as_secs(),
                last,
                console: node.console_log.clone(),
                tail: node.console_tail(30),
            });
        }
        // `--wait` blocks until boot finished; `timeout` bounds it by our deadline.
        let cmd = format!(
            "timeout {} systemctl is-system-running --wait",
            left.as_secs().max(1)
        );
        // Bound the connection attempt by the deadline too (ssh_config says 3 s).
        let connect = format!("ConnectTimeout={}", left.as_secs().clamp(1, 3));
        // No master while booting: each attempt is a fresh connection.
        let ssh = ssh_command(
            ssh_config,
            &["-o", &connect, "-o", "ControlPath=none"],
            &node.name,
            &cmd,
        );
        let out = run_ssh(&node.name, ssh)?;
        let state = out.stdout.trim().to_string();
        match state.as_str() {
            "running" => return Ok(()),
            "degraded" => return settle(ssh_config, node),
            _ => {
                last = if out.code == 255 {
                    format!("ssh: {}", out.stderr.trim())
                } else {
                    format!("system state {state:?}")
                };
                sleep(Duration::from_millis(250));
            }
        }
    }
}

/// A degraded boot: start again the units that failed before their program ran, then
/// fail naming whatever is still failed.
fn settle(ssh_config: &Path, node: &Node) -> Result<()> {
    let failed = failed_units(ssh_config, &node.name)?;
    let mut retried = false;
    for u in failed.iter().filter(|u| u.before_exec()) {
        tracing::warn!(
            node = %node.name,
            unit = %u.unit,
            status = u.status,
            journal = %u.cause(),
            "unit failed before its program ran; starting it again"
        );
        let again = format!(
            "systemctl reset-failed '{0}'; timeout 60 systemctl restart '{0}'",
            u.unit
        );
        let out = exec(ssh_config, &node.name, &again)?;
        tracing::info!(node = %node.name, unit = %u.unit, code = out.code, "started again");
        retried = true;
    }
    let still = if retried {
        failed_units(ssh_config, &node.name)?
    } else {
        failed
    };
    if still.is_empty() {
        return Ok(());
    }
    Err(LabError::Degraded {
        node: node.name.clone(),
        failed: still,
        console: node.console_log.clone(),
    })
}

/// Every failed unit with its result, status and journal, in one round trip.
fn failed_units(ssh_config: &Path, node: &str) -> Result<Vec<FailedUnit>> {
    let script = format!(
        "systemctl list-units --state=failed --plain --no-legend --full | \
         while read -r u _; do\n\
           printf '@@unit %s\\n' \"$u\"\n\
           systemctl show -p Result -p ExecMainStatus \"$u\"\n\
           printf '@@journal\\n'\n\
           journalctl -b -q --no-pager -o short-monotonic -n {JOURNAL_LINES} -u \"$u\"\n\
         done"
    );
    let out = exec(ssh_config, node, &script)?;
    if !out.success() {
        return Err(LabError::node(
            node,
            "list failed units",
            format!("exit {}: {}", out.code, out.stderr.trim()),
        ));
    }
    Ok(parse_failed(&out.stdout))
}

fn parse_failed(text: &str) -> Vec<FailedUnit> {
    let mut units: Vec<FailedUnit> = Vec::new();
    let mut in_journal = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("@@unit ") {
            units.push(FailedUnit {
                unit: name.trim().to_string(),
                result: String::new(),
                status: 0,
                journal: String::new(),
            });
            in_journal = false;
            continue;
        }
        let Some(u) = units.last_mut() else { continue };
        if line == "@@journal" {
            in_journal = true;
        } else if in_journal {
            u.journal.push_str(line);
            u.journal.push('\n');
        } else if let Some(v) = line.strip_prefix("Result=") {
            u.result = v.to_string();
        } else if let Some(v) = line.strip_prefix("ExecMainStatus=") {
            u.status = v.parse().unwrap_or(0);
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failed_units_and_tells_spawn_failures() {
        let text = "@@unit systemd-remount-fs.service\nResult=exit-code\nExecMainStatus=219\n\
                    @@journal\n[    0.5] n (mount-fs)[19]: Failed at step CGROUP spawning x\n\
                    @@unit hd-broken.service\nResult=exit-code\nExecMainStatus=1\n@@journal\n";
        let units = parse_failed(text);
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].unit, "systemd-remount-fs.service");
        assert_eq!(units[0].status, 219);
        assert!(units[0].before_exec());
        assert!(units[0].cause().contains("Failed at step CGROUP"));
        assert!(!units[1].before_exec());
        let msg = describe_failed(&units);
        assert!(msg.contains("hd-broken.service failed (result exit-code, status 1)"));
        assert!(msg.contains("no journal lines"));
        assert!(parse_failed("").is_empty());
    }
}
