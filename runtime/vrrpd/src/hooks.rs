//! Notify hooks: keepalived's notify_master/backup/fault/stop and `notify`.
//!
//! Hooks run on the daemon's worker runtime, never on the protocol thread,
//! and the protocol never waits for them. One queue per instance runs its
//! hooks one after the other, so a quick MASTER -> BACKUP flap reaches the
//! scripts in that order (keepalived forks them concurrently, and a slow
//! master script can then finish after the backup one). Each run is limited
//! by `script_timeout`.

use std::time::Duration;

use hadeploy_config::vrrp::Notify;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::process;

/// The state a hook announces; the third argument of the generic hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl HookState {
    /// As keepalived passes it to `notify`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookState::Master => "MASTER",
            HookState::Backup => "BACKUP",
            HookState::Fault => "FAULT",
            HookState::Stop => "STOP",
        }
    }

    fn hook_name(self) -> &'static str {
        match self {
            HookState::Master => "notify_master",
            HookState::Backup => "notify_backup",
            HookState::Fault => "notify_fault",
            HookState::Stop => "notify_stop",
        }
    }
}

/// The argv list to run for a state change, in order: the state's own hook,
/// then the generic one with keepalived's four arguments.
pub fn commands(
    notify: &Notify,
    instance: &str,
    state: HookState,
    priority: u8,
) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let own = match state {
        HookState::Master => &notify.master,
        HookState::Backup => &notify.backup,
        HookState::Fault => &notify.fault,
        HookState::Stop => &notify.stop,
    };
    let mut out = Vec::new();
    if let Some(argv) = own {
        out.push((state.hook_name(), argv.clone(), Vec::new()));
    }
    if let Some(argv) = &notify.generic {
        let extra = vec![
            "INSTANCE".to_string(),
            instance.to_string(),
            state.as_str().to_string(),
            priority.to_string(),
        ];
        out.push(("notify", argv.clone(), extra));
    }
    out
}

/// One instance's hook queue.
#[derive(Debug)]
pub struct Hooks {
    tx: mpsc::UnboundedSender<(HookState, u8)>,
    task: JoinHandle<()>,
}

impl Hooks {
    /// Starts the queue on `worker` (a runtime with I/O, time and process
    /// support; not the protocol runtime).
    pub fn new(worker: &Handle, instance: &str, notify: Notify, timeout: Duration) -> Hooks {
        let (tx, mut rx) = mpsc::unbounded_channel::<(HookState, u8)>();
        let instance = instance.to_string();
        let task = worker.spawn(async move {
            while let Some((state, priority)) = rx.recv().await {
                for (hook, argv, extra) in commands(&notify, &instance, state, priority) {
                    let run = process::run(&argv, &extra, timeout).await;
                    let script = argv.first().map(String::as_str).unwrap_or("");
                    if run.outcome.success() {
                        tracing::info!(instance = %instance, hook, script, state = state.as_str(),
                            output = %run.output, "{hook} hook for {instance} succeeded");
                    } else {
                        tracing::warn!(instance = %instance, hook, script, state = state.as_str(),
                            status = %run.outcome, output = %run.output,
                            "{hook} hook for {instance} failed: {}", run.outcome);
                    }
                }
            }
        });
        Hooks { tx, task }
    }

    /// Queues the hooks of a state change; returns at once.
    pub fn notify(&self, state: HookState, priority: u8) {
        // The queue task only ends when the sender is dropped, so a send
        // error means the worker runtime is gone (shutdown): nothing to run.
        let _ = self.tx.send((state, priority));
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
        let c = commands(&n, "VI_1", HookState::Master, 150);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, "notify_master");
        assert_eq!(c[0].1, ["/bin/m"]);
        assert_eq!(c[1].1, ["/bin/g", "--flag"]);
        assert_eq!(c[1].2, ["INSTANCE", "VI_1", "MASTER", "150"]);
        assert!(
            commands(&n, "VI_1", HookState::Backup, 1)
                .iter()
                .all(|c| c.0 == "notify")
        );
    }

    #[tokio::test]
    async fn hooks_run_in_order() {
        let dir = std::env::temp_dir().join(format!("vrrpd-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let log = dir.join("log");
        let script = format!("echo \"$3\" >> {}", log.display());
        let n = Notify {
            generic: Some(vec!["/bin/sh".into(), "-c".into(), script, "sh".into()]),
            ..Notify::default()
        };
        let hooks = Hooks::new(&Handle::current(), "VI_1", n, Duration::from_secs(5));
        hooks.notify(HookState::Master, 100);
        hooks.notify(HookState::Backup, 100);
        hooks.notify(HookState::Stop, 0);
        hooks.drain(Duration::from_secs(10)).await;
        let got = std::fs::read_to_string(&log).expect("hook log");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got, "MASTER\nBACKUP\nSTOP\n");
    }
}
