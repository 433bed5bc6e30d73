//! Gratuitous ARP: tells the segment's switches and hosts that a VIP now
//! lives at this interface's MAC, so traffic follows a failover at once
//! instead of when ARP caches expire.
//!
//! Request form (RFC 5227 ARP announcement, what keepalived sends): op 1,
//! sender = target = VIP, sender MAC = interface MAC, target MAC zero,
//! Ethernet broadcast.

use std::net::Ipv4Addr;
use std::time::Duration;

use pnet::datalink::{self, Channel, Config, NetworkInterface};
use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::util::MacAddr;

use crate::error::VrrpdError;

const ETH_HEADER_LEN: usize = 14;
const ARP_LEN: usize = 28;
/// Ethernet minimum payload; pad so every NIC sends the same frame.
pub const GARP_FRAME_LEN: usize = ETH_HEADER_LEN + 46;

/// Builds one gratuitous ARP frame.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; GARP_FRAME_LEN];
    let mac = MacAddr::from(mac);
    // Both constructors only fail on a short buffer; these are sized above.
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) =
        MutableArpPacket::new(&mut frame[ETH_HEADER_LEN..ETH_HEADER_LEN + ARP_LEN])
    {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac);
        arp.set_sender_proto_addr(vip);
        arp.set_target_hw_addr(MacAddr::zero());
        arp.set_target_proto_addr(vip);
    }
    frame
}

/// Sends one gratuitous ARP per VIP on the interface.
///
/// The AF_PACKET socket is opened per call and closed right after: pnet's
/// layer-2 channel listens to every frame of the interface, and an idle
/// listener would copy all of them into a queue nobody reads. Bursts are a
/// handful of frames every few seconds at most, so the open is cheap. The
/// write is non-blocking in practice (a 60-byte frame on an idle socket); a
/// short write timeout bounds the worst case.
pub fn send_garps(
    interface: &str,
    ifindex: u32,
    mac: [u8; 6],
    vips: &[Ipv4Addr],
) -> Result<(), VrrpdError> {
    let Some(first) = vips.first().copied() else {
        return Ok(());
    };
    let err = |vip: Ipv4Addr| {
        let interface = interface.to_string();
        move |source| VrrpdError::Arp {
            interface,
            vip,
            source,
        }
    };
    let iface = NetworkInterface {
        name: interface.to_string(),
        description: String::new(),
        index: ifindex,
        mac: Some(MacAddr::from(mac)),
        ips: Vec::new(),
        flags: 0,
    };
    let config = Config {
        promiscuous: false,
        read_buffer_size: 64,
        write_buffer_size: GARP_FRAME_LEN,
        write_timeout: Some(Duration::from_millis(50)),
        read_timeout: Some(Duration::from_millis(1)),
        ..Config::default()
    };
    let (mut tx, _rx) = match datalink::channel(&iface, config).map_err(err(first))? {
        Channel::Ethernet(tx, rx) => (tx, rx),
        // pnet's Linux backend only returns Ethernet channels.
        _ => {
            return Err(err(first)(std::io::Error::other(
                "pnet returned a non-Ethernet channel",
            )));
        }
    };
    for &vip in vips {
        let frame = garp_frame(mac, vip);
        match tx.send_to(&frame, None) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(err(vip)(e)),
            None => {
                return Err(err(vip)(std::io::Error::other(
                    "frame larger than the write buffer",
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_an_arp_announcement() {
        let mac = [0x02, 0, 0, 0, 0, 0x11];
        let vip = Ipv4Addr::new(10, 9, 8, 7);
        let f = garp_frame(mac, vip);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6], "broadcast");
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        let arp = &f[14..42];
        assert_eq!(
            &arp[0..8],
            &[0, 1, 8, 0, 6, 4, 0, 1],
            "ethernet/ipv4 request"
        );
        assert_eq!(&arp[8..14], &mac, "sender hw");
        assert_eq!(&arp[14..18], &vip.octets(), "sender ip");
        assert_eq!(&arp[18..24], &[0; 6], "target hw");
        assert_eq!(&arp[24..28], &vip.octets(), "target ip");
        assert!(f[42..].iter().all(|&b| b == 0), "zero padding");
    }
}
