//! Host-side networking of a lab: its bridge, the vb-* links nspawn adds to it, and the
//! client namespace. Nothing else in the root namespace is touched: no routes (the
//! bridge's connected /24 is the only one, implied by its own address), no NAT, no
//! forwarding, and the bridge is never enslaved to or joined with a real interface.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::cmd::{cmd, output, run};
use crate::error::Result;

#[derive(Debug, Deserialize)]
struct IpLink {
    ifname: String,
}

#[derive(Debug, Deserialize)]
struct IpAddrEntry {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Debug, Deserialize)]
struct IpAddrInfo {
    family: String,
    local: String,
}

/// Names of all links in the root namespace.
pub(crate) fn link_names() -> Result<Vec<String>> {
    let out = run("list links", cmd("ip", ["-j", "link", "show"]))?;
    let links: Vec<IpLink> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(links.into_iter().map(|l| l.ifname).collect())
}

pub(crate) fn link_exists(name: &str) -> bool {
    output("check link", cmd("ip", ["link", "show", "dev", name])).is_ok_and(|o| o.status.success())
}

/// IPv4 addresses of the root namespace as `(interface, address)`.
pub(crate) fn ipv4_addresses() -> Result<Vec<(String, Ipv4Addr)>> {
    let out = run("list addresses", cmd("ip", ["-j", "-4", "addr", "show"]))?;
    let entries: Vec<IpAddrEntry> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(entries
        .into_iter()
        .flat_map(|e| {
            let name = e.ifname;
            e.addr_info
                .into_iter()
                .filter(|a| a.family == "inet")
                .filter_map(move |a| Some((name.clone(), a.local.parse().ok()?)))
        })
        .collect())
}

/// Create the lab bridge with its own address and bring it up. Multicast snooping is
/// off so VRRP adverts always reach every port (there is no IGMP querier on the bridge).
pub(crate) fn create_bridge(bridge: &str, address: Ipv4Addr) -> Result<()> {
    let step = format!("bridge {bridge}: create");
    run(
        &step,
        cmd(
            "ip",
            [
                "link",
                "add",
                bridge,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        ),
    )?;
    run(
        &format!("bridge {bridge}: add address"),
        cmd(
            "ip",
            ["addr", "add", &format!("{address}/24"), "dev", bridge],
        ),
    )?;
    run(
        &format!("bridge {bridge}: up"),
        cmd("ip", ["link", "set", bridge, "up"]),
    )?;
    Ok(())
}

/// Delete a link if it exists. A container's veth disappears with its namespace,
/// which the kernel may finish between our check and our delete ("Cannot find
/// device", seen in `lab down` right after the containers stopped): gone is done.
pub(crate) fn delete_link(name: &str) -> Result<()> {
    delete_link_if(name, link_exists)
}

fn delete_link_if(name: &str, exists: impl Fn(&str) -> bool) -> Result<()> {
    if exists(name) {
        let deleted = run(
            &format!("delete link {name}"),
            cmd("ip", ["link", "del", "dev", name]),
        );
        if let Err(e) = deleted
            && exists(name)
        {
            return Err(e);
        }
    }
    Ok(())
}

pub(crate) fn set_link(name: &str, up: bool) -> Result<()> {
    run(
        &format!("link {name} {}", if up { "up" } else { "down" }),
        cmd(
            "ip",
            ["link", "set", "dev", name, if up { "up" } else { "down" }],
        ),
    )?;
    Ok(())
}

pub(crate) fn netns_exists(ns: &str) -> bool {
    output("list netns", cmd("ip", ["netns", "list"])).is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns))
    })
}

/// Processes running inside a named network namespace.
pub(crate) fn netns_pids(ns: &str) -> Vec<i32> {
    output("netns pids", cmd("ip", ["netns", "pids", ns]))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Create namespace `ns` with `eth0` at `address/24`, its peer `host_link` on `bridge`.
pub(crate) fn create_client_netns(
    ns: &str,
    host_link: &str,
    bridge: &str,
    address: Ipv4Addr,
) -> Result<()> {
    let step = |what: &str| format!("client netns {ns}: {what}");
    run(&step("add"), cmd("ip", ["netns", "add", ns]))?;
    run(
        &step("add veth"),
        cmd(
            "ip",
            [
                "link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        ),
    )?;
    run(
        &step("attach to bridge"),
        cmd("ip", ["link", "set", host_link, "master", bridge, "up"]),
    )?;
    run(
        &step("address"),
        cmd(
            "ip",
            [
                "-n",
                ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ],
        ),
    )?;
    run(
        &step("eth0 up"),
        cmd("ip", ["-n", ns, "link", "set", "eth0", "up"]),
    )?;
    run(
        &step("lo up"),
        cmd("ip", ["-n", ns, "link", "set", "lo", "up"]),
    )?;
    Ok(())
}

pub(crate) fn delete_netns(ns: &str) -> Result<()> {
    if netns_exists(ns) {
        run(
            &format!("delete netns {ns}"),
            cmd("ip", ["netns", "del", ns]),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_gone_before_its_delete_is_deleted() {
        // There at the check, gone when `ip link del` runs (it then fails).
        let calls = std::cell::Cell::new(0);
        let exists = |_: &str| {
            calls.set(calls.get() + 1);
            calls.get() == 1
        };
        delete_link_if("hdt-gone0", exists).expect("gone is deleted");
        assert_eq!(calls.get(), 2);
        // Still there after a failed delete: an error.
        let err = delete_link_if("hdt-gone0", |_| true).expect_err("still there");
        assert!(err.to_string().contains("delete link hdt-gone0"), "{err}");
    }
}
