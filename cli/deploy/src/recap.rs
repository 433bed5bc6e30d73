//! Ansible-style recap: per host ok / changed / failed / unreachable, then
//! whether each VIP is served.

use std::time::Duration;

use serde::Serialize;

use crate::served::{self, VipCheck};

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostResult {
    pub host: String,
    pub ok: usize,
    pub changed: usize,
    pub failed: bool,
    pub unreachable: bool,
    /// Not run because an earlier node of its cluster failed, or Ctrl-C.
    pub skipped: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Recap {
    pub hosts: Vec<HostResult>,
    pub elapsed_ms: u128,
    pub runtime: Option<String>,
    pub runtime_bytes: usize,
    pub check_mode: bool,
    pub interrupted: bool,
    /// Each VIP group of the clusters the run touched: held by the node
    /// VRRP elects, its sites answering through it.
    pub served: Vec<VipCheck>,
    /// Why that was not checked (`--no-wait`, a failed run), when it was not.
    pub served_skipped: Option<String>,
}

impl Recap {
    pub fn success(&self) -> bool {
        !self.interrupted
            && self
                .hosts
                .iter()
                .all(|h| !h.failed && !h.unreachable && !h.skipped)
            && self.served.iter().all(|c| c.ok)
    }

    pub fn total_changed(&self) -> usize {
        self.hosts.iter().map(|h| h.changed).sum()
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let width = self
            .hosts
            .iter()
            .map(|h| h.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for h in &self.hosts {
            if let Some(e) = &h.error {
                s.push_str(&format!(
                    "{}: {e}\n",
                    if h.unreachable {
                        "UNREACHABLE"
                    } else {
                        "FAILED"
                    }
                ));
            }
        }
        for c in &self.served {
            if let Some(e) = &c.error {
                s.push_str(&format!("FAILED: {e}\n"));
            }
        }
        s.push_str(&format!(
            "\nRECAP {}\n",
            if self.check_mode {
                "(check mode: nothing changed)"
            } else {
                ""
            }
        ));
        for h in &self.hosts {
            s.push_str(&format!(
                "{:width$} : ok={:<3} changed={:<3} unreachable={} failed={} skipped={}\n",
                h.host,
                h.ok,
                h.changed,
                u8::from(h.unreachable),
                u8::from(h.failed),
                u8::from(h.skipped),
            ));
        }
        for c in &self.served {
            s.push_str(&served::render(c));
            s.push('\n');
        }
        if let Some(why) = &self.served_skipped {
            s.push_str(&format!("VIPs not checked: {why}\n"));
        }
        s.push_str(&format!(
            "{} hosts, {} changed, {:.2}s{}\n",
            self.hosts.len(),
            self.total_changed(),
            Duration::from_millis(u64::try_from(self.elapsed_ms).unwrap_or(u64::MAX)).as_secs_f64(),
            if self.interrupted {
                ", interrupted"
            } else {
                ""
            }
        ));
        s
    }
}
