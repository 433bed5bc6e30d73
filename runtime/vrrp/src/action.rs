//! What an instance asks the adapter to do.

use std::net::Ipv4Addr;

use tokio::time::Instant;

use crate::auth::Auth;
use crate::packet::{Advert, EncodeError, V3Checksum, encode};
use crate::state::State;

/// One instruction to the adapter, to be carried out in list order.
///
/// Actions are self-contained (they carry addresses and the full advert,
/// not references to params) so a reload cannot change what an already
/// returned action means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert to the multicast group or to each unicast peer.
    SendAdvert(Outgoing),
    /// Add these VIPs to their interfaces.
    AddVips(Vec<Ipv4Addr>),
    /// Remove these VIPs from their interfaces.
    RemoveVips(Vec<Ipv4Addr>),
    /// Send `count` gratuitous ARPs for each VIP (spaced by the adapter's
    /// `garp_interval`).
    SendGarp { vips: Vec<Ipv4Addr>, count: u32 },
    /// Run the notify hooks for `state` (keepalived passes `priority` as the
    /// 4th argument). Hooks must not block the protocol loop. `reason` and
    /// `sender` are those of the transition that entered `state`, so a hook
    /// can say why (and because of whom) it runs.
    Notify {
        state: State,
        priority: u8,
        reason: Reason,
        sender: Option<Sender>,
    },
    /// A state change, for logs and counters. Always the first action of the
    /// batch that makes the change.
    Transition(Transition),
}

/// An advert ready to encode, with the wire options it is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub advert: Advert,
    /// IP source address (the instance's primary IP).
    pub source: Ipv4Addr,
    pub auth: Auth,
    pub v3_checksum: V3Checksum,
}

impl Outgoing {
    /// The IP payload for a packet to `dst` (the group, or one unicast
    /// peer: the v3 pseudo-header checksum differs per destination).
    /// Send it with TTL 255, protocol 112.
    ///
    /// Cannot fail for adverts built from validated params; the error is
    /// still returned rather than hidden.
    pub fn encode(&self, dst: Ipv4Addr) -> Result<Vec<u8>, EncodeError> {
        encode(&self.advert, &self.auth, self.source, dst, self.v3_checksum)
    }
}

/// A state change record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: Reason,
    pub at: Instant,
    /// The advert behind it: the winner we stepped down to, the master that
    /// sent priority 0, the lower-priority master we preempted, or the
    /// master that fell silent (its last advert). None when no advert was
    /// involved (startup, fault, shutdown, or a master never heard).
    pub sender: Option<Sender>,
}

/// Who sent the advert behind a transition, and with what priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sender {
    pub address: Ipv4Addr,
    pub priority: u8,
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `Event::Startup` (to Backup, to Master for an owner, to Fault if the
    /// fault condition was already present).
    Startup,
    /// Master_Down_Timer expired: the master went silent (no advert for
    /// Master_Down_Interval), or none was ever heard.
    MasterDown,
    /// The master we followed sent priority 0 (it is stopping or stepping
    /// down) and we claimed after Skew_Time.
    PriorityZero,
    /// The master has a lower priority than ours and we preempted it.
    Preempt,
    /// A Master heard a higher priority.
    HigherPriority,
    /// A Master heard an equal priority from a higher primary IP.
    EqualPriorityHigherIp,
    /// `Event::LinkDown`.
    Fault,
    /// `Event::LinkUp`.
    FaultCleared,
    /// `Event::Shutdown`.
    Shutdown,
    /// A reload changed the VRID or version: a different virtual router, so
    /// the old one stops and the new one starts.
    Reload,
}

impl Reason {
    /// Every reason, for pre-registering counters.
    pub const ALL: [Reason; 10] = [
        Reason::Startup,
        Reason::MasterDown,
        Reason::PriorityZero,
        Reason::Preempt,
        Reason::HigherPriority,
        Reason::EqualPriorityHigherIp,
        Reason::Fault,
        Reason::FaultCleared,
        Reason::Shutdown,
        Reason::Reload,
    ];

    /// Stable label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::MasterDown => "master_down",
            Reason::PriorityZero => "priority_zero",
            Reason::Preempt => "preempt",
            Reason::HigherPriority => "higher_priority",
            Reason::EqualPriorityHigherIp => "equal_priority_higher_ip",
            Reason::Fault => "fault",
            Reason::FaultCleared => "fault_cleared",
            Reason::Shutdown => "shutdown",
            Reason::Reload => "reload",
        }
    }
}
