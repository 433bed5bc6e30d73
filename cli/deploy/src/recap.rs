//! Ansible-style recap: per host ok / changed / failed / unreachable, then
//! whether each VIP is served.

use std::time::Duration;

use serde::Serialize;

use crate::error::DeployError;
use crate::served::{self, VipCheck};

/// How a host's run ended; one of these, so "failed and skipped" or an
/// error without a failure cannot be written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostOutcome {
    /// Ran to the end (changed or not: see [`HostResult::changed`]).
    #[default]
    Ok,
    /// A step failed; the error names the host and the step.
    Failed(String),
    /// Could not be reached at all (Ansible's "unreachable").
    Unreachable(String),
    /// Not run because an earlier node of its cluster failed, a preflight
    /// failed elsewhere, or Ctrl-C.
    Skipped,
}

impl HostOutcome {
    /// The outcome of a step that did not complete.
    pub fn from_error(e: &DeployError) -> Self {
        if e.unreachable {
            HostOutcome::Unreachable(e.to_string())
        } else {
            HostOutcome::Failed(e.to_string())
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            HostOutcome::Failed(e) | HostOutcome::Unreachable(e) => Some(e),
            HostOutcome::Ok | HostOutcome::Skipped => None,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self, HostOutcome::Failed(_))
    }

    pub fn unreachable(&self) -> bool {
        matches!(self, HostOutcome::Unreachable(_))
    }

    pub fn skipped(&self) -> bool {
        *self == HostOutcome::Skipped
    }

    /// Failed, unreachable or skipped: the run did not do its work here.
    pub fn blocked(&self) -> bool {
        *self != HostOutcome::Ok
    }

    /// Adds a failure: a host that already failed keeps both messages, one
    /// a line; an unreachable host stays unreachable.
    pub fn fail(&mut self, error: String) {
        *self = match std::mem::take(self) {
            HostOutcome::Failed(prev) => HostOutcome::Failed(format!("{prev}\n{error}")),
            HostOutcome::Unreachable(prev) => HostOutcome::Unreachable(format!("{prev}\n{error}")),
            HostOutcome::Ok | HostOutcome::Skipped => HostOutcome::Failed(error),
        };
    }
}

#[derive(Debug, Clone, Default)]
pub struct HostResult {
    pub host: String,
    pub ok: usize,
    pub changed: usize,
    pub outcome: HostOutcome,
}

impl HostResult {
    pub fn new(host: &str) -> Self {
        HostResult {
            host: host.to_string(),
            ..HostResult::default()
        }
    }
}

/// As `--json` has always shown it: `failed`, `unreachable` and `skipped`
/// flags and the error text.
impl Serialize for HostResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let o = &self.outcome;
        let mut st = s.serialize_struct("HostResult", 7)?;
        st.serialize_field("host", &self.host)?;
        st.serialize_field("ok", &self.ok)?;
        st.serialize_field("changed", &self.changed)?;
        st.serialize_field("failed", &o.failed())?;
        st.serialize_field("unreachable", &o.unreachable())?;
        st.serialize_field("skipped", &o.skipped())?;
        st.serialize_field("error", &o.error())?;
        st.end()
    }
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
            && self.hosts.iter().all(|h| !h.outcome.blocked())
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
            match &h.outcome {
                HostOutcome::Failed(e) => s.push_str(&format!("FAILED: {e}\n")),
                HostOutcome::Unreachable(e) => s.push_str(&format!("UNREACHABLE: {e}\n")),
                HostOutcome::Ok | HostOutcome::Skipped => {}
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
                u8::from(h.outcome.unreachable()),
                u8::from(h.outcome.failed()),
                u8::from(h.outcome.skipped()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, ok: usize, changed: usize, outcome: HostOutcome) -> HostResult {
        HostResult {
            host: name.into(),
            ok,
            changed,
            outcome,
        }
    }

    #[test]
    fn recap_text_is_ansible_style() {
        let r = Recap {
            hosts: vec![
                host("lb1", 5, 2, HostOutcome::Ok),
                host(
                    "lb2",
                    2,
                    0,
                    HostOutcome::Failed("lb2: preflight: no".into()),
                ),
                host(
                    "web1",
                    0,
                    0,
                    HostOutcome::Unreachable("web1: connect: gone".into()),
                ),
                host("web2", 2, 0, HostOutcome::Skipped),
            ],
            elapsed_ms: 1234,
            ..Recap::default()
        };
        assert!(!r.success());
        assert_eq!(
            r.render(),
            "FAILED: lb2: preflight: no\n\
             UNREACHABLE: web1: connect: gone\n\
             \nRECAP \n\
             lb1  : ok=5   changed=2   unreachable=0 failed=0 skipped=0\n\
             lb2  : ok=2   changed=0   unreachable=0 failed=1 skipped=0\n\
             web1 : ok=0   changed=0   unreachable=1 failed=0 skipped=0\n\
             web2 : ok=2   changed=0   unreachable=0 failed=0 skipped=1\n\
             4 hosts, 2 changed, 1.23s\n"
        );
    }

    #[test]
    fn json_keeps_the_three_flags() {
        let v = serde_json::to_value(host("lb1", 1, 0, HostOutcome::Unreachable("x".into())))
            .expect("json");
        assert_eq!(
            v,
            serde_json::json!({"host": "lb1", "ok": 1, "changed": 0, "failed": false,
                "unreachable": true, "skipped": false, "error": "x"})
        );
        let v = serde_json::to_value(host("lb1", 1, 0, HostOutcome::Skipped)).expect("json");
        assert_eq!(v["skipped"], true);
        assert_eq!(v["error"], serde_json::Value::Null);
    }

    #[test]
    fn failures_add_up() {
        let mut o = HostOutcome::Ok;
        o.fail("a".into());
        o.fail("b".into());
        assert_eq!(o, HostOutcome::Failed("a\nb".into()));
        let mut o = HostOutcome::Skipped;
        o.fail("c".into());
        assert_eq!(o, HostOutcome::Failed("c".into()));
    }
}
