//! Executes one node's plan: atomic writes, remote validation, handlers,
//! health. Every remote write goes to a temp file in the target directory,
//! is fsynced, validated when it is a runtime config, then renamed: a remote
//! file is never half-written, and a config the runtime refuses never
//! replaces the running one.

use std::time::{Duration, Instant};

use hadeploy_config::{Unit, paths};
use hadeploy_inventory::render::Handler;
use sha2::{Digest, Sha256};

use crate::error::{DeployError, Step};
use crate::plan::{Change, NodePlan};
use crate::ssh::Remote;

/// What [`execute`] is doing on a host, for its progress line (and the
/// interrupt report, which names the action a Ctrl-C cut short).
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Started, before the first of the actions below.
    Execute,
    UploadRuntime {
        kib: usize,
    },
    Write(&'a str),
    Remove(&'a str),
    Health,
    Tmpfiles,
    Sysctl,
    Firewalld,
    /// Stopping the stock service a unit replaces.
    Stop(&'a str),
    HandOver,
    Restart(Unit),
    Reload(Unit),
}

impl std::fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Execute => f.write_str("execute"),
            Action::UploadRuntime { kib } => write!(f, "upload runtime ({kib} KiB)"),
            Action::Write(path) => write!(f, "write {path}"),
            Action::Remove(path) => write!(f, "remove {path}"),
            Action::Health => f.write_str("health"),
            Action::Tmpfiles => f.write_str("systemd-tmpfiles"),
            Action::Sysctl => f.write_str("sysctl"),
            Action::Firewalld => f.write_str("firewalld"),
            Action::Stop(svc) => write!(f, "stop {svc}"),
            Action::HandOver => f.write_str("hand over VIP, restart proxy"),
            Action::Restart(u) => write!(f, "restart {}", u.as_str()),
            Action::Reload(u) => write!(f, "reload {}", u.as_str()),
        }
    }
}

impl hadeploy_progress::StepName for Action<'_> {}

/// $1 dest, $2 mode (octal), $3 validate (1/0), $4 restorecon (1/0); on
/// stdin a first line `SIZE SHA256`, then the data. Size and hash travel on
/// stdin, never as arguments: a command line is readable by every user of
/// the node (/proc/*/cmdline) and logged by sudo, and the hash of a secret
/// file (a short auth_pass) can be brute-forced. The received data is checked
/// against size and hash before the rename: a connection cut (or a Ctrl-C
/// that closes our end of stdin) gives the remote side an early EOF, and a
/// truncated file must never be installed. dd's own error (ENOSPC, EIO) is
/// passed on, naming the cause.
const WRITE_FILE: &str = concat!(
    r#"
set -eu
dest=$1; mode=$2; validate=$3; selinux=$4
# `read` takes the header line byte by byte from the pipe; dd gets the rest.
IFS=' ' read -r size sha
dir=${dest%/*}
mkdir -p "$dir"
tmp=$(mktemp "$dir/.hadeploy.XXXXXX")
trap 'rm -f "$tmp"' EXIT
trap 'exit 130' HUP INT TERM PIPE
chmod 600 "$tmp"
if ! err=$(dd of="$tmp" bs=65536 conv=fsync 2>&1 >/dev/null); then
  printf '%s\n' "$err" | grep -v -e 'records in' -e 'records out' -e 'bytes' | sed "s|$tmp|$dest (temporary copy)|g" >&2
  exit 4
fi
got=$(wc -c < "$tmp" | tr -d ' ')
if [ "$got" != "$size" ]; then
  echo "received $got of $size bytes (connection lost or interrupted); $dest not replaced" >&2
  exit 4
fi
if [ "$(sha256sum "$tmp" | cut -d' ' -f1)" != "$sha" ]; then
  echo "sha256 of the received data differs; $dest not replaced" >&2
  exit 4
fi
chown 0:0 "$tmp"
chmod "$mode" "$tmp"
if [ "$validate" = 1 ]; then
  if ! out=$("#,
    hadeploy_config::runtime_bin!(),
    r#" check --config "$tmp" 2>&1); then
    printf '%s\n' "$out" | sed "s|$tmp|$dest|g" >&2
    exit 3
  fi
fi
mv -f "$tmp" "$dest"
trap - EXIT
if [ "$selinux" = 1 ]; then restorecon "$dest" 2>/dev/null || true; fi
"#
);

/// Removes temp files a killed connection or node left behind.
const CLEAN_TEMPS: &str = r#"
for d in "$@"; do [ -d "$d" ] && find "$d" -maxdepth 1 -name '.hadeploy.*' -type f -delete 2>/dev/null; done; true
"#;

pub struct Outcome {
    /// Tasks done (files, handlers, checks), Ansible's "ok".
    pub ok: usize,
    pub changed: usize,
}

pub async fn write_file(
    remote: &Remote,
    dest: &str,
    mode: u32,
    validate: bool,
    selinux: bool,
    data: &[u8],
) -> Result<(), DeployError> {
    let mode = format!("{mode:o}");
    let mut input = format!("{} {}\n", data.len(), hex::encode(Sha256::digest(data))).into_bytes();
    input.extend_from_slice(data);
    let out = remote
        .sh(
            Step::Upload,
            WRITE_FILE,
            &[
                dest,
                &mode,
                if validate { "1" } else { "0" },
                if selinux { "1" } else { "0" },
            ],
            Some(&input),
        )
        .await
        .map_err(|e| {
            remote.err(
                Step::Upload,
                format!(
                    "writing {dest}: connection lost (the old file was kept): {}",
                    e.message
                ),
            )
        })?;
    match out.status {
        Some(0) => Ok(()),
        Some(3) => Err(remote.err(
            Step::Validate,
            format!("{dest} rejected by hadeploy-runtime check; the old file and the running service were kept:\n{}", out.stderr.trim()),
        )),
        Some(c) => Err(remote.err(
            Step::Upload,
            format!("writing {dest} failed (exit {c}); the old file was kept: {}", out.stderr.trim()),
        )),
        None => Err(remote.err(
            Step::Upload,
            format!(
                "writing {dest}: connection lost (the old file was kept): remote command killed {}",
                out.stderr.trim()
            ),
        )),
    }
}

pub async fn execute(
    remote: &Remote,
    plan: &NodePlan,
    binary: &[u8],
    selinux: bool,
    progress: &dyn Fn(Action<'_>),
) -> Result<Outcome, DeployError> {
    let mut ok = 0;
    let mut changed = 0;
    let mut dirs: Vec<String> = plan
        .files
        .iter()
        .filter_map(|f| f.file.path.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    if let Some((bin_dir, _)) = paths::RUNTIME_BIN.rsplit_once('/') {
        dirs.push(bin_dir.into());
    }
    dirs.sort();
    dirs.dedup();
    let dir_refs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    remote
        .sh_ok(Step::Upload, CLEAN_TEMPS, &dir_refs, None)
        .await?;

    if plan.binary != Change::Unchanged {
        progress(Action::UploadRuntime {
            kib: plan.binary_size / 1024,
        });
        // The binary comes first: configs are validated by the new binary.
        write_file(remote, paths::RUNTIME_BIN, 0o755, false, selinux, binary).await?;
        changed += 1;
    }
    ok += 1;
    // The tmpfiles drop-in (it only creates directories) is installed and
    // applied before the runtime configs are validated: the node's
    // `hadeploy-runtime check` opens the access logs, as `nginx -t` does,
    // and their directories must exist by then.
    let tmpfiles: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.change != Change::Unchanged && f.file.handler == Handler::Tmpfiles)
        .collect();
    for f in &tmpfiles {
        progress(Action::Write(&f.file.path));
        write_file(
            remote,
            &f.file.path,
            f.file.mode,
            false,
            selinux,
            f.file.content.as_bytes(),
        )
        .await?;
        changed += 1;
        ok += 1;
    }
    if !tmpfiles.is_empty() {
        run_tmpfiles(remote, progress).await?;
        ok += 1;
        changed += 1;
    }
    // Runtime configs first (they can be refused), then everything else, so
    // a refused config leaves the node's other files untouched.
    let mut order: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.change != Change::Unchanged && f.file.handler != Handler::Tmpfiles)
        .collect();
    order.sort_by_key(|f| !f.validate);
    for f in order {
        progress(Action::Write(&f.file.path));
        write_file(
            remote,
            &f.file.path,
            f.file.mode,
            f.validate,
            selinux,
            f.file.content.as_bytes(),
        )
        .await?;
        changed += 1;
        ok += 1;
    }
    if plan.changed() {
        let mut manifest: Vec<&str> = plan.files.iter().map(|f| f.file.path.as_str()).collect();
        manifest.push(paths::RUNTIME_BIN);
        let text = manifest.join("\n") + "\n";
        write_file(
            remote,
            paths::MANIFEST,
            0o644,
            false,
            selinux,
            text.as_bytes(),
        )
        .await?;
    }
    for p in &plan.remove {
        progress(Action::Remove(p));
        remote
            .sh_ok(Step::Upload, r#"rm -f "$1""#, &[p], None)
            .await?;
        changed += 1;
    }
    let (o, c) = run_handlers(remote, plan, progress).await?;
    ok += o;
    changed += c;
    if plan.changed() {
        progress(Action::Health);
        wait_healthy(remote, plan).await?;
        ok += 1;
    }
    Ok(Outcome { ok, changed })
}

/// Creates the directories of the tmpfiles drop-in (log directories).
async fn run_tmpfiles(remote: &Remote, progress: &dyn Fn(Action<'_>)) -> Result<(), DeployError> {
    progress(Action::Tmpfiles);
    remote
        .sh_ok(
            Step::Handlers,
            &format!("systemd-tmpfiles --create {}", paths::TMPFILES),
            &[],
            None,
        )
        .await?;
    Ok(())
}

/// `systemctl ACTION UNIT`, with the unit's last journal lines on failure.
async fn systemctl(remote: &Remote, action: &str, unit: Unit) -> Result<(), DeployError> {
    let unit = unit.service();
    let mut retried = false;
    loop {
        let out = remote
            .sh(
                Step::Handlers,
                r#"systemctl "$1" "$2""#,
                &[action, unit],
                None,
            )
            .await?;
        if out.ok() {
            return Ok(());
        }
        let journal = remote
            .sh(
                Step::Handlers,
                r#"journalctl -q -n 12 --no-pager -u "$1" 2>/dev/null"#,
                &[unit],
                None,
            )
            .await
            .map(|o| o.stdout)
            .unwrap_or_default();
        // systemd could not set the process up (cgroup, namespace...): our
        // binary never ran. Such failures can be transient (cgroup creation
        // racing other units); one more try before giving up.
        if !retried && spawn_setup_failure(&journal) {
            retried = true;
            tracing::warn!(%unit, "systemd failed to set up {unit} before starting it; retrying once");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        return Err(remote.err(
            Step::Handlers,
            format!(
                "systemctl {action} {unit} failed: {}\n{}",
                out.stderr.trim(),
                journal.trim()
            ),
        ));
    }
}

/// Whether a unit's journal says its process failed in systemd's own
/// setup, before exec: exit statuses 200-243 are systemd's (e.g.
/// `status=219/CGROUP`), not the service's.
fn spawn_setup_failure(journal: &str) -> bool {
    journal.split("status=").skip(1).any(|rest| {
        let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
        rest[code.len()..].starts_with('/')
            && code.parse::<u16>().is_ok_and(|c| (200..=243).contains(&c))
    })
}

async fn run_handlers(
    remote: &Remote,
    plan: &NodePlan,
    progress: &dyn Fn(Action<'_>),
) -> Result<(usize, usize), DeployError> {
    let h = &plan.handlers;
    let mut ran = 0;
    let step = Step::Handlers;
    if h.contains(&Handler::Sysctl) {
        progress(Action::Sysctl);
        remote
            .sh_ok(step, &format!("sysctl -q -p {}", paths::SYSCTL), &[], None)
            .await?;
        ran += 1;
    }
    if h.contains(&Handler::Firewalld) && plan.tree.facts.firewalld {
        progress(Action::Firewalld);
        remote
            .sh_ok(
                step,
                "firewall-cmd -q --reload && firewall-cmd -q --permanent --add-service=hadeploy && firewall-cmd -q --add-service=hadeploy",
                &[],
                None,
            )
            .await?;
        ran += 1;
    }
    let units_changed = Unit::ALL.iter().any(|&u| h.contains(&Handler::restart(u)));
    if units_changed || !plan.start.is_empty() || !plan.remove.is_empty() {
        remote
            .sh_ok(step, "systemctl daemon-reload", &[], None)
            .await?;
    }
    for svc in &plan.replace {
        progress(Action::Stop(svc));
        remote
            .sh_ok(
                step,
                r#"systemctl disable --now "$1" >/dev/null 2>&1"#,
                &[svc],
                None,
            )
            .await?;
        ran += 1;
    }
    if !plan.units.is_empty() && (units_changed || !plan.start.is_empty()) {
        let units: Vec<&str> = plan.units.iter().map(|u| u.service()).collect();
        remote
            .sh_ok(step, r#"systemctl enable -q "$@""#, &units, None)
            .await?;
    }
    let restart =
        |u: Unit| plan.runs(u) && (h.contains(&Handler::restart(u)) || plan.start.contains(&u));
    let reload = |u: Unit| plan.runs(u) && !restart(u) && h.contains(&Handler::reload(u));
    let (vrrp, proxy) = (Unit::Vrrp, Unit::Proxy);
    if restart(proxy) && plan.holds_vip && plan.runs(vrrp) {
        // Hand the VIP over before the proxy restarts: stopping the VRRP
        // daemon sends priority 0 and a backup takes over within Skew_Time,
        // so no client request meets a restarting proxy.
        progress(Action::HandOver);
        systemctl(remote, "stop", vrrp).await?;
        systemctl(remote, "restart", proxy).await?;
        systemctl(remote, "start", vrrp).await?;
        ran += 2;
    } else {
        for u in [proxy, vrrp].into_iter().filter(|&u| restart(u)) {
            progress(Action::Restart(u));
            systemctl(remote, "restart", u).await?;
            ran += 1;
        }
    }
    for u in [proxy, vrrp].into_iter().filter(|&u| reload(u)) {
        progress(Action::Reload(u));
        systemctl(remote, "reload", u).await?;
        ran += 1;
    }
    Ok((ran, ran))
}

/// Units active and the runtime answering on its admin address.
async fn wait_healthy(remote: &Remote, plan: &NodePlan) -> Result<(), DeployError> {
    if plan.units.is_empty() {
        return Ok(());
    }
    let units: Vec<&str> = plan.units.iter().map(|u| u.service()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = remote
            .sh(
                Step::Health,
                concat!(
                    r#"systemctl is-active "$@" >/dev/null && "#,
                    hadeploy_config::runtime_bin!(),
                    " status --brief"
                ),
                &units,
                None,
            )
            .await?;
        if out.ok() {
            return Ok(());
        }
        last = format!("{}{}", out.stdout.trim(), out.stderr.trim());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let journal = remote
        .sh(
            Step::Health,
            r#"for u; do set -- "$@" -u "$u"; shift; done; journalctl -q -n 8 --no-pager "$@" 2>/dev/null"#,
            &units,
            None,
        )
        .await
        .map(|o| o.stdout)
        .unwrap_or_default();
    Err(remote.err(
        Step::Health,
        format!(
            "units not healthy after 20s ({}); last journal lines:\n{}",
            last.trim(),
            journal.trim()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_before() {
        let cases = [
            (Action::Execute, "execute"),
            (Action::UploadRuntime { kib: 12 }, "upload runtime (12 KiB)"),
            (
                Action::Write(paths::VRRP_CONFIG),
                "write /etc/hadeploy/vrrp.yaml",
            ),
            (Action::Stop("nginx"), "stop nginx"),
            (Action::Restart(Unit::Vrrp), "restart vrrp"),
            (Action::Reload(Unit::Proxy), "reload proxy"),
            (Action::HandOver, "hand over VIP, restart proxy"),
        ];
        for (a, text) in cases {
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn systemd_setup_failures_are_recognized() {
        assert!(spawn_setup_failure(
            "Nov 30 apf8-lb1 systemd[1]: hadeploy-proxy.service: Main process exited, code=exited, status=219/CGROUP"
        ));
        assert!(spawn_setup_failure("x: status=226/NAMESPACE"));
        // The service's own exit codes are its business.
        assert!(!spawn_setup_failure(
            "Main process exited, code=exited, status=1/FAILURE"
        ));
        assert!(!spawn_setup_failure("status=2/INVALIDARGUMENT"));
        assert!(!spawn_setup_failure("no status here"));
    }
}
