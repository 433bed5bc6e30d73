//! Counters and the status snapshot, shared between the protocol thread
//! (writer) and the admin endpoint (reader).
//!
//! A plain mutex: the protocol thread holds it for a few field updates per
//! packet, and readers copy the data out before formatting.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use hadeploy_config::status::VrrpState;
use hadeploy_vrrp::{ChecksumForm, Discard, Reason};
use ipnet::Ipv4Net;

/// What this node knows of one peer of an instance: from its accepted
/// adverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStatus {
    /// The checksum form its last advert verified with: what the peer
    /// sends, so an operator can match `v3_checksum` to a peer that accepts
    /// only its own form (FRR, keepalived without v3_checksum_as_v2).
    pub checksum: ChecksumForm,
    /// Priority of its last advert.
    pub priority: u8,
    /// Adverts accepted from it.
    pub adverts: u64,
}

/// Why the receive loop of an interface dropped a packet before any
/// instance saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IfaceDiscard {
    /// Too short to carry a VRID.
    TooShort,
    /// No local instance uses its VRID (another cluster on the segment).
    UnknownVrid,
    /// The instance's packet queue was full (it is falling behind).
    QueueFull,
    /// The IP header did not parse.
    BadIpHeader,
}

impl IfaceDiscard {
    pub const ALL: [IfaceDiscard; 4] = [
        IfaceDiscard::TooShort,
        IfaceDiscard::UnknownVrid,
        IfaceDiscard::QueueFull,
        IfaceDiscard::BadIpHeader,
    ];

    /// The `reason` label; `too_short` and `wrong_vrid` are the labels the
    /// per-instance decoder uses for the same faults.
    pub fn as_str(self) -> &'static str {
        match self {
            IfaceDiscard::TooShort => Discard::TooShort.as_str(),
            IfaceDiscard::UnknownVrid => Discard::WrongVrid.as_str(),
            IfaceDiscard::QueueFull => "queue_full",
            IfaceDiscard::BadIpHeader => "bad_ip_header",
        }
    }
}

/// One instance's status and counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub state: VrrpState,
    /// Effective priority (configured plus track weights).
    pub priority: u8,
    pub configured_priority: u8,
    /// Who is master as far as this node knows: itself when MASTER, the
    /// source of the last accepted advert when BACKUP.
    pub master_ip: Option<Ipv4Addr>,
    pub vips_held: Vec<Ipv4Net>,
    pub transitions: BTreeMap<VrrpState, u64>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    pub garps_sent: u64,
    pub discards: HashMap<Discard, u64>,
    /// Peers heard, by source address.
    pub peers: BTreeMap<Ipv4Addr, PeerStatus>,
    /// Transitions by reason (`master_down`, `priority_zero`, ...).
    pub transition_reasons: HashMap<Reason, u64>,
    /// The last transition: reason, and the advert's sender if one caused it.
    pub last_transition: Option<(Reason, Option<hadeploy_vrrp::Sender>)>,
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
    /// Per interface: every packet dropped before reaching an instance, by
    /// reason (runts and unknown VRIDs included).
    pub iface_discards: BTreeMap<String, BTreeMap<IfaceDiscard, u64>>,
    /// Scheduling of the protocol thread, once it started.
    pub realtime: Option<crate::realtime::RealtimeState>,
}

impl Status {
    /// Counts a packet the receive loop of `ifname` dropped.
    pub(crate) fn iface_discard(&mut self, ifname: &str, why: IfaceDiscard) {
        *self
            .iface_discards
            .entry(ifname.to_string())
            .or_default()
            .entry(why)
            .or_default() += 1;
        match why {
            IfaceDiscard::TooShort => *self.runts.entry(ifname.to_string()).or_default() += 1,
            IfaceDiscard::UnknownVrid => {
                *self.unknown_vrid.entry(ifname.to_string()).or_default() += 1
            }
            IfaceDiscard::QueueFull | IfaceDiscard::BadIpHeader => {}
        }
    }
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
        for st in VrrpState::ALL {
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
        for st in VrrpState::ALL {
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
        "Received packets dropped, by reason: per instance, and per interface (no instance label) for packets no instance could be given.",
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
    let mut ifaces: BTreeSet<&str> = s.instances.values().map(|i| i.interface.as_str()).collect();
    ifaces.extend(s.iface_discards.keys().map(String::as_str));
    for ifname in ifaces.into_iter().filter(|n| !n.is_empty()) {
        let counts = s.iface_discards.get(ifname);
        for r in IfaceDiscard::ALL {
            let v = counts.and_then(|c| c.get(&r)).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "hadeploy_vrrp_discards_total{{interface=\"{}\",reason=\"{}\"}} {v}",
                esc(ifname),
                r.as_str()
            );
        }
    }
    family(
        &mut o,
        "hadeploy_vrrp_transition_reasons_total",
        "counter",
        "State transitions, by reason (master_down, priority_zero, preempt, higher_priority, ...).",
    );
    for i in inst() {
        for r in Reason::ALL {
            let v = i.transition_reasons.get(&r).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "hadeploy_vrrp_transition_reasons_total{{instance=\"{}\",reason=\"{}\"}} {v}",
                esc(&i.name),
                r.as_str()
            );
        }
    }
    family(
        &mut o,
        "hadeploy_vrrp_peer_adverts_total",
        "counter",
        "Adverts accepted from each peer, labelled with the checksum form the peer sends.",
    );
    family_peer_lines(&mut o, s);
    family(
        &mut o,
        "hadeploy_vrrp_peer_priority",
        "gauge",
        "Priority of each peer's last accepted advert.",
    );
    for i in inst() {
        for (addr, p) in &i.peers {
            let _ = writeln!(
                o,
                "hadeploy_vrrp_peer_priority{{instance=\"{}\",peer=\"{addr}\"}} {}",
                esc(&i.name),
                p.priority
            );
        }
    }
    if let Some(rt) = &s.realtime {
        family(
            &mut o,
            "hadeploy_vrrp_realtime_priority",
            "gauge",
            "SCHED_RR priority of the protocol thread; 0 when it runs with normal scheduling.",
        );
        let _ = writeln!(
            o,
            "hadeploy_vrrp_realtime_priority {}",
            rt.rr_priority.unwrap_or(0)
        );
        family(
            &mut o,
            "hadeploy_vrrp_memory_locked",
            "gauge",
            "1 when the daemon's memory is locked (mlockall).",
        );
        let _ = writeln!(
            o,
            "hadeploy_vrrp_memory_locked {}",
            u8::from(rt.memory_locked)
        );
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

fn family_peer_lines(o: &mut String, s: &Status) {
    for i in s.instances.values() {
        for (addr, p) in &i.peers {
            let _ = writeln!(
                o,
                "hadeploy_vrrp_peer_adverts_total{{instance=\"{}\",peer=\"{addr}\",checksum=\"{}\"}} {}",
                esc(&i.name),
                p.checksum.as_str(),
                p.adverts
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_family_and_escapes() {
        let stats = Stats::new();
        stats.instance("VI_\"1\"", |i| {
            i.state = VrrpState::Master;
            i.priority = 150;
            i.adverts_sent = 7;
            *i.discards.entry(Discard::BadTtl).or_default() += 2;
            *i.transitions.entry(VrrpState::Master).or_default() += 1;
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
        assert!(t.contains("reason=\"unknown_peer\"} 0"), "{t}");
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

#[cfg(test)]
mod export_tests {
    use super::*;

    /// Regression (issue 10): runts were counted in a map no metric
    /// exported. Every dropped packet now shows in discards_total.
    #[test]
    fn interface_drops_show_in_discards_total() {
        let stats = Stats::new();
        stats.instance("VI_1", |i| i.interface = "eth0".into());
        stats.with(|s| {
            s.iface_discard("eth0", IfaceDiscard::TooShort);
            s.iface_discard("eth0", IfaceDiscard::TooShort);
            s.iface_discard("eth1", IfaceDiscard::UnknownVrid);
        });
        let t = stats.render_prometheus();
        assert!(
            t.contains("hadeploy_vrrp_discards_total{interface=\"eth0\",reason=\"too_short\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("hadeploy_vrrp_discards_total{interface=\"eth1\",reason=\"wrong_vrid\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("hadeploy_vrrp_discards_total{interface=\"eth0\",reason=\"queue_full\"} 0")
        );
        assert!(t.contains("hadeploy_vrrp_discards_total{instance=\"VI_1\",reason=\"bad_ttl\"} 0"));
        assert_eq!(
            stats.status().runts["eth0"],
            2,
            "status keeps the runt count"
        );
        assert_eq!(stats.status().unknown_vrid["eth1"], 1);
    }

    #[test]
    fn peers_export_their_checksum_form() {
        let stats = Stats::new();
        stats.instance("VI_1", |i| {
            i.peers.insert(
                Ipv4Addr::new(10, 0, 0, 12),
                PeerStatus {
                    checksum: ChecksumForm::V3PseudoHeader,
                    priority: 100,
                    adverts: 7,
                },
            );
            *i.transition_reasons
                .entry(Reason::PriorityZero)
                .or_default() += 1;
        });
        let t = stats.render_prometheus();
        assert!(t.contains(
            "hadeploy_vrrp_peer_adverts_total{instance=\"VI_1\",peer=\"10.0.0.12\",checksum=\"v3_pseudo_header\"} 7"
        ), "{t}");
        assert!(
            t.contains("hadeploy_vrrp_peer_priority{instance=\"VI_1\",peer=\"10.0.0.12\"} 100")
        );
        assert!(t.contains(
            "hadeploy_vrrp_transition_reasons_total{instance=\"VI_1\",reason=\"priority_zero\"} 1"
        ));
    }
}
