//! Inventories hadeploy writes itself (`hadeploy lab up`, `hadeploy
//! inventory from-vagrant`): built as the loader's own types ([`crate::raw`])
//! and serialized, so every path and name is quoted as YAML needs and the
//! file loads back to what was built. Both labs have the same shape: a load
//! balancer group, a backend group serving hadeploy's static site, and one
//! cluster whose site proxies to the backends with unequal weights (so the
//! distribution is visible).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hadeploy_config::proxy::{AccessLog, HealthCheck, HostHeader, Location, MatchKind, ProxyPass};

use crate::raw::{
    HostSelector, HostVars, Listen, ListenList, RawBackends, RawCluster, RawGroup, RawInventory,
    RawServer, RawSite, RawUpstream, RawVip, RawVrrpDefaults,
};
use crate::secret::SecretSource;

pub use crate::raw::{BACKEND_ROOT, DEFAULT_BACKEND_PORT};
/// Why [`to_yaml`] failed (callers need not depend on the YAML crate).
pub use yaml_serde::Error as YamlError;

/// `header` (comment lines, each starting with `#`) followed by `inv` as
/// YAML. YAML serializers cannot write comments, hence the two parts.
pub fn to_yaml(header: &str, inv: &RawInventory) -> Result<String, YamlError> {
    Ok(format!("{header}{}", yaml_serde::to_string(inv)?))
}

/// A group of hosts, each with its own variables.
pub fn group(hosts: impl IntoIterator<Item = (String, HostVars)>) -> RawGroup {
    RawGroup {
        hosts: hosts.into_iter().map(|(n, v)| (n, Some(v))).collect(),
        ..RawGroup::default()
    }
}

/// A cluster of the load balancers in `lb_group` with nothing else set.
pub fn cluster(lb_group: &str) -> RawCluster {
    RawCluster {
        load_balancers: HostSelector::Group(lb_group.to_string()),
        backends: None,
        vrrp: RawVrrpDefaults::default(),
        vips: Vec::new(),
        upstreams: BTreeMap::new(),
        sites: Vec::new(),
        admin: None,
        workers: None,
        trusted_proxies: Vec::new(),
        limits: None,
        vrrp_realtime: None,
    }
}

/// Backends in `group` serving the static site on `port`.
pub fn backends(group: &str, port: u16) -> RawBackends {
    RawBackends {
        hosts: HostSelector::Group(group.to_string()),
        port: i64::from(port),
        root: BACKEND_ROOT.to_string(),
        index_page: true,
    }
}

/// VRRP defaults of the cluster; `auth_pass` for VRRPv2 PASS
/// authentication.
pub fn vrrp(version: u8, advert_interval: &str, auth_pass: Option<&str>) -> RawVrrpDefaults {
    RawVrrpDefaults {
        version: Some(i64::from(version)),
        advert_interval: Some(advert_interval.to_string()),
        auth_pass: auth_pass.map(|p| SecretSource::Inline(p.to_string())),
        ..RawVrrpDefaults::default()
    }
}

/// A VIP group on `interface`, tracking it, its address labelled
/// `interface:label`.
pub fn vip(name: String, address: String, vrid: u8, interface: &str, label: usize) -> RawVip {
    RawVip {
        name,
        address,
        virtual_router_id: i64::from(vrid),
        label: Some(format!("{interface}:{label}")),
        track_interface: Some(vec![interface.to_string()]),
        ..RawVip::default()
    }
}

/// The upstream `backend`: `servers` (`ip:port`), the first with weight 5
/// and the others 1, checked every second with `check_timeout`.
pub fn weighted_upstream(servers: Vec<String>, check_timeout: Duration) -> RawUpstream {
    RawUpstream {
        servers: servers
            .into_iter()
            .enumerate()
            .map(|(i, address)| RawServer {
                address,
                weight: Some(if i == 0 { 5 } else { 1 }),
                ..RawServer::default()
            })
            .collect(),
        health_check: Some(HealthCheck {
            interval: Duration::from_secs(1),
            timeout: check_timeout,
            path: "/".into(),
            host: None,
            expect_status: Vec::new(),
            rise: 2,
            fall: 2,
        }),
        connect_timeout: Some("1s".into()),
        read_timeout: Some("5s".into()),
        ..RawUpstream::default()
    }
}

/// The name of [`weighted_upstream`] in the cluster.
pub const UPSTREAM: &str = "backend";

/// The default site `name` on `port`: proxied to [`UPSTREAM`], or (no
/// backends) serving `root` itself.
pub fn site(name: &str, port: u16, root: Option<&str>, access_log: Option<AccessLog>) -> RawSite {
    let locations = match root {
        Some(_) => Vec::new(),
        None => vec![Location {
            path: "/".into(),
            match_kind: MatchKind::default(),
            proxy: Some(ProxyPass {
                upstream: UPSTREAM.into(),
                uri: Some("/".into()),
                host: HostHeader::default(),
                set_headers: BTreeMap::new(),
            }),
            root: None,
            index: None,
        }],
    };
    RawSite {
        // A static-only site answers any name (default_server) as before.
        server_names: match root {
            Some(_) => Vec::new(),
            None => vec![name.to_string()],
        },
        default_server: true,
        root: root.map(PathBuf::from),
        access_log,
        locations,
        ..RawSite::new(name, ListenList::One(Listen::Port(i64::from(port))))
    }
}

/// The inventory: `vars` for every host, the groups, and one cluster.
pub fn inventory(
    vars: HostVars,
    groups: impl IntoIterator<Item = (String, RawGroup)>,
    name: &str,
    cluster: RawCluster,
) -> RawInventory {
    RawInventory {
        all: RawGroup {
            vars,
            hosts: BTreeMap::new(),
            children: groups.into_iter().map(|(n, g)| (n, Some(g))).collect(),
        },
        clusters: BTreeMap::from([(name.to_string(), cluster)]),
    }
}
