//! Notify hooks: keepalived's notify_master/backup/fault/stop and `notify`.
//!
//! Hooks run on the daemon's worker runtime, never on the protocol thread,
//! and the protocol never waits for them. One queue per instance runs its
//! hooks one after the other, so a quick MASTER -> BACKUP flap reaches the
//! scripts in that order (keepalived forks them concurrently, and a slow
//! master script can then finish after the backup one). Each run is limited
//! by `script_timeout`.

use std::time::Duration;

use hadeploy_config::status::VrrpState;
use hadeploy_config::vrrp::Notify;
use hadeploy_vrrp::{Reason, Sender};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::process;

/// The name of the hook a state runs (`notify_master`, ...); `None` for
/// Init, which no transition enters.
fn hook_name(state: VrrpState) -> Option<&'static str> {
    match state {
        VrrpState::Master => Some("notify_master"),
        VrrpState::Backup => Some("notify_backup"),
        VrrpState::Fault => Some("notify_fault"),
        VrrpState::Stopped => Some("notify_stop"),
        VrrpState::Init => None,
    }
}

/// Why a hook runs: the transition's reason and the advert behind it.
///
/// Hooks get it as environment variables, so keepalived's four arguments
/// stay as they were and existing scripts keep working:
/// `HADEPLOY_VRRP_REASON` (`master_down`, `priority_zero`, `preempt`,
/// `higher_priority`, ...), `HADEPLOY_VRRP_PEER` and
/// `HADEPLOY_VRRP_PEER_PRIORITY` (set only when an advert caused it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookContext {
    pub reason: Reason,
    pub sender: Option<Sender>,
}

impl HookContext {
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "HADEPLOY_VRRP_REASON".to_string(),
            self.reason.as_str().to_string(),
        )];
        if let Some(s) = self.sender {
            env.push(("HADEPLOY_VRRP_PEER".to_string(), s.address.to_string()));
            env.push((
                "HADEPLOY_VRRP_PEER_PRIORITY".to_string(),
                s.priority.to_string(),
            ));
        }
        env
    }
}

/// The argv list to run for a state change, in order: the state's own hook,
/// then the generic one with keepalived's four arguments.
pub fn commands(
    notify: &Notify,
    instance: &str,
    state: VrrpState,
    priority: u8,
) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let own = match state {
        VrrpState::Master => &notify.master,
        VrrpState::Backup => &notify.backup,
        VrrpState::Fault => &notify.fault,
        VrrpState::Stopped => &notify.stop,
        VrrpState::Init => &None,
    };
    let mut out = Vec::new();
    if let (Some(argv), Some(hook)) = (own, hook_name(state)) {
        out.push((hook, argv.clone(), Vec::new()));
    }
    if let Some(argv) = &notify.generic {
        let extra = vec![
            "INSTANCE".to_string(),
            instance.to_string(),
            state.notify_word().to_string(),
            priority.to_string(),
        ];
        out.push(("notify", argv.clone(), extra));
    }
    out
}

/// One instance's hook queue.
#[derive(Debug)]
pub struct Hooks {
    tx: mpsc::UnboundedSender<(VrrpState, u8, HookContext)>,
    task: JoinHandle<()>,
}

impl Hooks {
    /// Starts the queue on `worker` (a runtime with I/O, time and process
    /// support; not the protocol runtime).
    pub fn new(worker: &Handle, instance: &str, notify: Notify, timeout: Duration) -> Hooks {
        let (tx, mut rx) = mpsc::unbounded_channel::<(VrrpState, u8, HookContext)>();
        let instance = instance.to_string();
        let task = worker.spawn(async move {
            while let Some((state, priority, ctx)) = rx.recv().await {
                let env = ctx.env();
                for (hook, argv, extra) in commands(&notify, &instance, state, priority) {
                    let run = process::run(&argv, &extra, &env, timeout).await;
                    let script = argv.first().map(String::as_str).unwrap_or("");
                    if run.outcome.success() {
                        tracing::info!(instance = %instance, hook, script, state = state.notify_word(),
                            output = %run.output, "{hook} hook for {instance} succeeded");
                    } else {
                        tracing::warn!(instance = %instance, hook, script, state = state.notify_word(),
                            status = %run.outcome, output = %run.output,
                            "{hook} hook for {instance} failed: {}", run.outcome);
                    }
                }
            }
        });
        Hooks { tx, task }
    }

    /// Queues the hooks of a state change; returns at once.
    pub fn notify(&self, state: VrrpState, priority: u8, ctx: HookContext) {
        // The queue task only ends when the sender is dropped, so a send
        // error means the worker runtime is gone (shutdown): nothing to run.
        let _ = self.tx.send((state, priority, ctx));
    }

    /// Closes the queue and waits until queued hooks have run, at most `limit`.
    pub async fn drain(self, limit: Duration) {
        let Hooks { tx, task } = self;
        drop(tx);
        let _ = tokio::time::timeout(limit, task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_hook_gets_keepalived_arguments() {
        let n = Notify {
            master: Some(vec!["/bin/m".into()]),
            generic: Some(vec!["/bin/g".into(), "--flag".into()]),
            ..Notify::default()
        };
        let c = commands(&n, "VI_1", VrrpState::Master, 150);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, "notify_master");
        assert_eq!(c[0].1, ["/bin/m"]);
        assert_eq!(c[1].1, ["/bin/g", "--flag"]);
        assert_eq!(c[1].2, ["INSTANCE", "VI_1", "MASTER", "150"]);
        assert!(
            commands(&n, "VI_1", VrrpState::Backup, 1)
                .iter()
                .all(|c| c.0 == "notify")
        );
    }

    #[tokio::test]
    async fn hooks_run_in_order() {
        let dir = std::env::temp_dir().join(format!("vrrpd-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let log = dir.join("log");
        let script = format!(
            "echo \"$3 $HADEPLOY_VRRP_REASON ${{HADEPLOY_VRRP_PEER:-none}}\" >> {}",
            log.display()
        );
        let n = Notify {
            generic: Some(vec!["/bin/sh".into(), "-c".into(), script, "sh".into()]),
            ..Notify::default()
        };
        let hooks = Hooks::new(&Handle::current(), "VI_1", n, Duration::from_secs(5));
        let by = |reason, peer: Option<[u8; 4]>| HookContext {
            reason,
            sender: peer.map(|a| Sender {
                address: a.into(),
                priority: 0,
            }),
        };
        hooks.notify(
            VrrpState::Master,
            100,
            by(Reason::PriorityZero, Some([10, 0, 0, 3])),
        );
        hooks.notify(
            VrrpState::Backup,
            100,
            by(Reason::HigherPriority, Some([10, 0, 0, 4])),
        );
        hooks.notify(VrrpState::Stopped, 0, by(Reason::Shutdown, None));
        hooks.drain(Duration::from_secs(10)).await;
        let got = std::fs::read_to_string(&log).expect("hook log");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            got,
            "MASTER priority_zero 10.0.0.3\nBACKUP higher_priority 10.0.0.4\nSTOP shutdown none\n"
        );
    }
}
