//! Errors of the daemon's I/O, each naming what it was doing and on what
//! (instance, interface, peer), so one journald line is enough to act on.

use std::io;
use std::net::Ipv4Addr;

/// Everything that can stop the daemon or fail one of its actions.
#[derive(Debug, thiserror::Error)]
pub enum VrrpdError {
    #[error("VRRP socket on interface {interface}: {op}: {source}")]
    Socket {
        interface: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("netlink: {op} on interface {interface}: {detail}")]
    Netlink {
        interface: String,
        op: &'static str,
        detail: String,
    },
    #[error("interface {interface} does not exist")]
    NoInterface { interface: String },
    #[error("interface {interface} has no IPv4 address to send VRRP adverts from")]
    NoAddress { interface: String },
    #[error("gratuitous ARP for {vip} on {interface}: {source}")]
    Arp {
        interface: String,
        vip: Ipv4Addr,
        #[source]
        source: io::Error,
    },
    #[error("instance {instance}: {detail}")]
    Instance { instance: String, detail: String },
    #[error("starting the VRRP protocol thread: {0}")]
    Thread(#[source] io::Error),
    #[error("the VRRP protocol thread panicked")]
    ThreadPanicked,
}
