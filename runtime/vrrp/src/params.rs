//! Per-instance configuration the state machine runs on.
//!
//! Deliberately independent of the config crate's YAML types: the adapter
//! maps config to these, and this crate stays a protocol library with no
//! serde or file-format concerns. Interface names, VIP prefixes and labels
//! are the adapter's business; the protocol only needs the addresses.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::auth::Auth;
use crate::packet::{EncodeError, Expectations, V3Checksum, Version, interval_field};

/// Gratuitous ARP schedule while Master. Defaults are keepalived's.
///
/// GARPs are what move clients and switches to the new master's MAC; a lost
/// burst leaves clients on a stale ARP entry for minutes, hence the repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpParams {
    /// `garp_master_delay`: a second burst this long after becoming master
    /// (default 5 s). Zero disables the second burst.
    pub master_delay: Duration,
    /// `garp_master_repeat`: GARPs per VIP per burst (default 5).
    pub master_repeat: u32,
    /// `garp_master_refresh`: periodic burst while master (default off).
    pub master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`: GARPs per VIP per refresh (default 1).
    pub master_refresh_repeat: u32,
    /// On hearing a lower-priority advert while Master, re-announce at once
    /// (advert + GARP burst, and the delayed burst again), as keepalived does:
    /// this is what heals stale ARP caches after a split brain ends.
    pub lower_prio_announce: bool,
}

impl Default for GarpParams {
    fn default() -> Self {
        GarpParams {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: None,
            master_refresh_repeat: 1,
            lower_prio_announce: true,
        }
    }
}

/// Which advert sources an instance listens to, and which of them are its
/// own cluster.
///
/// A forged or colliding advert (same VRID and addresses, from a host that
/// is not one of ours) used to make a pair flap: each stepped down to it,
/// said so with priority 0, and the other read that as "the master is
/// stopping". Filtering sources stops the stranger at the door; `known`
/// keeps the priority-0 split-brain heal for the routers that run it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerPolicy {
    /// The other routers of this virtual router (the load balancers of the
    /// cluster, unicast peers). Their adverts are accepted, and only a known
    /// winner is told with priority 0 that we stepped down.
    pub known: Vec<Ipv4Addr>,
    /// Third-party routers also accepted (a router taking part in the
    /// election): they may win, but stepping down to one sends no priority 0.
    pub also_accept: Vec<Ipv4Addr>,
    /// Accept adverts from any source (keepalived's behaviour). Off, an
    /// advert from a source in neither list is discarded as `unknown_peer`.
    pub accept_any: bool,
}

impl PeerPolicy {
    /// No source filter and no known peer: keepalived's behaviour.
    pub fn any() -> Self {
        PeerPolicy {
            accept_any: true,
            ..PeerPolicy::default()
        }
    }

    /// Only these peers (and nothing else) are accepted.
    pub fn only(known: Vec<Ipv4Addr>) -> Self {
        PeerPolicy {
            known,
            ..PeerPolicy::default()
        }
    }

    /// Whether `source` is one of the cluster's own routers.
    pub fn is_known(&self, source: Ipv4Addr) -> bool {
        self.known.contains(&source)
    }

    /// The sources `decode` accepts; None for any.
    pub fn accepted(&self) -> Option<Vec<Ipv4Addr>> {
        (!self.accept_any).then(|| {
            let mut all: Vec<Ipv4Addr> = self
                .known
                .iter()
                .chain(&self.also_accept)
                .copied()
                .collect();
            all.sort_unstable();
            all.dedup();
            all
        })
    }
}

/// Everything one VRRP instance needs to run the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceParams {
    pub version: Version,
    /// Virtual Router ID, 1..=255.
    pub vrid: u8,
    /// Configured priority: 1..=254, or 255 for the address owner (which
    /// becomes Master at once). Track-script weights are applied by the
    /// caller through `Event::PriorityChanged`.
    pub priority: u8,
    /// Advertisement_Interval: whole seconds 1..=255 (v2) or a multiple of
    /// 10 ms up to 40.95 s (v3).
    pub advert_interval: Duration,
    /// `false` is keepalived's `nopreempt`: a backup never takes over from a
    /// live master of lower priority.
    pub preempt: bool,
    /// No preemption this long after startup or after a fault clears, so a
    /// rebooted higher-priority node lets its services warm up first. It
    /// never delays taking over from a master that went silent.
    pub preempt_delay: Duration,
    /// This router's primary address: the advert source, and the tie
    /// breaker between two masters of equal priority (higher wins).
    pub primary_ip: Ipv4Addr,
    /// The virtual addresses, in advert order.
    pub vips: Vec<Ipv4Addr>,
    /// VRRPv2 authentication (must be `Auth::None` for v3).
    pub auth: Auth,
    /// VRRPv3 checksum form to send; either is accepted on receive.
    pub v3_checksum: V3Checksum,
    /// Require TTL 255 on receive: true for multicast; unicast peers behind
    /// a router need false.
    pub check_ttl: bool,
    /// Discard adverts whose address list differs from `vips` (keepalived's
    /// default; false is its `skip_check_adv_addr`).
    pub check_addresses: bool,
    pub garp: GarpParams,
    /// Whose adverts count (see [`PeerPolicy`]).
    pub peers: PeerPolicy,
}

impl InstanceParams {
    /// keepalived's defaults: v2, priority 100, 1 s adverts, preempt on, no
    /// auth, TTL and address checks on, keepalived GARP schedule, adverts
    /// from any source (set `peers` to filter).
    pub fn new(vrid: u8, primary_ip: Ipv4Addr, vips: Vec<Ipv4Addr>) -> Self {
        InstanceParams {
            version: Version::V2,
            vrid,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_ip,
            vips,
            auth: Auth::None,
            v3_checksum: V3Checksum::PseudoHeader,
            check_ttl: true,
            check_addresses: true,
            garp: GarpParams::default(),
            peers: PeerPolicy::any(),
        }
    }

    /// Reject what the protocol cannot run, so the state machine never meets
    /// an unencodable advert or a zero-length timer at run time.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.vrid == 0 {
            return Err(ParamsError::BadVrid);
        }
        if self.priority == 0 {
            return Err(ParamsError::BadPriority);
        }
        interval_field(self.version, self.advert_interval).map_err(ParamsError::BadInterval)?;
        if self.vips.is_empty() {
            return Err(ParamsError::NoVips);
        }
        if self.vips.len() > 255 {
            return Err(ParamsError::TooManyVips(self.vips.len()));
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(ParamsError::AuthNeedsV2);
        }
        if self.garp.master_refresh == Some(Duration::ZERO) {
            return Err(ParamsError::ZeroGarpRefresh);
        }
        if self.peers.known.contains(&self.primary_ip)
            || self.peers.also_accept.contains(&self.primary_ip)
        {
            return Err(ParamsError::SelfAsPeer(self.primary_ip));
        }
        Ok(())
    }

    /// What `decode` must check for this instance.
    pub fn expectations(&self) -> Expectations {
        Expectations {
            version: self.version,
            vrid: self.vrid,
            auth: self.auth,
            interval: self.advert_interval,
            addresses: self.check_addresses.then(|| self.vips.clone()),
            check_ttl: self.check_ttl,
            v3_checksum: self.v3_checksum,
            sources: self.peers.accepted(),
        }
    }
}

/// Why params cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("virtual router id must be 1..=255")]
    BadVrid,
    #[error("priority must be 1..=255 (0 is reserved for a master that stops)")]
    BadPriority,
    #[error(transparent)]
    BadInterval(EncodeError),
    #[error("at least one virtual IP address is required")]
    NoVips,
    #[error("{0} virtual IP addresses do not fit in one advert (at most 255)")]
    TooManyVips(usize),
    #[error("VRRPv3 has no authentication; use version 2 for PASS")]
    AuthNeedsV2,
    #[error("garp master_refresh of zero would send GARPs in a tight loop")]
    ZeroGarpRefresh,
    #[error("this router's own address {0} is listed as a peer")]
    SelfAsPeer(Ipv4Addr),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> InstanceParams {
        InstanceParams::new(
            7,
            Ipv4Addr::new(10, 0, 0, 2),
            vec![Ipv4Addr::new(10, 0, 0, 100)],
        )
    }

    #[test]
    fn defaults_are_keepalived_and_valid() {
        let p = ok();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.garp.master_delay, Duration::from_secs(5));
        assert_eq!(p.garp.master_repeat, 5);
        assert_eq!(p.garp.master_refresh, None);
        assert!(p.preempt);
    }

    #[test]
    fn each_invalid_field_is_rejected() {
        type Case = (fn(&mut InstanceParams), ParamsError);
        let cases: Vec<Case> = vec![
            (|p| p.vrid = 0, ParamsError::BadVrid),
            (|p| p.priority = 0, ParamsError::BadPriority),
            (|p| p.vips.clear(), ParamsError::NoVips),
            (
                |p| p.vips = vec![Ipv4Addr::LOCALHOST; 256],
                ParamsError::TooManyVips(256),
            ),
            (
                |p| {
                    p.version = Version::V3;
                    p.auth = Auth::pass(b"x");
                },
                ParamsError::AuthNeedsV2,
            ),
            (
                |p| p.garp.master_refresh = Some(Duration::ZERO),
                ParamsError::ZeroGarpRefresh,
            ),
        ];
        for (edit, want) in cases {
            let mut p = ok();
            edit(&mut p);
            assert_eq!(p.validate(), Err(want));
        }
        let mut p = ok();
        p.peers = PeerPolicy::only(vec![p.primary_ip]);
        assert_eq!(p.validate(), Err(ParamsError::SelfAsPeer(p.primary_ip)));
        let mut p = ok();
        p.advert_interval = Duration::from_millis(100);
        assert!(matches!(p.validate(), Err(ParamsError::BadInterval(_))));
        p.version = Version::V3;
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn expectations_follow_params() {
        let mut p = ok();
        p.auth = Auth::pass(b"pw");
        let e = p.expectations();
        assert_eq!(e.vrid, 7);
        assert_eq!(e.auth, Auth::pass(b"pw"));
        assert_eq!(e.addresses, Some(p.vips.clone()));
        assert!(e.check_ttl);
        p.check_addresses = false;
        p.check_ttl = false;
        let e = p.expectations();
        assert_eq!(e.addresses, None);
        assert!(!e.check_ttl);
        assert_eq!(e.sources, None, "keepalived's default: any source");
    }

    #[test]
    fn peer_policy_sources() {
        let a = Ipv4Addr::new(10, 0, 0, 3);
        let r = Ipv4Addr::new(10, 0, 0, 1);
        let mut pol = PeerPolicy::only(vec![a]);
        assert_eq!(pol.accepted(), Some(vec![a]));
        pol.also_accept = vec![r, a];
        assert_eq!(pol.accepted(), Some(vec![r, a]));
        assert!(pol.is_known(a) && !pol.is_known(r));
        assert_eq!(PeerPolicy::only(vec![]).accepted(), Some(vec![]));
        pol.accept_any = true;
        assert_eq!(pol.accepted(), None);
        assert!(pol.is_known(a), "known stays known with accept_any");
    }
}
