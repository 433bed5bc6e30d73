//! Link up/down of the interfaces instances depend on.
//!
//! Polled over netlink (RTM_GETLINK per interface) every [`POLL_EVERY`]:
//! simpler than an RTNLGRP_LINK subscription, which needs resync logic for
//! the ENOBUFS overruns a busy host produces, and fast enough (a failover
//! on link loss waits at most one poll). /sys/class/net is not used: it
//! reflects the namespace sysfs was mounted in, not this thread's.
//!
//! Runs on the protocol runtime; each poll is a few small netlink round
//! trips that never wait on the rtnl lock for long.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::VrrpdError;
use crate::netlink::Netlink;

/// Poll period.
pub const POLL_EVERY: Duration = Duration::from_millis(150);

/// Interface name -> up, as watch channels.
#[derive(Clone, Debug, Default)]
pub struct LinkWatch {
    links: Arc<Mutex<BTreeMap<String, watch::Sender<bool>>>>,
}

impl LinkWatch {
    /// The state of `interface`, polled from now on. The first value is the
    /// current one (queried now), so instances start with the right fault
    /// state.
    pub async fn watch(&self, nl: &Netlink, interface: &str) -> watch::Receiver<bool> {
        if let Some(tx) = self.lock().get(interface) {
            return tx.subscribe();
        }
        let up = is_up(nl, interface).await;
        let (tx, _) = watch::channel(up);
        // Another instance may have registered it meanwhile: keep theirs.
        self.lock()
            .entry(interface.to_string())
            .or_insert(tx)
            .subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, watch::Sender<bool>>> {
        // Only plain channel handles inside: usable even after a panic.
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The polling loop; run it as a task for the daemon's lifetime.
    pub async fn poll(self, nl: Netlink) {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let names: Vec<String> = self.lock().keys().cloned().collect();
            for name in names {
                let up = is_up(&nl, &name).await;
                if let Some(tx) = self.lock().get(&name) {
                    tx.send_if_modified(|cur| {
                        if *cur == up {
                            return false;
                        }
                        if up {
                            tracing::info!(interface = %name, "interface {name} is up");
                        } else {
                            tracing::warn!(interface = %name, "interface {name} is down");
                        }
                        *cur = up;
                        true
                    });
                }
            }
        }
    }
}

async fn is_up(nl: &Netlink, interface: &str) -> bool {
    match nl.link(interface).await {
        Ok(l) => l.up,
        Err(VrrpdError::NoInterface { .. }) => false,
        Err(e) => {
            // A netlink hiccup is not a link failure: keep "up" rather than
            // fail over on it, and say so.
            tracing::warn!(interface, error = %e, "cannot read link state of {interface}: {e}");
            true
        }
    }
}
