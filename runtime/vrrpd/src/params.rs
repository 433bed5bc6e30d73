//! Config (YAML types) to protocol params.

use std::net::Ipv4Addr;

use hadeploy_config::vrrp::{self as cfg, Instance};
use hadeploy_vrrp::{Auth, GarpParams, InstanceParams, PeerPolicy, V3Checksum, Version};

/// Where adverts of `inst` go: its unicast peers, or its multicast group.
pub fn destinations(inst: &Instance) -> Vec<Ipv4Addr> {
    match &inst.unicast {
        Some(u) => u.peers.clone(),
        None => vec![inst.multicast_group],
    }
}

/// The configured source address, if any (unicast src_ip wins, as in
/// keepalived, where unicast_src_ip is the only source setting).
pub fn configured_source(inst: &Instance) -> Option<Ipv4Addr> {
    inst.unicast
        .as_ref()
        .map(|u| u.src_ip)
        .or(inst.source_address)
}

/// Whose adverts `inst` accepts: its `peers` and unicast peers are its own
/// routers; a multicast config with no peer list accepts any source
/// (keepalived's behaviour; `check` warns about it).
pub fn peer_policy(inst: &Instance) -> PeerPolicy {
    let mut known: Vec<Ipv4Addr> = inst.peers.clone().unwrap_or_default();
    if let Some(u) = &inst.unicast {
        known.extend(u.peers.iter().copied());
    }
    known.sort_unstable();
    known.dedup();
    PeerPolicy {
        known,
        also_accept: inst.accept_peers.clone(),
        accept_any: inst.accept_any_peer || (inst.peers.is_none() && inst.unicast.is_none()),
    }
}

/// The protocol params of `inst`, sending from `primary_ip`.
pub fn instance_params(inst: &Instance, primary_ip: Ipv4Addr) -> InstanceParams {
    let mut p = InstanceParams::new(
        inst.virtual_router_id,
        primary_ip,
        inst.virtual_ipaddress
            .iter()
            .map(|v| v.address.addr())
            .collect(),
    );
    p.version = Version::from(inst.version);
    p.priority = inst.priority;
    p.advert_interval = inst.advert_interval;
    p.preempt = inst.preempt;
    p.preempt_delay = inst.preempt_delay;
    p.auth = match &inst.auth_pass {
        Some(pw) => Auth::pass(pw.expose().as_bytes()),
        None => Auth::None,
    };
    p.v3_checksum = match inst.v3_checksum {
        cfg::V3Checksum::PseudoHeader => V3Checksum::PseudoHeader,
        cfg::V3Checksum::VrrpOnly => V3Checksum::VrrpOnly,
    };
    // keepalived skips the TTL check for unicast: peers may be routed.
    p.check_ttl = inst.unicast.is_none();
    p.garp = GarpParams {
        master_delay: inst.garp.master_delay,
        master_repeat: inst.garp.master_repeat,
        master_refresh: inst.garp.master_refresh,
        master_refresh_repeat: inst.garp.master_refresh_repeat,
        lower_prio_announce: inst.garp.lower_prio_announce,
    };
    p.peers = peer_policy(inst);
    // The machine refuses its own address as a peer; the config check says
    // so first, this only keeps a source picked from the interface (no
    // source_address) from failing the instance.
    p.peers.known.retain(|&a| a != primary_ip);
    p.peers.also_accept.retain(|&a| a != primary_ip);
    p
}
