//! `/etc/hadeploy/vrrp.yaml`: what the VRRP daemon runs (keepalived's job).
//!
//! Field names follow keepalived.conf(5) where one exists, so a keepalived
//! user can read a rendered file; durations are humantime strings.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, range_problem};
use crate::duration::{human, human_opt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpConfig {
    /// The node's inventory name; used in logs and hook arguments.
    pub node: String,
    /// Prometheus metrics and status (`GET /metrics`, `GET /status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
    /// Limit for each notify hook or track script run.
    #[serde(default = "default_script_timeout", with = "human")]
    pub script_timeout: Duration,
    pub instances: Vec<Instance>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_scripts: Vec<TrackScript>,
    /// Scheduling of the protocol thread (keepalived's `vrrp_rt_priority`
    /// and `vrrp_no_swap`).
    #[serde(default)]
    pub realtime: Realtime,
}

/// keepalived's `script_timeout` default (its `vrrp_script` timeout is
/// separate, [`TrackScript::timeout`]).
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

fn default_script_timeout() -> Duration {
    DEFAULT_SCRIPT_TIMEOUT
}

/// Realtime scheduling and locked memory for the protocol thread.
///
/// A backup that hears no advert for Master_Down_Interval claims the VIP;
/// at 20 ms adverts that is 69 ms, shorter than the time slices a saturated
/// proxy on the same 2 cores can keep the protocol thread waiting. SCHED_RR
/// puts the thread ahead of every normal task (and the kernel's RT
/// throttling still leaves 5 % to the rest), and locked memory keeps a page
/// fault on swapped-out memory from stalling it. Hooks and track scripts run
/// on another thread and never inherit either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Realtime {
    /// SCHED_RR for the protocol thread. Refused by the kernel (no
    /// CAP_SYS_NICE or RLIMIT_RTPRIO, an RT cgroup without runtime), the
    /// daemon logs a warning and runs with normal scheduling.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// SCHED_RR priority, 1..=99 (keepalived's `vrrp_rt_priority`). The
    /// default, 10, is above every normal task and below the threaded IRQ
    /// handlers (50) that deliver the adverts.
    #[serde(default = "default_rt_priority")]
    pub priority: u8,
    /// mlockall(2) (keepalived's `vrrp_no_swap`).
    #[serde(default = "yes")]
    pub lock_memory: bool,
}

impl Default for Realtime {
    fn default() -> Self {
        Realtime {
            enabled: true,
            priority: default_rt_priority(),
            lock_memory: true,
        }
    }
}

fn default_rt_priority() -> u8 {
    10
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Version {
    V2,
    V3,
}

/// The VRRPv2 PASS password. Serialized as it is (the node's file is 0600
/// root), but its `Debug` never shows it: a config or node tree that reaches
/// a log through `{:?}` must not carry the password with it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthPass(String);

impl AuthPass {
    pub fn new(pass: impl Into<String>) -> Self {
        AuthPass(pass.into())
    }

    /// The password itself, for the wire and for validation only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AuthPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthPass(****)")
    }
}

impl From<&str> for AuthPass {
    fn from(pass: &str) -> Self {
        AuthPass::new(pass)
    }
}

/// A VRRP version other than 2 or 3.
#[derive(Debug, thiserror::Error)]
#[error("{}", bad_version_message(.0))]
pub struct BadVersion(pub u8);

/// [`BadVersion`]'s wording for a value of any width: the inventory reads
/// the number as `i64` and reports it as written.
pub fn bad_version_message(v: impl std::fmt::Display) -> String {
    format!("VRRP version must be 2 or 3, not {v}")
}

impl TryFrom<u8> for Version {
    type Error = BadVersion;
    fn try_from(v: u8) -> Result<Self, BadVersion> {
        match v {
            2 => Ok(Version::V2),
            3 => Ok(Version::V3),
            other => Err(BadVersion(other)),
        }
    }
}

impl From<Version> for u8 {
    fn from(v: Version) -> u8 {
        match v {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// How a VRRPv3 checksum is computed when sending. Receivers accept both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum V3Checksum {
    /// Include the IPv4 pseudo-header: keepalived 2.x's default.
    #[default]
    PseudoHeader,
    /// VRRP message only: RFC 9568, Cisco, Juniper, keepalived's
    /// `v3_checksum_as_v2`.
    VrrpOnly,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// keepalived's `vrrp_instance NAME`.
    pub name: String,
    pub interface: String,
    pub virtual_router_id: u8,
    pub version: Version,
    /// 1..=254, or 255 for the address owner.
    pub priority: u8,
    /// Required here; the inventory defaults it to [`DEFAULT_ADVERT_INTERVAL`].
    #[serde(with = "human")]
    pub advert_interval: Duration,
    /// `false` is keepalived's `nopreempt`.
    #[serde(default = "default_preempt")]
    pub preempt: bool,
    #[serde(default, with = "human", skip_serializing_if = "Duration::is_zero")]
    pub preempt_delay: Duration,
    /// VRRPv2 PASS authentication, at most 8 bytes. A secret: this file is
    /// installed 0600 root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_pass: Option<AuthPass>,
    /// `unicast_src_ip` + `unicast_peer`; absent means multicast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicast: Option<Unicast>,
    /// keepalived's `vrrp_mcast_group4`.
    #[serde(default = "default_group")]
    pub multicast_group: Ipv4Addr,
    /// The address this router sends from and breaks priority ties with;
    /// the interface's primary address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<Ipv4Addr>,
    /// The other routers of this virtual router: hadeploy renders the other
    /// load balancers of the VIP group. Adverts from any other source are
    /// discarded (`unknown_peer`, logged with source, VRID and priority),
    /// and only a winner listed here is told with priority 0 that we
    /// stepped down. Absent: the unicast peers in unicast mode; in multicast
    /// mode any source is accepted (keepalived's behaviour, with a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<Ipv4Addr>>,
    /// Third-party routers also accepted, such as a router taking part in
    /// the election. They can win, but are not told of a step-down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_peers: Vec<Ipv4Addr>,
    /// Accept adverts from any source (keepalived's behaviour).
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_any_peer: bool,
    pub virtual_ipaddress: Vec<Vip>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_interface: Vec<String>,
    /// Names of `track_scripts` entries, with an optional weight override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_script: Vec<TrackScriptRef>,
    #[serde(default)]
    pub garp: Garp,
    #[serde(default)]
    pub v3_checksum: V3Checksum,
    #[serde(default)]
    pub notify: Notify,
}

fn yes() -> bool {
    true
}

/// keepalived preempts unless told `nopreempt`.
pub const DEFAULT_PREEMPT: bool = true;

fn default_preempt() -> bool {
    DEFAULT_PREEMPT
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// keepalived's `vrrp_mcast_group4` default: the IANA VRRP group (RFC 5798
/// 5.1.1.2), which the protocol crate owns.
pub const DEFAULT_MULTICAST_GROUP: Ipv4Addr = hadeploy_vrrp::VRRP_MULTICAST_V4;

fn default_group() -> Ipv4Addr {
    DEFAULT_MULTICAST_GROUP
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unicast {
    pub src_ip: Ipv4Addr,
    pub peers: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// Address with prefix, `192.168.10.100/24`.
    pub address: Ipv4Net,
    /// Interface to add it on; the instance's interface when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Interface label (`eth0:1`), as `ip addr add ... label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Gratuitous ARP schedule; a key left out takes [`Garp::default`]'s value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Garp {
    /// `garp_master_delay`: second burst this long after becoming master.
    #[serde(with = "human")]
    pub master_delay: Duration,
    /// `garp_master_repeat`: GARPs per burst.
    pub master_repeat: u32,
    /// `garp_interval`: gap between GARPs of one burst. keepalived sends a
    /// burst at once (0); our default spreads it over 1.2 s because Linux
    /// ignores an ARP update for an entry changed less than `locktime` (1 s)
    /// ago, so after a split brain heals a burst sent at once can be lost
    /// entirely and clients keep the loser's MAC.
    #[serde(with = "human")]
    pub interval: Duration,
    /// `garp_master_refresh`: periodic refresh while master; off when absent.
    #[serde(with = "human_opt", skip_serializing_if = "Option::is_none")]
    pub master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`.
    pub master_refresh_repeat: u32,
    /// Re-announce (advert + GARP) on hearing a lower-priority master, so a
    /// healed split brain leaves no client with a stale ARP entry.
    pub lower_prio_announce: bool,
}

/// hadeploy's `garp_interval` default (see [`Garp::interval`]).
pub const DEFAULT_GARP_INTERVAL: Duration = Duration::from_millis(300);

/// keepalived's defaults, which the protocol crate's `GarpParams` holds,
/// and [`DEFAULT_GARP_INTERVAL`].
impl Default for Garp {
    fn default() -> Self {
        let g = hadeploy_vrrp::GarpParams::default();
        Garp {
            master_delay: g.master_delay,
            master_repeat: g.master_repeat,
            interval: DEFAULT_GARP_INTERVAL,
            master_refresh: g.master_refresh,
            master_refresh_repeat: g.master_refresh_repeat,
            lower_prio_announce: g.lower_prio_announce,
        }
    }
}

/// Hooks: argv vectors, run without a shell; the first element is absolute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// keepalived's `notify`: called with INSTANCE, name, state, priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<Vec<String>>,
}

impl Notify {
    fn entries(&self) -> impl Iterator<Item = (&'static str, &Vec<String>)> {
        [
            ("master", &self.master),
            ("backup", &self.backup),
            ("fault", &self.fault),
            ("stop", &self.stop),
            ("generic", &self.generic),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

/// keepalived's `vrrp_script`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackScript {
    pub name: String,
    pub script: Vec<String>,
    #[serde(default = "track_interval", with = "human")]
    pub interval: Duration,
    #[serde(default = "track_timeout", with = "human")]
    pub timeout: Duration,
    /// Added to the priority while the script succeeds (> 0) or subtracted
    /// while it fails (< 0); 0 means failure puts the instance in Fault.
    #[serde(default)]
    pub weight: i32,
    #[serde(default = "default_rise_fall")]
    pub rise: u32,
    #[serde(default = "default_rise_fall")]
    pub fall: u32,
}

/// keepalived's `vrrp_script` `rise` and `fall` default.
pub const DEFAULT_RISE_FALL: u32 = 1;

fn default_rise_fall() -> u32 {
    DEFAULT_RISE_FALL
}

/// keepalived's `vrrp_script` defaults: run every second, 2 s to finish.
pub const DEFAULT_TRACK_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_TRACK_TIMEOUT: Duration = Duration::from_secs(2);

fn track_interval() -> Duration {
    DEFAULT_TRACK_INTERVAL
}
fn track_timeout() -> Duration {
    DEFAULT_TRACK_TIMEOUT
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackScriptRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// keepalived's `advert_int` default.
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);

/// The advert interval limits of a version: v2 whole seconds 1..=255,
/// v3 centiseconds 1..=4095.
pub fn advert_interval_problem(version: Version, interval: Duration) -> Option<String> {
    match version {
        Version::V2 => {
            let ok = interval.subsec_nanos() == 0 && (1..=255).contains(&interval.as_secs());
            (!ok).then(|| {
                format!(
                    "VRRPv2 advert interval must be whole seconds from 1s to 255s, not {}",
                    crate::duration::format(interval)
                )
            })
        }
        Version::V3 => {
            let cs = interval.as_millis() / 10;
            let ok = interval.as_millis() % 10 == 0
                && interval.subsec_nanos() % 1_000_000 == 0
                && (1..=4095).contains(&cs);
            (!ok).then(|| {
                format!(
                    "VRRPv3 advert interval must be a multiple of 10ms from 10ms to 40.95s, not {}",
                    crate::duration::format(interval)
                )
            })
        }
    }
}

/// keepalived's `virtual_router_id` range (RFC 5798 5.2.3).
pub const VRID_RANGE: RangeInclusive<i64> = 1..=255;

/// Why a virtual router ID cannot be used, if it cannot.
pub fn vrid_problem(vrid: i64) -> Option<String> {
    range_problem("virtual_router_id", vrid, VRID_RANGE)
}

/// Why a priority cannot be used, if it cannot; `key` is the setting's name
/// (`priority`, or the inventory's `vrrp_priority`).
pub fn priority_problem(key: &str, priority: i64) -> Option<String> {
    range_problem(key, priority, 1..=255).map(|why| {
        format!("{why} (255 only for the address owner; 0 is reserved for a master that stops)")
    })
}

/// keepalived's `vrrp_script` `rise` / `fall` range: 1..INT_MAX.
pub const RISE_FALL_RANGE: RangeInclusive<i64> = 1..=i32::MAX as i64;

/// Why a track script's `rise` or `fall` (`key`) cannot be used, if it cannot.
pub fn rise_fall_problem(key: &str, n: i64) -> Option<String> {
    range_problem(key, n, RISE_FALL_RANGE)
}

/// The per-node VRID rule: one virtual router per (interface, VRID). Given
/// the node's instances as (interface, VRID), yields (index, index of the
/// earlier instance) for each reuse. The runtime checks a config with it;
/// the inventory checks each host with it, across clusters.
pub fn vrid_reuse<'a>(uses: impl IntoIterator<Item = (&'a str, u8)>) -> Vec<(usize, usize)> {
    let mut first: BTreeMap<(&str, u8), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, key) in uses.into_iter().enumerate() {
        if let Some(&prev) = first.get(&key) {
            out.push((i, prev));
        } else {
            first.insert(key, i);
        }
    }
    out
}

/// The message of a [`vrid_reuse`] finding; `prev` names the earlier user.
pub fn vrid_reuse_message(vrid: u8, interface: &str, prev: &str) -> String {
    format!("virtual_router_id {vrid} is already used on {interface} by {prev}")
}

/// Why a hook or track script argv cannot run, if it cannot. Shared with
/// the inventory's checks (`hadeploy check`).
pub fn command_problem(argv: &[String]) -> Option<String> {
    match argv.first() {
        None => Some("command is empty".to_string()),
        Some(prog) if !prog.starts_with('/') => Some(format!(
            "command `{prog}` must be an absolute path (hooks run without a shell or PATH)"
        )),
        _ => None,
    }
}

fn check_argv(path: &str, argv: &[String], out: &mut Vec<Diagnostic>) {
    if let Some(why) = command_problem(argv) {
        out.push(Diagnostic::error(path, why));
    }
}

/// Why a PASS password cannot be used, if it cannot; the message never
/// holds the password. Shared with the inventory's checks.
pub fn auth_pass_problem(version: Version, pass: &str) -> Option<String> {
    if version == Version::V3 {
        return Some("VRRPv3 has no authentication: remove auth_pass or use version 2".into());
    }
    // A line break would make the serialized value span lines, which line
    // based masking (plans, diffs) could not hide; keepalived cannot read
    // one either.
    if pass.chars().any(char::is_control) {
        return Some("PASS password must not contain control characters".into());
    }
    let n = pass.len();
    (n == 0 || n > 8).then(|| {
        format!(
            "PASS password must be 1 to 8 bytes, this one is {n} (keepalived would silently \
             truncate it; hadeploy refuses)"
        )
    })
}

/// Why a multicast group cannot be used, if it cannot.
pub fn multicast_group_problem(group: Ipv4Addr) -> Option<String> {
    (!group.is_multicast()).then(|| format!("`{group}` is not a multicast address"))
}

/// Linux's longest interface name (`IFNAMSIZ` less the NUL).
pub const IFNAME_MAX: usize = 15;

/// The interface-name rule: what the kernel accepts as a device name.
pub fn ifname_problem(name: &str) -> Option<String> {
    (name.is_empty() || name.len() > IFNAME_MAX || name.contains(['/', ' ', ':'])).then(|| {
        format!(
            "`{name}` is not a valid interface name (1 to {IFNAME_MAX} characters, no '/', ':' or spaces)"
        )
    })
}

/// The address-label rule: a label (`eth0:1`) is an interface name as far
/// as its length goes, and may hold ':'.
pub fn label_problem(label: &str) -> Option<String> {
    (label.is_empty() || label.len() > IFNAME_MAX)
        .then(|| format!("label `{label}` must be 1 to {IFNAME_MAX} characters"))
}

/// Why a realtime setting cannot be used, if it cannot: (key, message).
pub fn realtime_problem(rt: &Realtime) -> Option<(&'static str, String)> {
    (!(1..=99).contains(&rt.priority)).then(|| {
        (
            "priority",
            format!("SCHED_RR priority must be 1..99, not {}", rt.priority),
        )
    })
}

/// The sources an instance accepts adverts from, and which are its own.
fn check_peers(p: &str, inst: &Instance, out: &mut Vec<Diagnostic>) {
    let own = inst
        .unicast
        .as_ref()
        .map(|u| u.src_ip)
        .or(inst.source_address);
    let lists = [
        ("peers", inst.peers.as_deref().unwrap_or_default()),
        ("accept_peers", &inst.accept_peers[..]),
    ];
    for (key, list) in lists {
        if let Some(me) = own.filter(|me| list.contains(me)) {
            out.push(Diagnostic::error(
                format!("{p}.{key}"),
                format!("{me} is this router's own address, not a peer"),
            ));
        }
    }
    if inst.peers.is_none() && inst.unicast.is_none() && !inst.accept_any_peer {
        out.push(Diagnostic::warning(
            format!("{p}.peers"),
            format!(
                "no peer list: adverts for VRID {} on {} are accepted from any source, so a forged \
                 advert or another cluster reusing the VRID can take the VIP; list the other \
                 routers in `peers` (hadeploy renders them), or set `accept_any_peer: true`",
                inst.virtual_router_id, inst.interface
            ),
        ));
    }
}

/// VRRPv3 over IPv4 has two checksum forms and no negotiation: a peer that
/// verifies only the other one drops every advert, and both become MASTER.
/// Shared with the inventory's checks (`hadeploy check`), like
/// [`advert_interval_problem`].
pub fn v3_checksum_warning(version: Version, form: V3Checksum) -> Option<&'static str> {
    match (version, form) {
        (Version::V3, V3Checksum::VrrpOnly) => Some(
            "vrrp_only sends the RFC 9568 checksum (no IPv4 pseudo-header): keepalived 2.x \
             (without v3_checksum_as_v2) and FRR vrrpd verify only the pseudo-header form and \
             drop these adverts, so both routers become MASTER; use it only when every peer \
             sends that form (Cisco, Juniper). `hadeploy-runtime status --json` shows the form \
             each peer sends (peers[].checksum)",
        ),
        (Version::V2, V3Checksum::VrrpOnly) => {
            Some("v3_checksum has no effect with VRRP version 2")
        }
        _ => None,
    }
}

/// The interface names and address labels an instance puts to the kernel.
fn check_names(p: &str, inst: &Instance, out: &mut Vec<Diagnostic>) {
    let names = std::iter::once((format!("{p}.interface"), &inst.interface))
        .chain(
            (inst.track_interface.iter().enumerate())
                .map(|(j, t)| (format!("{p}.track_interface[{j}]"), t)),
        )
        .chain(
            (inst.virtual_ipaddress.iter().enumerate()).filter_map(|(j, v)| {
                v.dev
                    .as_ref()
                    .map(|d| (format!("{p}.virtual_ipaddress[{j}].dev"), d))
            }),
        );
    for (path, name) in names {
        if let Some(why) = ifname_problem(name) {
            out.push(Diagnostic::error(path, why));
        }
    }
    for (j, v) in inst.virtual_ipaddress.iter().enumerate() {
        if let Some(why) = v.label.as_deref().and_then(label_problem) {
            out.push(Diagnostic::error(
                format!("{p}.virtual_ipaddress[{j}].label"),
                why,
            ));
        }
    }
}

fn check_checksum(p: &str, inst: &Instance, out: &mut Vec<Diagnostic>) {
    if let Some(msg) = v3_checksum_warning(inst.version, inst.v3_checksum) {
        out.push(Diagnostic::warning(format!("{p}.v3_checksum"), msg));
    }
}

impl VrrpConfig {
    /// Semantic checks that the types cannot express.
    pub fn validate(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.instances.is_empty() {
            out.push(Diagnostic::error(
                "instances",
                "at least one VRRP instance is required",
            ));
        }
        let mut names = BTreeSet::new();
        let scripts: BTreeSet<&str> = self.track_scripts.iter().map(|s| s.name.as_str()).collect();
        for (i, inst) in self.instances.iter().enumerate() {
            let p = format!("instances[{i}]");
            if !names.insert(inst.name.as_str()) {
                out.push(Diagnostic::error(
                    format!("{p}.name"),
                    format!("instance name `{}` is used twice", inst.name),
                ));
            }
            if let Some(why) = vrid_problem(inst.virtual_router_id.into()) {
                out.push(Diagnostic::error(format!("{p}.virtual_router_id"), why));
            }
            if let Some(why) = priority_problem("priority", inst.priority.into()) {
                out.push(Diagnostic::error(format!("{p}.priority"), why));
            }
            if let Some(msg) = advert_interval_problem(inst.version, inst.advert_interval) {
                out.push(Diagnostic::error(format!("{p}.advert_interval"), msg));
            }
            if let Some(why) =
                (inst.auth_pass.as_ref()).and_then(|a| auth_pass_problem(inst.version, a.expose()))
            {
                out.push(Diagnostic::error(format!("{p}.auth_pass"), why));
            }
            if inst.virtual_ipaddress.is_empty() {
                out.push(Diagnostic::error(
                    format!("{p}.virtual_ipaddress"),
                    "at least one virtual IP address is required",
                ));
            }
            if let Some(u) = &inst.unicast {
                if u.peers.is_empty() {
                    out.push(Diagnostic::error(
                        format!("{p}.unicast.peers"),
                        "unicast mode needs at least one peer",
                    ));
                }
                if u.peers.contains(&u.src_ip) {
                    out.push(Diagnostic::error(
                        format!("{p}.unicast.peers"),
                        format!(
                            "peer list contains this node's own source address {}",
                            u.src_ip
                        ),
                    ));
                }
            } else if let Some(why) = multicast_group_problem(inst.multicast_group) {
                out.push(Diagnostic::error(format!("{p}.multicast_group"), why));
            }
            check_peers(&p, inst, &mut out);
            check_checksum(&p, inst, &mut out);
            check_names(&p, inst, &mut out);
            for (j, r) in inst.track_script.iter().enumerate() {
                if !scripts.contains(r.name.as_str()) {
                    out.push(Diagnostic::error(
                        format!("{p}.track_script[{j}].name"),
                        format!("no track script named `{}` in track_scripts", r.name),
                    ));
                }
            }
            for (k, argv) in inst.notify.entries() {
                check_argv(&format!("{p}.notify.{k}"), argv, &mut out);
            }
        }
        let uses = (self.instances.iter()).map(|i| (i.interface.as_str(), i.virtual_router_id));
        for (i, prev) in vrid_reuse(uses) {
            let inst = &self.instances[i];
            out.push(Diagnostic::error(
                format!("instances[{i}].virtual_router_id"),
                vrid_reuse_message(
                    inst.virtual_router_id,
                    &inst.interface,
                    &format!("instances[{prev}]"),
                ),
            ));
        }
        if let Some((key, why)) = realtime_problem(&self.realtime) {
            out.push(Diagnostic::error(format!("realtime.{key}"), why));
        }
        for (i, s) in self.track_scripts.iter().enumerate() {
            check_argv(&format!("track_scripts[{i}].script"), &s.script, &mut out);
            for (key, n) in [("rise", s.rise), ("fall", s.fall)] {
                if let Some(why) = rise_fall_problem(key, n.into()) {
                    out.push(Diagnostic::error(format!("track_scripts[{i}].{key}"), why));
                }
            }
        }
        out
    }
}

/// The protocol crate's version for a configured one, written once for the
/// daemon, the failover test and apply's election bound.
impl From<Version> for hadeploy_vrrp::Version {
    fn from(v: Version) -> Self {
        match v {
            Version::V2 => hadeploy_vrrp::Version::V2,
            Version::V3 => hadeploy_vrrp::Version::V3,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::diag::{ConfigError, Severity};

    const BASE: &str = "node: n
instances:
  - name: V
    interface: eth0
    virtual_router_id: 51
    version: 3
    priority: 100
    advert_interval: 20ms
    source_address: 10.0.0.11
    virtual_ipaddress: [{address: 10.0.0.100/24}]
";

    fn diags(extra: &str) -> Result<Vec<crate::Diagnostic>, ConfigError> {
        crate::parse_vrrp(&format!("{BASE}{extra}"), Path::new("vrrp.yaml")).map(|(_, w)| w)
    }

    fn messages(extra: &str) -> Vec<String> {
        diags(extra)
            .expect("valid")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn vrrp_only_checksum_warns_with_position() {
        let w = messages("    peers: [10.0.0.12]\n    v3_checksum: vrrp_only\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("vrrp.yaml:12:5: warning: instances[0].v3_checksum: vrrp_only"),
            "{w:?}"
        );
        assert!(w[0].contains("FRR") && w[0].contains("both routers become MASTER"));
        assert!(messages("    peers: [10.0.0.12]\n").is_empty());
        let v2 = BASE
            .replace("version: 3", "version: 2")
            .replace("20ms", "1s");
        let (_, w) = crate::parse_vrrp(
            &format!("{v2}    peers: []\n    v3_checksum: vrrp_only\n"),
            Path::new("v.yaml"),
        )
        .expect("valid");
        assert!(w[0].message.contains("no effect"), "{w:?}");
    }

    #[test]
    fn peer_list_absent_in_multicast_mode_warns() {
        let w = messages("");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("accepted from any source"), "{w:?}");
        assert!(messages("    accept_any_peer: true\n").is_empty());
        assert!(
            messages("    peers: []\n").is_empty(),
            "one router: no peer"
        );
        assert!(
            messages("    unicast: {src_ip: 10.0.0.11, peers: [10.0.0.12]}\n").is_empty(),
            "unicast peers are the list"
        );
    }

    #[test]
    fn own_address_as_peer_is_an_error() {
        for extra in [
            "    peers: [10.0.0.11]\n",
            "    peers: [10.0.0.12]\n    accept_peers: [10.0.0.11]\n",
        ] {
            let e = diags(extra).expect_err("own address");
            let d = &e.diagnostics()[0];
            assert_eq!(d.severity, Severity::Error);
            assert!(d.message.contains("own address"), "{d}");
        }
    }

    /// The inventory's duration keys give the same message (duration::parse).
    #[test]
    fn bad_duration_names_the_text_and_the_line() {
        let e = crate::parse_vrrp(&BASE.replace("20ms", "20 parsecs"), Path::new("v.yaml"))
            .expect_err("not a duration");
        let d = &e.diagnostics()[0];
        assert_eq!(d.line, Some(8), "{d}");
        assert!(
            d.message
                .contains("`20 parsecs` is not a duration (unknown time unit \"parsecs\""),
            "{d}"
        );
    }

    #[test]
    fn realtime_defaults_and_range() {
        let (cfg, _) = crate::parse_vrrp(BASE, Path::new("v.yaml")).expect("valid");
        assert!(cfg.realtime.enabled && cfg.realtime.lock_memory);
        assert_eq!(cfg.realtime.priority, 10);
        let e = crate::parse_vrrp(
            &format!("{BASE}realtime: {{priority: 0}}\n"),
            Path::new("v.yaml"),
        )
        .expect_err("range");
        assert!(e.to_string().contains("1..99"), "{e}");
        let (cfg, _) = crate::parse_vrrp(
            &format!("{BASE}realtime: {{enabled: false}}\n"),
            Path::new("v.yaml"),
        )
        .expect("valid");
        assert!(!cfg.realtime.enabled && cfg.realtime.lock_memory);
    }

    /// The rules `hadeploy check` shares (cli/inventory tests/check.rs
    /// gives the same wording with file:line).
    #[test]
    fn shared_range_rules_and_vrid_reuse() {
        assert_eq!(
            vrid_problem(0).as_deref(),
            Some("virtual_router_id must be 1..255, not 0")
        );
        assert!(vrid_problem(255).is_none() && vrid_problem(1).is_none());
        assert!(
            priority_problem("priority", 256)
                .expect("256 is out of range")
                .starts_with("priority must be 1..255, not 256 (255 only for")
        );
        assert!(
            rise_fall_problem("fall", 0)
                .expect("0 is out of range")
                .starts_with("fall must be 1..2147483647")
        );
        assert!(rise_fall_problem("rise", i64::from(i32::MAX)).is_none());
        let uses = [
            ("eth0", 1),
            ("eth1", 1),
            ("eth0", 2),
            ("eth0", 1),
            ("eth1", 1),
        ];
        assert_eq!(vrid_reuse(uses), vec![(3, 0), (4, 1)]);

        let twice = format!(
            "{BASE}  - name: W\n    interface: eth0\n    virtual_router_id: 51\n    version: 3\n    \
             priority: 90\n    advert_interval: 20ms\n    peers: []\n    \
             virtual_ipaddress: [{{address: 10.0.0.101/24}}]\n"
        );
        let e = crate::parse_vrrp(&twice, Path::new("v.yaml")).expect_err("VRID reused");
        let d = &e.diagnostics()[0];
        assert_eq!(d.path, "instances[1].virtual_router_id", "{d}");
        assert_eq!(
            d.message,
            "virtual_router_id 51 is already used on eth0 by instances[0]"
        );
        let zero = format!("{BASE}track_scripts:\n  - {{name: t, script: [/bin/true], rise: 0}}\n");
        let e = crate::parse_vrrp(&zero, Path::new("v.yaml")).expect_err("rise 0");
        assert!(
            e.diagnostics()
                .iter()
                .any(|d| d.path == "track_scripts[0].rise"
                    && d.message.starts_with("rise must be 1..2147483647, not 0")),
            "{e}"
        );
    }

    /// `hadeploy-runtime check` applies the interface-name and label rules
    /// the inventory applies, to every name the daemon hands the kernel.
    #[test]
    fn long_interface_names_and_labels_fail_validate() {
        let long = BASE.replace("interface: eth0", "interface: eth0123456789abcdefg");
        let e = crate::parse_vrrp(&format!("{long}    peers: []\n"), Path::new("vrrp.yaml"))
            .expect_err("20-character interface");
        let d = &e.diagnostics()[0];
        assert_eq!(d.path, "instances[0].interface", "{e}");
        assert_eq!(d.line, Some(4), "{e}");
        assert!(
            d.message
                .starts_with("`eth0123456789abcdefg` is not a valid interface name"),
            "{e}"
        );
        let more = BASE.replace(
            "[{address: 10.0.0.100/24}]",
            "[{address: 10.0.0.100/24, dev: 'a/b', label: eth0:toolonglabel}]",
        );
        let e = crate::parse_vrrp(
            &format!("{more}    peers: []\n    track_interface: ['']\n"),
            Path::new("vrrp.yaml"),
        )
        .expect_err("bad names");
        let paths: Vec<&str> = e.diagnostics().iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "instances[0].virtual_ipaddress[0].dev",
                "instances[0].virtual_ipaddress[0].label",
                "instances[0].track_interface[0]",
            ],
            "{e}"
        );
    }

    /// A partial `garp` keeps keepalived's other defaults (the protocol
    /// crate's `GarpParams`) and hadeploy's 300 ms interval.
    #[test]
    fn partial_garp_takes_the_other_defaults() {
        let (cfg, _) = crate::parse_vrrp(
            &format!("{BASE}    peers: []\n    garp: {{master_repeat: 3}}\n"),
            Path::new("v.yaml"),
        )
        .expect("valid");
        let g = &cfg.instances[0].garp;
        assert_eq!(g.master_repeat, 3);
        assert_eq!(g.master_delay, Duration::from_secs(5));
        assert_eq!(g.interval, Duration::from_millis(300));
        assert_eq!(g.master_refresh_repeat, 1);
        assert!(g.lower_prio_announce && g.master_refresh.is_none());
    }

    #[test]
    fn auth_pass_is_written_but_never_debug_printed() {
        let (cfg, _) = crate::parse_vrrp(
            &format!("{BASE}    peers: []\n    auth_pass: s3cr3t\n")
                .replace("version: 3", "version: 2")
                .replace("advert_interval: 20ms", "advert_interval: 1s"),
            Path::new("v.yaml"),
        )
        .expect("valid");
        let pass = cfg.instances[0].auth_pass.as_ref().expect("auth_pass");
        assert_eq!(pass.expose(), "s3cr3t");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("AuthPass(****)"), "{shown}");
        let written = crate::to_yaml(&cfg).expect("serialize");
        assert!(written.contains("auth_pass: s3cr3t"), "{written}");
    }
}
