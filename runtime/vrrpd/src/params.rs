//! Config (YAML types) to protocol params.

use std::net::Ipv4Addr;

use hadeploy_config::vrrp::{self as cfg, Instance};
use hadeploy_vrrp::{Auth, GarpParams, InstanceParams, V3Checksum, Version};

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
    p.version = match inst.version {
        cfg::Version::V2 => Version::V2,
        cfg::Version::V3 => Version::V3,
    };
    p.priority = inst.priority;
    p.advert_interval = inst.advert_interval;
    p.preempt = inst.preempt;
    p.preempt_delay = inst.preempt_delay;
    p.auth = match &inst.auth_pass {
        Some(pw) => Auth::pass(pw.as_bytes()),
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
    p
}
