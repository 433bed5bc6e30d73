//! The raw IPv4 socket for IP protocol 112, one per interface.
//!
//! We write the IP header ourselves (IP_HDRINCL) because the source address
//! is part of the VRRPv3 pseudo-header checksum and of the priority tie
//! break: it must be exactly the configured one, not whatever the kernel's
//! source selection picks. The kernel still fills in the IP id and header
//! checksum. Received packets always come with their IP header on a raw
//! socket, which gives TTL, source and destination for validation.
//!
//! Instances on one interface share the socket; the daemon demultiplexes
//! by VRID (byte 1 of the VRRP header).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use pnet::packet::ip::IpNextHeaderProtocol;
use pnet::packet::ipv4::{Ipv4Packet, MutableIpv4Packet};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

use crate::error::VrrpdError;

/// IANA protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// RFC 5798 section 5.1.1.3: sent with 255, received only with 255.
pub const VRRP_TTL: u8 = 255;
/// IPTOS_PREC_INTERNETCONTROL, as keepalived sets: routers may prioritise it.
const TOS_INTERNETCONTROL: u8 = 0xc0;
const IPV4_HEADER_LEN: usize = 20;

/// One received VRRP packet, IP header already taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// The VRRP message (IP payload, IP options skipped).
    pub payload: &'a [u8],
}

impl Received<'_> {
    /// The VRID, for demultiplexing; `None` for a runt the codec will reject.
    pub fn vrid(&self) -> Option<u8> {
        self.payload.get(1).copied()
    }
}

/// Splits a raw IPv4 datagram; `None` when it is not a sane IPv4/112 packet
/// (cannot happen for what the kernel hands a protocol-112 raw socket, but
/// the parser must not trust that).
pub fn parse_ipv4(datagram: &[u8]) -> Option<Received<'_>> {
    let ip = Ipv4Packet::new(datagram)?;
    let ihl = usize::from(ip.get_header_length()) * 4;
    if ip.get_version() != 4 || ihl < IPV4_HEADER_LEN || ihl > datagram.len() {
        return None;
    }
    if ip.get_next_level_protocol().0 != IPPROTO_VRRP {
        return None;
    }
    // Trust total length over the buffer size (Ethernet padding), but never
    // read past the buffer.
    let total = usize::from(ip.get_total_length()).clamp(ihl, datagram.len());
    Some(Received {
        src: ip.get_source(),
        dst: ip.get_destination(),
        ttl: ip.get_ttl(),
        payload: &datagram[ihl..total],
    })
}

/// Builds the IPv4 datagram carrying `vrrp` from `src` to `dst`, TTL 255.
pub fn build_ipv4(src: Ipv4Addr, dst: Ipv4Addr, vrrp: &[u8]) -> Vec<u8> {
    let total = IPV4_HEADER_LEN + vrrp.len();
    let mut buf = vec![0u8; total];
    // The buffer is exactly header + payload long, so the constructor cannot
    // fail; the fallback keeps this free of a panic path anyway.
    let Some(mut ip) = MutableIpv4Packet::new(&mut buf) else {
        return Vec::new();
    };
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_dscp(TOS_INTERNETCONTROL >> 2);
    ip.set_total_length(u16::try_from(total).unwrap_or(u16::MAX));
    ip.set_ttl(VRRP_TTL);
    ip.set_next_level_protocol(IpNextHeaderProtocol(IPPROTO_VRRP));
    ip.set_source(src);
    ip.set_destination(dst);
    ip.set_payload(vrrp);
    // Identification and header checksum stay 0: with IP_HDRINCL the kernel
    // fills both in.
    buf
}

/// A raw VRRP socket bound to one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    io: tokio::net::UdpSocket,
    /// The same socket (a dup of the fd), for socket options.
    ctl: Socket,
    interface: String,
    ifindex: u32,
}

impl VrrpSocket {
    /// Opens the socket on `interface` (index `ifindex`). Needs CAP_NET_RAW,
    /// and a tokio runtime with I/O enabled.
    pub fn open(interface: &str, ifindex: u32) -> Result<Self, VrrpdError> {
        let err = |op: &'static str| {
            let interface = interface.to_string();
            move |source| VrrpdError::Socket {
                interface,
                op,
                source,
            }
        };
        let sock = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )
        .map_err(err("socket(AF_INET, SOCK_RAW, 112)"))?;
        sock.set_nonblocking(true)
            .map_err(err("set non-blocking"))?;
        // Only this interface's packets; and sends leave through it.
        sock.bind_device(Some(interface.as_bytes()))
            .map_err(err("SO_BINDTODEVICE"))?;
        sock.set_header_included_v4(true)
            .map_err(err("IP_HDRINCL"))?;
        // Meaningless with IP_HDRINCL (our header says 255) but harmless, and
        // right should the header ever be left to the kernel.
        sock.set_ttl_v4(u32::from(VRRP_TTL))
            .map_err(err("IP_TTL"))?;
        sock.set_multicast_ttl_v4(u32::from(VRRP_TTL))
            .map_err(err("IP_MULTICAST_TTL"))?;
        // Our own adverts must not come back as a "master" to compare with.
        sock.set_multicast_loop_v4(false)
            .map_err(err("IP_MULTICAST_LOOP"))?;
        // The multicast join needs the socket2 handle later; keep a dup.
        let ctl = sock.try_clone().map_err(err("dup"))?;
        // tokio's UdpSocket is a thin recvfrom/sendto wrapper that works on
        // any datagram-style socket, raw included. It is the safe way to get
        // readiness for it: AsyncFd::new is deprecated for I/O-safety
        // reasons and its replacement is `unsafe`.
        let io = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(sock))
            .map_err(err("register with tokio"))?;
        Ok(VrrpSocket {
            io,
            ctl,
            interface: interface.to_string(),
            ifindex,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Joins `group` on this socket's interface. Joining twice is fine.
    pub fn join(&self, group: Ipv4Addr) -> Result<(), VrrpdError> {
        match self
            .ctl
            .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(self.ifindex))
        {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EADDRINUSE) => Ok(()),
            Err(source) => Err(VrrpdError::Socket {
                interface: self.interface.clone(),
                op: "IP_ADD_MEMBERSHIP",
                source,
            }),
        }
    }

    /// Receives one datagram into `buf` and splits it; `None` for one whose
    /// IP header does not parse (counted by the caller, never silent).
    pub async fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Option<Received<'b>>> {
        let n = self.io.recv(buf).await?;
        Ok(parse_ipv4(&buf[..n]))
    }

    /// Sends a VRRP message from `src` to `dst` (group or unicast peer).
    pub async fn send(&self, src: Ipv4Addr, dst: Ipv4Addr, vrrp: &[u8]) -> io::Result<()> {
        let datagram = build_ipv4(src, dst, vrrp);
        self.io
            .send_to(&datagram, SocketAddrV4::new(dst, 0))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse_round_trips() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = hadeploy_vrrp::VRRP_MULTICAST_V4;
        let vrrp = [0x31, 7, 100, 1, 0, 100, 0, 0, 10, 0, 0, 100];
        let d = build_ipv4(src, dst, &vrrp);
        assert_eq!(d.len(), 32);
        assert_eq!(d[1], 0xc0, "TOS internet control");
        let r = parse_ipv4(&d).expect("parses");
        assert_eq!((r.src, r.dst, r.ttl), (src, dst, 255));
        assert_eq!(r.payload, &vrrp);
        assert_eq!(r.vrid(), Some(7));
    }

    #[test]
    fn parse_skips_options_and_padding() {
        let mut d = build_ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, &[0x21, 9]);
        // Add 4 bytes of IP options (NOPs) and 6 bytes of link padding.
        d.splice(20..20, [1u8, 1, 1, 1]);
        d[0] = 0x46;
        let total = u16::try_from(d.len()).expect("small");
        d[2..4].copy_from_slice(&total.to_be_bytes());
        d.extend_from_slice(&[0; 6]);
        let r = parse_ipv4(&d).expect("parses");
        assert_eq!(r.payload, &[0x21, 9]);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse_ipv4(&[]).is_none());
        assert!(parse_ipv4(&[0x45; 10]).is_none());
        let mut d = build_ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, &[0; 8]);
        d[9] = 17; // UDP
        assert!(parse_ipv4(&d).is_none());
        d[9] = 112;
        d[0] = 0x4f; // IHL 60 bytes > buffer
        assert!(parse_ipv4(&d).is_none());
    }
}
