//! Realtime scheduling and locked memory for the protocol thread
//! (keepalived's `vrrp_rt_priority` and `vrrp_no_swap`).
//!
//! Measured (bench/vrrp-load-takeover.sh): with VRRPv3 at 20 ms adverts
//! (Master_Down_Interval 69 ms) and the master's proxy saturated on a
//! 2-core node, a normal-priority protocol thread can wait longer than that
//! for a CPU, and the backup claims the VIP from a healthy master. SCHED_RR
//! puts it ahead of every SCHED_OTHER task. Only this thread: it is set
//! from the thread itself, and the hook and script processes are forked by
//! the worker thread, which keeps normal scheduling.
//!
//! Refusal is not fatal: without CAP_SYS_NICE or RLIMIT_RTPRIO, or in a
//! cgroup whose RT runtime is 0 (RT group scheduling, cgroup v1 `cpu` or v2
//! with CONFIG_RT_GROUP_SCHED), the kernel answers EPERM; the daemon logs a
//! warning that says what to change and runs with normal scheduling.

use hadeploy_config::vrrp::Realtime;
use nix::sys::mman::{MlockAllFlags, mlockall, munlockall};
use thread_priority::{
    RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id, thread_schedule_policy_param,
};

/// What the protocol thread got, for the status page and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RealtimeState {
    /// The SCHED_RR priority in force, None when running SCHED_OTHER.
    pub rr_priority: Option<u8>,
    /// mlockall is in force.
    pub memory_locked: bool,
    /// Why a requested setting is not in force (for the status page).
    pub problems: Vec<String>,
}

/// Applies `cfg` to the calling thread (the protocol thread) and to the
/// process's memory; logs and records what could not be applied.
pub fn apply(cfg: &Realtime) -> RealtimeState {
    let mut st = RealtimeState::default();
    if cfg.enabled {
        match set_rr(cfg.priority) {
            Ok(()) => {
                tracing::info!(
                    priority = cfg.priority,
                    "VRRP protocol thread runs SCHED_RR at priority {}",
                    cfg.priority
                );
            }
            Err(e) => {
                let msg = format!(
                    "SCHED_RR at priority {} refused ({e}): the protocol thread runs with normal \
                     scheduling and a loaded node may miss adverts; grant CAP_SYS_NICE or \
                     LimitRTPRIO={} (the hadeploy unit does), and RT runtime to the service's cgroup \
                     where RT group scheduling is on (cpu.rt_runtime_us), or set realtime.enabled: false",
                    cfg.priority, cfg.priority
                );
                tracing::warn!(priority = cfg.priority, error = %e, "{msg}");
                st.problems.push(msg);
            }
        }
    } else if current_rr().is_some() {
        // A reload turned it off.
        if let Err(e) = set_normal() {
            tracing::warn!(error = %e, "cannot return the protocol thread to normal scheduling: {e}");
        }
    }
    st.rr_priority = current_rr();
    if cfg.lock_memory {
        match lock_memory() {
            Ok(()) => st.memory_locked = true,
            Err(e) => {
                let msg = format!(
                    "mlockall refused ({e}): the daemon's memory may be swapped out and a page \
                     fault may delay an advert; grant CAP_IPC_LOCK or LimitMEMLOCK=infinity (the \
                     hadeploy unit does), or set realtime.lock_memory: false"
                );
                tracing::warn!(error = %e, "{msg}");
                st.problems.push(msg);
            }
        }
    } else {
        let _ = munlockall();
    }
    st
}

/// mlockall, locking pages as they are first touched (MCL_ONFAULT, Linux
/// 4.4+) so the daemon's resident size stays what it uses (thread stacks
/// and allocator reservations are not faulted in whole); kernels without it
/// (CentOS 7's 3.10 answers EINVAL) get keepalived's CURRENT | FUTURE.
fn lock_memory() -> nix::Result<()> {
    let base = MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE;
    let on_fault = MlockAllFlags::from_bits_retain(nix::libc::MCL_ONFAULT);
    match mlockall(base | on_fault) {
        Err(nix::errno::Errno::EINVAL) => mlockall(base),
        other => other,
    }
}

/// A scheduling change the kernel (or the priority's range) refused.
#[derive(Debug, thiserror::Error)]
enum SchedError {
    /// Out of the range the policy allows.
    #[error("{0}")]
    Priority(String),
    /// `sched_setscheduler` failed: EPERM without CAP_SYS_NICE, ...
    #[error("{0}")]
    Os(std::io::Error),
    #[error("{0}")]
    Other(thread_priority::Error),
}

impl From<thread_priority::Error> for SchedError {
    fn from(e: thread_priority::Error) -> Self {
        match e {
            thread_priority::Error::OS(code) => {
                SchedError::Os(std::io::Error::from_raw_os_error(code))
            }
            other => SchedError::Other(other),
        }
    }
}

fn set_rr(priority: u8) -> Result<(), SchedError> {
    let value = ThreadPriorityValue::try_from(priority).map_err(SchedError::Priority)?;
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::RoundRobin),
    )?;
    Ok(())
}

fn set_normal() -> Result<(), SchedError> {
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(
            ThreadPriorityValue::try_from(0u8).map_err(SchedError::Priority)?,
        ),
        ThreadSchedulePolicy::Normal(thread_priority::NormalThreadSchedulePolicy::Other),
    )?;
    Ok(())
}

/// The calling thread's SCHED_RR priority, if it runs SCHED_RR.
pub fn current_rr() -> Option<u8> {
    match thread_schedule_policy_param(thread_native_id()) {
        Ok((ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::RoundRobin), p)) => {
            u8::try_from(p.sched_priority).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a thread of its own (the test harness's threads stay normal).
    #[test]
    fn applies_to_the_calling_thread_only_or_reports_why_not() {
        let cfg = Realtime {
            enabled: true,
            priority: 7,
            lock_memory: false,
        };
        let st = std::thread::spawn(move || apply(&cfg))
            .join()
            .expect("thread");
        if nix::unistd::Uid::effective().is_root() {
            assert_eq!(st.rr_priority, Some(7), "{st:?}");
            assert!(st.problems.is_empty(), "{st:?}");
        } else {
            assert!(
                st.rr_priority.is_some() || !st.problems.is_empty(),
                "{st:?}"
            );
        }
        assert_eq!(current_rr(), None, "the test's own thread stays normal");
    }

    #[test]
    fn off_means_normal_scheduling() {
        let st = std::thread::spawn(|| {
            apply(&Realtime {
                enabled: true,
                priority: 5,
                lock_memory: false,
            });
            apply(&Realtime {
                enabled: false,
                priority: 5,
                lock_memory: false,
            })
        })
        .join()
        .expect("thread");
        assert_eq!(st.rr_priority, None, "{st:?}");
    }
}
