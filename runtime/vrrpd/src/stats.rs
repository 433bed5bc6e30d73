//! Counters and the status snapshot, shared between the protocol thread
//! (writer) and the admin endpoint (reader).
//!
//! A plain mutex: the protocol thread holds it for a few field updates per
//! packet, and readers copy the data out before formatting.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use hadeploy_vrrp::Discard;
use ipnet::Ipv4Net;

/// An instance's protocol state as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum StateName {
    #[default]
    Init,
    Backup,
    Master,
    Fault,
    Stopped,
}

impl StateName {
    pub const ALL: [StateName; 5] = [
        StateName::Init,
        StateName::Backup,
        StateName::Master,
        StateName::Fault,
        StateName::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Init => "INIT",
            StateName::Backup => "BACKUP",
            StateName::Master => "MASTER",
            StateName::Fault => "FAULT",
            StateName::Stopped => "STOPPED",
        }
    }
}

/// One instance's status and counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub state: StateName,
    /// Effective priority (configured plus track weights).
    pub priority: u8,
    pub configured_priority: u8,
    /// Who is master as far as this node knows: itself when MASTER, the
    /// source of the last accepted advert when BACKUP.
    pub master_ip: Option<Ipv4Addr>,
    pub vips_held: Vec<Ipv4Net>,
    pub transitions: BTreeMap<StateName, u64>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    pub garps_sent: u64,
    pub discards: HashMap<Discard, u64>,
}

impl InstanceStatus {
    pub fn discarded(&self, reason: Discard) -> u64 {
        self.discards.get(&reason).copied().unwrap_or(0)
    }
}

/// Daemon-wide status: instances by name, plus packets no instance claimed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub instances: BTreeMap<String, InstanceStatus>,
    /// Per interface: packets whose VRID no local instance uses (another
    /// cluster on the segment; worth a look if it grows fast).
    pub unknown_vrid: BTreeMap<String, u64>,
    /// Per interface: datagrams too short to carry a VRID.
    pub runts: BTreeMap<String, u64>,
}

/// The shared handle. Clone it into the admin server; `run` writes to it.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    inner: Arc<Mutex<Status>>,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the live status. A poisoned lock (a panic while holding
    /// it) still holds plain counters, so it is used as is.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Status) -> R) -> R {
        let mut g: MutexGuard<'_, Status> = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub(crate) fn instance<R>(&self, name: &str, f: impl FnOnce(&mut InstanceStatus) -> R) -> R {
        self.with(|s| {
            let e = s
                .instances
                .entry(name.to_string())
                .or_insert_with(|| InstanceStatus {
                    name: name.to_string(),
                    ..InstanceStatus::default()
                });
            f(e)
        })
    }

    /// A copy of the current status.
    pub fn status(&self) -> Status {
        self.with(|s| s.clone())
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        render_prometheus(&self.status())
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Reads one counter of an instance.
type Getter = fn(&InstanceStatus) -> u64;

/// Renders a status snapshot for `GET /metrics`.
pub fn render_prometheus(s: &Status) -> String {
    let mut o = String::new();
    let inst = || s.instances.values();

    family(
        &mut o,
        "hadeploy_vrrp_state",
        "gauge",
        "1 for the instance's current VRRP state.",
    );
    for i in inst() {
        for st in StateName::ALL {
            let v = u8::from(i.state == st);
            let _ = writeln!(
                o,
                "hadeploy_vrrp_state{{instance=\"{}\",state=\"{}\"}} {v}",
                esc(&i.name),
                st.as_str()
            );
        }
    }
    family(
        &mut o,
        "hadeploy_vrrp_priority",
        "gauge",
        "Effective priority (configured plus track weights).",
    );
    for i in inst() {
        let _ = writeln!(
            o,
            "hadeploy_vrrp_priority{{instance=\"{}\"}} {}",
            esc(&i.name),
            i.priority
        );
    }
    family(
        &mut o,
        "hadeploy_vrrp_vips_held",
        "gauge",
        "Virtual addresses this node currently holds.",
    );
    for i in inst() {
        let _ = writeln!(
            o,
            "hadeploy_vrrp_vips_held{{instance=\"{}\"}} {}",
            esc(&i.name),
            i.vips_held.len()
        );
    }
    family(
        &mut o,
        "hadeploy_vrrp_transitions_total",
        "counter",
        "State transitions, by state entered.",
    );
    for i in inst() {
        for st in StateName::ALL {
            let v = i.transitions.get(&st).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "hadeploy_vrrp_transitions_total{{instance=\"{}\",to=\"{}\"}} {v}",
                esc(&i.name),
                st.as_str()
            );
        }
    }
    let simple: [(&str, &str, Getter); 4] = [
        (
            "hadeploy_vrrp_adverts_sent_total",
            "Advertisements sent (one per peer in unicast mode).",
            |i| i.adverts_sent,
        ),
        (
            "hadeploy_vrrp_adverts_received_total",
            "Advertisements accepted.",
            |i| i.adverts_received,
        ),
        (
            "hadeploy_vrrp_send_errors_total",
            "Advertisements the kernel refused to send.",
            |i| i.send_errors,
        ),
        (
            "hadeploy_vrrp_garps_sent_total",
            "Gratuitous ARPs sent.",
            |i| i.garps_sent,
        ),
    ];
    for (name, help, get) in simple {
        family(&mut o, name, "counter", help);
        for i in inst() {
            let _ = writeln!(o, "{name}{{instance=\"{}\"}} {}", esc(&i.name), get(i));
        }
    }
    family(
        &mut o,
        "hadeploy_vrrp_discards_total",
        "counter",
        "Received packets dropped, by reason.",
    );
    for i in inst() {
        for r in Discard::ALL {
            let _ = writeln!(
                o,
                "hadeploy_vrrp_discards_total{{instance=\"{}\",reason=\"{}\"}} {}",
                esc(&i.name),
                r.as_str(),
                i.discarded(r)
            );
        }
    }
    family(
        &mut o,
        "hadeploy_vrrp_unknown_vrid_total",
        "counter",
        "Packets for a VRID no local instance uses.",
    );
    for (ifname, n) in &s.unknown_vrid {
        let _ = writeln!(
            o,
            "hadeploy_vrrp_unknown_vrid_total{{interface=\"{}\"}} {n}",
            esc(ifname)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_family_and_escapes() {
        let stats = Stats::new();
        stats.instance("VI_\"1\"", |i| {
            i.state = StateName::Master;
            i.priority = 150;
            i.adverts_sent = 7;
            *i.discards.entry(Discard::BadTtl).or_default() += 2;
            *i.transitions.entry(StateName::Master).or_default() += 1;
        });
        let t = stats.render_prometheus();
        assert!(
            t.contains("hadeploy_vrrp_state{instance=\"VI_\\\"1\\\"\",state=\"MASTER\"} 1"),
            "{t}"
        );
        assert!(t.contains("state=\"BACKUP\"} 0"));
        assert!(t.contains("hadeploy_vrrp_priority{instance=\"VI_\\\"1\\\"\"} 150"));
        assert!(t.contains("hadeploy_vrrp_adverts_sent_total{instance=\"VI_\\\"1\\\"\"} 7"));
        assert!(t.contains("reason=\"bad_ttl\"} 2"));
        assert!(
            t.contains("reason=\"bad_checksum\"} 0"),
            "pre-registered at zero"
        );
        assert!(t.contains("to=\"MASTER\"} 1"));
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.rsplit(' ').count(), line.split(' ').count());
            assert!(
                line.rsplit_once(' ')
                    .is_some_and(|(_, v)| v.parse::<u64>().is_ok()),
                "{line}"
            );
        }
    }
}
