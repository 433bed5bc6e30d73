//! What a node runs, without its secrets: its VRRP instances (name, VRID,
//! priority, addresses) and its upstream servers with their weights. This is
//! what `hadeploy render --json` shows beside the file list, so scripts
//! (bench/failover-compare.sh) read the resolved model instead of
//! interpreting the inventory YAML a second time. The typed configs stay
//! out of that JSON because the VRRP one holds `auth_pass`; nothing here is
//! derived from a secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hadeploy_config::vrrp::Version;
use ipnet::Ipv4Net;
use serde::Serialize;

use crate::render::NodeTree;

/// A rendered node tree with its summary, as `render --json` prints it:
/// the tree's own fields, plus `summary`.
#[derive(Debug, Serialize)]
pub struct ShownTree<'a> {
    #[serde(flatten)]
    pub tree: &'a NodeTree,
    pub summary: NodeSummary,
}

impl<'a> From<&'a NodeTree> for ShownTree<'a> {
    fn from(tree: &'a NodeTree) -> Self {
        ShownTree {
            tree,
            summary: NodeSummary::of(tree),
        }
    }
}

/// One node's VRRP instances (in config order: the first VIP group first)
/// and upstream groups by name; both empty on a node that runs neither.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSummary {
    pub instances: Vec<InstanceSummary>,
    pub upstreams: BTreeMap<String, UpstreamSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSummary {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: u8,
    pub version: Version,
    pub priority: u8,
    /// The VIPs with their prefix (`10.0.0.100/24`).
    pub addresses: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamSummary {
    pub servers: Vec<ServerSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSummary {
    pub address: SocketAddr,
    pub weight: u32,
    pub backup: bool,
}

impl NodeSummary {
    /// The summary of the configs `tree` was rendered from.
    pub fn of(tree: &NodeTree) -> NodeSummary {
        let instances = tree.vrrp.iter().flat_map(|v| &v.instances);
        let instances = instances
            .map(|i| InstanceSummary {
                name: i.name.clone(),
                interface: i.interface.clone(),
                virtual_router_id: i.virtual_router_id,
                version: i.version,
                priority: i.priority,
                addresses: i.virtual_ipaddress.iter().map(|v| v.address).collect(),
            })
            .collect();
        let upstreams = tree.proxy.iter().flat_map(|p| &p.upstreams);
        let upstreams = upstreams
            .map(|(name, u)| {
                let servers = u.servers.iter().map(|s| ServerSummary {
                    address: s.address,
                    weight: s.weight,
                    backup: s.backup,
                });
                let servers = servers.collect();
                (name.clone(), UpstreamSummary { servers })
            })
            .collect();
        NodeSummary {
            instances,
            upstreams,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancers_summarized_backends_empty_no_secret() {
        let path = std::path::Path::new("../../inventory/lab.yaml");
        let text = std::fs::read_to_string(path).expect("lab.yaml");
        let (inv, _) = crate::parse(&text, path).expect("valid");
        let trees = crate::render::render_all(&inv, |h| (&h.assumed).into()).expect("render");
        let lb = trees.iter().find(|t| t.host == "hd-lb1").expect("lb1");
        let s = NodeSummary::of(lb);
        assert_eq!(s.instances.len(), 1);
        let i = &s.instances[0];
        assert_eq!((i.virtual_router_id, i.priority), (66, 150));
        assert_eq!(
            i.addresses,
            vec!["10.77.238.100/24".parse::<Ipv4Net>().expect("net")]
        );
        let servers = &s.upstreams["backend"].servers;
        let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
        assert_eq!(weights, [5, 1]);
        let json = serde_json::to_string(&ShownTree::from(lb)).expect("json");
        assert!(
            json.contains("\"summary\"") && json.contains("\"files\""),
            "{json}"
        );
        assert!(
            !json.contains("labpass") && !json.contains("auth_pass"),
            "{json}"
        );
        let web = trees.iter().find(|t| t.host == "hd-web1").expect("web1");
        let s = NodeSummary::of(web);
        assert!(s.instances.is_empty() && s.upstreams.is_empty(), "{s:?}");
    }
}
