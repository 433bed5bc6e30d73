//! The VRRP protocol core of hadeploy's keepalived replacement: a packet
//! codec ([`encode`], [`decode`]) and the RFC state machine for one
//! instance ([`Instance`]). **It does no I/O.**
//!
//! # Why I/O-free
//!
//! VRRP's correctness is all in timing and ordering: Master_Down_Interval
//! to the nanosecond, priority-0 handover, preemption, tie breaks. Those
//! rules are tested here with plain `Instant` arithmetic (or tokio's paused
//! clock) and exact action lists, which no test that opens raw sockets or
//! edits interface addresses could do reliably or without root. The field
//! failures that matter (a node briefly master at boot, a backup taking over
//! because the protocol timer shared a thread with slow hook scripts or
//! netlink calls) are avoided by construction: the machine never blocks,
//! never sleeps, and tells the adapter what to do instead of doing it.
//!
//! The adapter (`hadeploy-vrrpd`, runtime/vrrpd) owns the raw socket,
//! netlink, GARP sending, hook processes, and one timer per instance.
//!
//! # Event loop
//!
//! ```
//! use std::net::Ipv4Addr;
//! use hadeploy_vrrp::{Action, Event, Instance, InstanceParams, State, VRRP_MULTICAST_V4, decode};
//! use tokio::time::{Duration, Instant};
//!
//! let me = Ipv4Addr::new(10, 0, 0, 2);
//! let vip = Ipv4Addr::new(10, 0, 0, 100);
//! let mut inst = Instance::new(InstanceParams::new(51, me, vec![vip])).unwrap();
//!
//! // What the adapter does with each action, in order.
//! let mut apply = |actions: Vec<Action>| {
//!     for action in actions {
//!         match action {
//!             // Encode per destination; send with TTL 255, IP protocol 112.
//!             Action::SendAdvert(out) => { let _payload = out.encode(VRRP_MULTICAST_V4).unwrap(); }
//!             Action::AddVips(_) | Action::RemoveVips(_) => { /* netlink */ }
//!             Action::SendGarp { .. } => { /* AF_PACKET, on the protocol's own task */ }
//!             Action::Notify { .. } => { /* spawn hooks, never await them here */ }
//!             Action::Transition(t) => { /* log + counter t.reason.as_str() */ let _ = t; }
//!         }
//!     }
//! };
//!
//! let t0 = Instant::now();
//! apply(inst.handle(t0, Event::Startup));
//! assert_eq!(inst.state(), State::Backup); // never master at boot
//!
//! // Loop: select on the socket and on sleep_until(inst.next_deadline()).
//! // A packet: decode against the instance's expectations, count discards.
//! let from_peer = [0x21, 51, 200, 1, 0, 1, 0x0c, 0x66, 10, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0];
//! let peer = Ipv4Addr::new(10, 0, 0, 3);
//! match decode(peer, VRRP_MULTICAST_V4, 255, &from_peer, inst.expectations()) {
//!     Ok(rx) => apply(inst.handle(t0 + Duration::from_millis(300), Event::Advert(rx))),
//!     Err(why) => panic!("discarded: {}", why.as_str()), // a metrics label
//! }
//! // The deadline moved: 3 * 1 s + (256 - 100) / 256 s after that advert.
//! assert_eq!(inst.next_deadline(), Some(t0 + Duration::from_nanos(3_909_375_000)));
//!
//! // The peer falls silent: the timer fires and we take over.
//! let due = inst.next_deadline().unwrap();
//! apply(inst.handle(due, Event::TimerExpired));
//! assert_eq!(inst.state(), State::Master);
//!
//! // SIGTERM: priority 0 advert, VIPs removed, STOP hooks.
//! apply(inst.handle(due, Event::Shutdown));
//! ```
//!
//! Multiple instances sharing a socket can dispatch on [`peek_vrid`]; a
//! packet for no instance is [`Discard::WrongVrid`], which is not an error.

mod action;
mod auth;
mod checksum;
mod discard;
mod event;
mod machine;
mod packet;
mod params;
mod state;
mod timers;

pub use action::{Action, Outgoing, Reason, Sender, Transition};
pub use auth::Auth;
pub use discard::Discard;
pub use event::Event;
pub use machine::Instance;
pub use packet::{
    Advert, ChecksumForm, EncodeError, Expectations, IPPROTO_VRRP, Received, V3Checksum,
    VRRP_MULTICAST_V4, VRRP_TTL, Version, decode, encode, interval_field, peek_priority, peek_vrid,
};
pub use params::{GarpParams, InstanceParams, ParamsError, PeerPolicy};
pub use state::State;
pub use timers::{master_down_interval, skew_time};
