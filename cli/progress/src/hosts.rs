//! One progress line per host showing its current step (indicatif), for
//! runs over many hosts (apply); hidden when stderr is not a terminal or
//! output is JSON, where `-v` logs instead.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};

use crate::spinner;

/// A step a host can be in, named on its progress line and in interrupt
/// reports. Implemented by the callers' step types (deploy's `Step` and
/// `Action`), never by a bare string, so every step shown is one the
/// caller's type knows.
pub trait StepName: fmt::Display {}

pub struct HostProgress {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    /// Each host's step in progress (until `done`), for interrupt reports.
    current: Mutex<BTreeMap<String, String>>,
    enabled: bool,
}

impl HostProgress {
    pub fn new(hosts: &[String], enabled: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let width = hosts.iter().map(String::len).max().unwrap_or(4);
        let template = format!("{{spinner}} {{prefix:{width}}} {{msg}}");
        let mut bars = BTreeMap::new();
        for h in hosts {
            let b = multi.add(spinner(&template, h.clone()));
            if !enabled {
                b.disable_steady_tick();
            }
            b.set_message("waiting");
            bars.insert(h.clone(), b);
        }
        HostProgress {
            multi,
            bars: Mutex::new(bars),
            current: Mutex::new(BTreeMap::new()),
            enabled,
        }
    }

    pub fn hidden() -> Self {
        Self::new(&[], false)
    }

    pub fn step(&self, host: &str, step: &dyn StepName) {
        let step = step.to_string();
        tracing::debug!(host, step, "step");
        if let Ok(mut c) = self.current.lock() {
            c.insert(host.to_string(), step.clone());
        }
        if let Ok(b) = self.bars.lock()
            && let Some(b) = b.get(host)
        {
            b.set_message(step);
        }
    }

    /// The step `host` is in (None once done).
    pub fn current(&self, host: &str) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.get(host).cloned())
    }

    pub fn done(&self, host: &str, what: &str) {
        tracing::debug!(host, what, "done");
        if let Ok(mut c) = self.current.lock() {
            c.remove(host);
        }
        if let Ok(b) = self.bars.lock()
            && let Some(b) = b.get(host)
        {
            b.finish_with_message(what.to_string());
        }
    }

    /// A line of its own for work that is not one host's (a VIP being
    /// waited for), created on first use.
    pub fn line(&self, key: &str, msg: &str) {
        tracing::debug!(key, msg, "progress");
        if !self.enabled {
            return;
        }
        if let Ok(mut bars) = self.bars.lock() {
            let b = bars
                .entry(key.to_string())
                .or_insert_with(|| self.multi.add(spinner("{spinner} {prefix} {msg}", key)));
            b.set_message(msg.to_string());
        }
    }

    pub fn finish_line(&self, key: &str, msg: &str) {
        self.line(key, msg);
        if let Ok(b) = self.bars.lock()
            && let Some(b) = b.get(key)
        {
            b.finish_with_message(msg.to_string());
        }
    }

    pub fn clear(&self) {
        if self.enabled {
            let _ = self.multi.clear();
        }
    }
}
