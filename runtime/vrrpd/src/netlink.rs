//! Interface facts and virtual addresses over rtnetlink.
//!
//! Link state is polled over netlink (RTM_GETLINK), not read from
//! /sys/class/net: sysfs shows the network namespace it was mounted in,
//! not the one this thread lives in, so it lies inside test namespaces and
//! containers that did not remount it. See [`crate::linkwatch`].

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{AddressMessageBuilder, Handle};

use crate::error::VrrpdError;

/// What the daemon needs to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    /// Administratively up and carrier present (IFF_UP and IFF_RUNNING), as
    /// keepalived judges tracked interfaces.
    pub up: bool,
}

/// A netlink connection whose I/O task runs on the runtime that created it.
#[derive(Clone, Debug)]
pub struct Netlink {
    handle: Handle,
}

fn nl_err(interface: &str, op: &'static str, e: impl std::fmt::Display) -> VrrpdError {
    VrrpdError::Netlink {
        interface: interface.to_string(),
        op,
        detail: e.to_string(),
    }
}

/// The errno of a netlink NACK, positive.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the calling thread's network
    /// namespace and spawns its I/O task on the current tokio runtime.
    pub fn connect() -> Result<Self, VrrpdError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| nl_err("-", "open netlink socket", e))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// Looks an interface up by name.
    pub async fn link(&self, name: &str) -> Result<LinkInfo, VrrpdError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(link_info(name, &msg)),
            Ok(None) => Err(VrrpdError::NoInterface {
                interface: name.to_string(),
            }),
            // The kernel answers ENODEV for an unknown name.
            Err(e) if errno(&e) == Some(nix::libc::ENODEV) => Err(VrrpdError::NoInterface {
                interface: name.to_string(),
            }),
            Err(e) => Err(nl_err(name, "get link", e)),
        }
    }

    /// The interface's IPv4 addresses, primaries first, with prefix.
    pub async fn ipv4_addresses(
        &self,
        name: &str,
        index: u32,
    ) -> Result<Vec<(Ipv4Net, bool)>, VrrpdError> {
        let mut out = Vec::new();
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(|e| nl_err(name, "get addresses", e))?
        {
            if msg.header.index != index {
                continue;
            }
            let secondary = msg.header.flags.contains(AddressHeaderFlags::Secondary);
            // (No let-chains: the workspace's rust-version is 1.85.)
            for attr in &msg.attributes {
                if let AddressAttribute::Local(IpAddr::V4(a)) = attr {
                    if let Ok(net) = Ipv4Net::new(*a, msg.header.prefix_len) {
                        out.push((net, !secondary));
                    }
                }
            }
        }
        out.sort_by_key(|(_, primary)| !*primary);
        Ok(out)
    }

    /// The primary IPv4 address: what keepalived sends adverts from when no
    /// source address is configured.
    pub async fn primary_ipv4(&self, name: &str, index: u32) -> Result<Ipv4Addr, VrrpdError> {
        self.ipv4_addresses(name, index)
            .await?
            .into_iter()
            .find(|(_, primary)| *primary)
            .map(|(net, _)| net.addr())
            .ok_or_else(|| VrrpdError::NoAddress {
                interface: name.to_string(),
            })
    }

    /// Adds a VIP; `Ok(false)` when it was already there.
    pub async fn add_vip(
        &self,
        interface: &str,
        index: u32,
        vip: Ipv4Net,
        label: Option<&str>,
    ) -> Result<bool, VrrpdError> {
        let mut req = self
            .handle
            .address()
            .add(index, IpAddr::V4(vip.addr()), vip.prefix_len());
        if let Some(label) = label {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Label(label.to_string()));
        }
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(nix::libc::EEXIST) => Ok(false),
            Err(e) => Err(nl_err(interface, "add address", format!("{vip}: {e}"))),
        }
    }

    /// Removes a VIP; `Ok(false)` when it was not there.
    pub async fn del_vip(
        &self,
        interface: &str,
        index: u32,
        vip: Ipv4Net,
    ) -> Result<bool, VrrpdError> {
        let msg: AddressMessage = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(vip.addr(), vip.prefix_len())
            .build();
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(true),
            // Deleting an absent address answers EADDRNOTAVAIL; ENOENT and
            // ENODEV when the interface is gone, which also means "not held".
            Err(e)
                if matches!(
                    errno(&e),
                    Some(nix::libc::EADDRNOTAVAIL | nix::libc::ENOENT | nix::libc::ENODEV)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(nl_err(interface, "delete address", format!("{vip}: {e}"))),
        }
    }
}

fn link_info(name: &str, msg: &LinkMessage) -> LinkInfo {
    let mut mac = [0u8; 6];
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Address(a) if a.len() == 6 => mac.copy_from_slice(a),
            _ => {}
        }
    }
    let flags = msg.header.flags;
    LinkInfo {
        name: name.to_string(),
        index: msg.header.index,
        mac,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
    }
}
