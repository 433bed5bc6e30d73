//! Raw inventory -> validated [`Inventory`], collecting every problem with
//! the YAML path of the offending key (positions are added by the caller).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hadeploy_config::Diagnostic;
use hadeploy_config::proxy::{self as cfg_proxy, Site, Upstream, UpstreamServer};
use hadeploy_config::vrrp::{
    self as cfg_vrrp, DEFAULT_MULTICAST_GROUP, TrackScript, V3Checksum, Version,
    advert_interval_problem,
};
use ipnet::{IpNet, Ipv4Net};

use crate::model::*;
use crate::raw::*;
use crate::vars::{self, FlatGroup};

pub struct Ctx<'a> {
    pub diags: Vec<Diagnostic>,
    pub base: &'a Path,
}

impl Ctx<'_> {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(path, msg));
    }
    fn warn(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(path, msg));
    }

    fn duration(&mut self, path: &str, text: Option<&String>, default: Duration) -> Duration {
        match text {
            None => default,
            Some(t) => match hadeploy_config::duration::parse(t) {
                Ok(d) => d,
                Err(why) => {
                    self.err(path, why.to_string());
                    default
                }
            },
        }
    }

    /// `v` as a `T`, or `None` after reporting the shared rule's `problem`.
    fn checked<T: TryFrom<i64>>(
        &mut self,
        path: &str,
        v: i64,
        problem: Option<String>,
    ) -> Option<T> {
        if let Some(why) = problem {
            self.err(path, why);
            return None;
        }
        T::try_from(v).ok()
    }

    fn ranged<T: TryFrom<i64>>(
        &mut self,
        path: &str,
        v: i64,
        lo: i64,
        hi: i64,
        what: &str,
    ) -> Option<T> {
        let problem = hadeploy_config::diag::range_problem(what, v, lo..=hi);
        self.checked(path, v, problem)
    }
}

fn check_ifname(ctx: &mut Ctx<'_>, path: &str, name: &str) {
    if let Some(why) = cfg_vrrp::ifname_problem(name) {
        ctx.err(path, why);
    }
}

pub fn resolve(raw: RawInventory, file: &Path, ctx: &mut Ctx<'_>) -> Inventory {
    let groups = vars::flatten(&raw.all, &mut ctx.diags);
    let merged = vars::merge_hosts(&groups);
    let mut hosts = BTreeMap::new();
    for (name, m) in merged {
        if let Some(h) = resolve_host(&name, m, ctx) {
            hosts.insert(name, h);
        }
    }
    let mut clusters = Vec::new();
    for (cname, rc) in &raw.clusters {
        clusters.push(resolve_cluster(cname, rc, &groups, &hosts, ctx));
    }
    let groups_map = groups
        .iter()
        .filter_map(|g| vars::members(&groups, &g.name).map(|m| (g.name.clone(), m)))
        .collect();
    let inv = Inventory {
        file: file.to_path_buf(),
        hosts,
        groups: groups_map,
        clusters,
    };
    cross_checks(&inv, &raw, ctx);
    inv
}

fn resolve_host(name: &str, m: vars::Merged, ctx: &mut Ctx<'_>) -> Option<Host> {
    let v = m.vars;
    let p = m.path;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        ctx.err(
            &p,
            format!("host name `{name}` may only hold letters, digits, '-', '_' and '.'"),
        );
    }
    let ssh_port = match v.ssh_port {
        None => 22,
        Some(port) => ctx.ranged(&format!("{p}.ssh_port"), port, 1, 65535, "ssh_port")?,
    };
    let address_text = v.address.clone().or_else(|| {
        v.ssh_host
            .as_ref()
            .filter(|h| h.parse::<Ipv4Addr>().is_ok())
            .cloned()
    });
    let (address, prefix_known) = match address_text {
        None => (None, false),
        Some(t) => match parse_addr_prefix(&t) {
            Some((net, known)) => (Some(net), known),
            None => {
                ctx.err(
                    format!("{p}.address"),
                    format!(
                        "`{t}` is not an IPv4 address (write 192.168.10.10 or 192.168.10.10/24)"
                    ),
                );
                (None, false)
            }
        },
    };
    let ssh_host = match v.ssh_host.or_else(|| address.map(|a| a.addr().to_string())) {
        Some(h) => h,
        None => {
            ctx.err(
                &p,
                format!("host `{name}` has no ssh_host (or address) to connect to"),
            );
            return None;
        }
    };
    let vrrp_priority = match v.vrrp_priority {
        None => None,
        Some(pr) => ctx.checked(
            &format!("{p}.vrrp_priority"),
            pr,
            cfg_vrrp::priority_problem("vrrp_priority", pr),
        ),
    };
    let vrrp_interface = v.vrrp_interface.unwrap_or_else(|| "eth0".to_string());
    check_ifname(ctx, &format!("{p}.vrrp_interface"), &vrrp_interface);
    let mut assumed = AssumedFacts::default();
    if let Some(os) = v.os {
        assumed.os = os;
    }
    if let Some(sv) = v.systemd_version
        && let Some(sv) = ctx.ranged::<u32>(
            &format!("{p}.systemd_version"),
            sv,
            200,
            999,
            "systemd_version",
        )
    {
        assumed.systemd_version = sv;
    }
    if let Some(fw) = v.firewalld {
        assumed.firewalld = fw;
    }
    if v.ssh_key.as_deref().is_some_and(str::is_empty) {
        ctx.err(format!("{p}.ssh_key"), "ssh_key is empty");
    }
    Some(Host {
        name: name.to_string(),
        path: p.clone(),
        ssh: SshTarget {
            host: ssh_host,
            port: ssh_port,
            user: v.ssh_user.unwrap_or_else(|| "root".to_string()),
            key: v.ssh_key.map(|k| expand_home(&k)),
            jump: v.ssh_jump,
            known_hosts: v.ssh_known_hosts.map(|k| expand_home(&k)),
            become_root: v.become_root.unwrap_or(false),
        },
        address,
        prefix_known,
        vrrp_interface,
        vrrp_priority,
        assumed,
    })
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// `a.b.c.d` or `a.b.c.d/len`; the bool says whether the prefix was given.
fn parse_addr_prefix(t: &str) -> Option<(Ipv4Net, bool)> {
    if let Ok(net) = Ipv4Net::from_str(t) {
        return Some((net, true));
    }
    let a = Ipv4Addr::from_str(t).ok()?;
    Some((Ipv4Net::new(a, 32).ok()?, false))
}

fn select_hosts(
    sel: &HostSelector,
    path: &str,
    groups: &[FlatGroup<'_>],
    hosts: &BTreeMap<String, Host>,
    ctx: &mut Ctx<'_>,
) -> Vec<String> {
    match sel {
        HostSelector::Group(g) => match vars::members(groups, g) {
            Some(m) => m,
            None => {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                let hint = crate::hint(g, &names);
                ctx.err(path, format!("no group named `{g}`{hint}"));
                Vec::new()
            }
        },
        HostSelector::Hosts(list) => {
            let mut out = Vec::new();
            for (i, h) in list.iter().enumerate() {
                if hosts.contains_key(h) {
                    out.push(h.clone());
                } else {
                    let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
                    let hint = crate::hint(h, &names);
                    ctx.err(format!("{path}[{i}]"), format!("no host named `{h}`{hint}"));
                }
            }
            out
        }
    }
}

fn resolve_cluster(
    name: &str,
    rc: &RawCluster,
    groups: &[FlatGroup<'_>],
    hosts: &BTreeMap<String, Host>,
    ctx: &mut Ctx<'_>,
) -> Cluster {
    let p = format!("clusters.{name}");
    let lbs = select_hosts(
        &rc.load_balancers,
        &format!("{p}.load_balancers"),
        groups,
        hosts,
        ctx,
    );
    // A group may name hosts that failed to resolve; keep only real ones.
    let lbs: Vec<String> = lbs.into_iter().filter(|h| hosts.contains_key(h)).collect();
    if lbs.is_empty() {
        ctx.err(
            format!("{p}.load_balancers"),
            "the cluster has no load balancers",
        );
    } else if lbs.len() == 1 {
        ctx.warn(
            format!("{p}.load_balancers"),
            "only one load balancer: the VIP has nowhere to fail over to",
        );
    }
    let backends = rc.backends.as_ref().map(|b| {
        let bp = format!("{p}.backends");
        let list = select_hosts(&b.hosts, &format!("{bp}.hosts"), groups, hosts, ctx);
        for h in &list {
            if lbs.contains(h) {
                ctx.err(
                    format!("{bp}.hosts"),
                    format!("host `{h}` cannot be both a load balancer and a backend"),
                );
            }
        }
        let port = ctx
            .ranged(&format!("{bp}.port"), b.port, 1, 65535, "port")
            .unwrap_or(DEFAULT_BACKEND_PORT);
        if !b.root.starts_with('/') {
            ctx.err(format!("{bp}.root"), "root must be an absolute path");
        }
        Backends {
            hosts: list,
            port,
            root: PathBuf::from(&b.root),
            index_page: b.index_page,
        }
    });
    let track_scripts = collect_track_scripts(rc, &p, ctx);
    let mut vips = Vec::new();
    for (i, rv) in rc.vips.iter().enumerate() {
        if let Some(v) = resolve_vip(
            rv,
            &format!("{p}.vips[{i}]"),
            &format!("{p}.vrrp"),
            &rc.vrrp,
            &lbs,
            hosts,
            ctx,
        ) {
            vips.push(v);
        }
    }
    if rc.vips.is_empty() {
        ctx.err(
            format!("{p}.vips"),
            "a cluster needs at least one VIP group",
        );
    }
    let mut upstreams = BTreeMap::new();
    for (un, ru) in &rc.upstreams {
        upstreams.insert(
            un.clone(),
            resolve_upstream(ru, &format!("{p}.upstreams.{un}"), ctx),
        );
    }
    let vip_addrs: Vec<Ipv4Addr> = vips
        .iter()
        .flat_map(|v| v.addresses.iter().map(|a| a.addr()))
        .collect();
    let mut sites = Vec::new();
    for (i, rs) in rc.sites.iter().enumerate() {
        sites.push(resolve_site(
            rs,
            &format!("{p}.sites[{i}]"),
            &vip_addrs,
            ctx,
        ));
    }
    cfg_proxy::check_sites(&format!("{p}.sites"), &sites, &upstreams, &mut ctx.diags);
    if let Some((key, why)) = rc
        .vrrp_realtime
        .as_ref()
        .and_then(cfg_vrrp::realtime_problem)
    {
        ctx.err(format!("{p}.vrrp_realtime.{key}"), why);
    }
    let admin_vrrp = rc
        .admin
        .as_ref()
        .and_then(|a| a.vrrp.as_ref())
        .and_then(|s| parse_socket(ctx, &format!("{p}.admin.vrrp"), s));
    let admin_proxy = rc
        .admin
        .as_ref()
        .and_then(|a| a.proxy.as_ref())
        .and_then(|s| parse_socket(ctx, &format!("{p}.admin.proxy"), s));
    let workers = match rc.workers {
        None => 0,
        Some(w) => ctx
            .ranged(&format!("{p}.workers"), w, 0, 1024, "workers")
            .unwrap_or(0),
    };
    let mut trusted_proxies = Vec::new();
    for (i, t) in rc.trusted_proxies.iter().enumerate() {
        match IpNet::from_str(t).or_else(|_| IpAddr::from_str(t).map(IpNet::from)) {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => ctx.err(
                format!("{p}.trusted_proxies[{i}]"),
                format!("`{t}` is not an address or network"),
            ),
        }
    }
    Cluster {
        name: name.to_string(),
        load_balancers: lbs,
        backends,
        vips,
        upstreams,
        sites,
        admin_vrrp,
        admin_proxy,
        workers,
        trusted_proxies,
        limits: rc.limits.clone().unwrap_or_default(),
        track_scripts,
        vrrp_realtime: rc.vrrp_realtime.clone(),
    }
}

fn parse_socket(ctx: &mut Ctx<'_>, path: &str, s: &str) -> Option<SocketAddr> {
    match SocketAddr::from_str(s) {
        Ok(a) if a.port() != 0 => Some(a),
        _ => {
            ctx.err(
                path,
                format!("`{s}` is not an ip:port address with a port 1..65535"),
            );
            None
        }
    }
}

fn collect_track_scripts(rc: &RawCluster, p: &str, ctx: &mut Ctx<'_>) -> Vec<TrackScript> {
    let mut out: Vec<TrackScript> = Vec::new();
    for (i, v) in rc.vips.iter().enumerate() {
        for (j, s) in v.track_script.iter().enumerate() {
            let sp = format!("{p}.vips[{i}].track_script[{j}]");
            let argv = s.script.argv();
            check_command(ctx, &format!("{sp}.script"), &argv);
            let weight = ctx
                .ranged::<i32>(&format!("{sp}.weight"), s.weight, -253, 253, "weight")
                .unwrap_or(0);
            let mut count = |key: &str, n: Option<i64>| {
                n.and_then(|n| {
                    let why = cfg_vrrp::rise_fall_problem(key, n);
                    ctx.checked(&format!("{sp}.{key}"), n, why)
                })
                .unwrap_or(cfg_vrrp::DEFAULT_RISE_FALL)
            };
            let (rise, fall) = (count("rise", s.rise), count("fall", s.fall));
            let ts = TrackScript {
                name: s.name.clone(),
                script: argv,
                interval: ctx.duration(
                    &format!("{sp}.interval"),
                    s.interval.as_ref(),
                    cfg_vrrp::DEFAULT_TRACK_INTERVAL,
                ),
                timeout: ctx.duration(
                    &format!("{sp}.timeout"),
                    s.timeout.as_ref(),
                    cfg_vrrp::DEFAULT_TRACK_TIMEOUT,
                ),
                weight,
                rise,
                fall,
            };
            match out.iter().find(|o| o.name == ts.name) {
                Some(prev) if *prev != ts => ctx.err(
                    format!("{sp}.name"),
                    format!(
                        "track script `{}` is defined twice with different settings",
                        ts.name
                    ),
                ),
                Some(_) => {}
                None => out.push(ts),
            }
        }
    }
    out
}

fn check_command(ctx: &mut Ctx<'_>, path: &str, argv: &[String]) {
    if let Some(why) = cfg_vrrp::command_problem(argv) {
        ctx.err(path, why);
    }
}

/// Path of a setting that may come from the VIP or the cluster's defaults.
fn origin(p: &str, dp: &str, key: &str, here: bool, there: bool) -> String {
    if here {
        format!("{p}.{key}")
    } else if there {
        format!("{dp}.{key}")
    } else {
        p.to_string()
    }
}

/// A duration the VIP sets or inherits from the cluster's `vrrp` defaults
/// (`here`, `there`), and the path to report it at: (VIP path, defaults
/// path, key).
fn inherited_duration(
    ctx: &mut Ctx<'_>,
    (p, dp, key): (&str, &str, &str),
    (here, there): (&Option<String>, &Option<String>),
    default: Duration,
) -> (Duration, String) {
    let path = origin(p, dp, key, here.is_some(), there.is_some());
    let v = ctx.duration(&path, here.as_ref().or(there.as_ref()), default);
    (v, path)
}

fn resolve_vip(
    rv: &RawVip,
    p: &str,
    dp: &str,
    d: &RawVrrpDefaults,
    lbs: &[String],
    hosts: &BTreeMap<String, Host>,
    ctx: &mut Ctx<'_>,
) -> Option<VipGroup> {
    let vrid = ctx.checked::<u8>(
        &format!("{p}.virtual_router_id"),
        rv.virtual_router_id,
        cfg_vrrp::vrid_problem(rv.virtual_router_id),
    );
    let mut addresses = Vec::new();
    for (i, t) in std::iter::once(&rv.address)
        .chain(rv.extra_addresses.iter())
        .enumerate()
    {
        let ap = if i == 0 {
            format!("{p}.address")
        } else {
            format!("{p}.extra_addresses[{}]", i - 1)
        };
        match Ipv4Net::from_str(t) {
            Ok(n) => addresses.push(n),
            Err(_) => match Ipv4Addr::from_str(t) {
                Ok(a) => {
                    ctx.warn(&ap, format!("`{t}` has no prefix; using {a}/32 (keepalived's default); write {a}/24 to match the subnet"));
                    addresses.push(Ipv4Net::from(a));
                }
                Err(_) => ctx.err(
                    &ap,
                    format!("`{t}` is not an IPv4 address with prefix, like 192.168.10.100/24"),
                ),
            },
        }
    }
    let version_raw = rv.version.or(d.version).unwrap_or(2);
    let version = match u8::try_from(version_raw).map(Version::try_from) {
        Ok(Ok(v)) => v,
        bad => {
            let vp = origin(p, dp, "version", rv.version.is_some(), d.version.is_some());
            let why = match bad {
                Ok(Err(e)) => e.to_string(),
                _ => cfg_vrrp::bad_version_message(version_raw),
            };
            ctx.err(vp, why);
            Version::V2
        }
    };
    let (advert_interval, ai_path) = inherited_duration(
        ctx,
        (p, dp, "advert_interval"),
        (&rv.advert_interval, &d.advert_interval),
        cfg_vrrp::DEFAULT_ADVERT_INTERVAL,
    );
    if let Some(msg) = advert_interval_problem(version, advert_interval) {
        ctx.err(&ai_path, msg);
    }
    let auth_pass = match rv.auth_pass.as_ref().or(d.auth_pass.as_ref()) {
        None => None,
        Some(src) => {
            let ap = origin(
                p,
                dp,
                "auth_pass",
                rv.auth_pass.is_some(),
                d.auth_pass.is_some(),
            );
            match src.resolve(ctx.base) {
                Err(e) => {
                    ctx.err(&ap, e.to_string());
                    None
                }
                Ok(secret) => {
                    if let Some(why) = cfg_vrrp::auth_pass_problem(version, secret.expose()) {
                        ctx.err(&ap, why);
                    }
                    Some(secret)
                }
            }
        }
    };
    let preempt = rv
        .preempt
        .or(d.preempt)
        .unwrap_or(cfg_vrrp::DEFAULT_PREEMPT);
    let (preempt_delay, pd_path) = inherited_duration(
        ctx,
        (p, dp, "preempt_delay"),
        (&rv.preempt_delay, &d.preempt_delay),
        Duration::ZERO,
    );
    if !preempt && !preempt_delay.is_zero() {
        ctx.warn(&pd_path, "preempt_delay has no effect with preempt: false");
    }
    // Members and priorities.
    let mut members = Vec::new();
    for h in rv.priorities.keys() {
        if !lbs.contains(h) {
            let names: Vec<&str> = lbs.iter().map(String::as_str).collect();
            let hint = crate::hint(h, &names);
            ctx.err(
                format!("{p}.priorities.{h}"),
                format!("`{h}` is not a load balancer of this cluster{hint}"),
            );
        }
    }
    let mut by_prio: BTreeMap<u8, String> = BTreeMap::new();
    for h in lbs {
        let Some(host) = hosts.get(h) else { continue };
        let (prio, pp) = match rv.priorities.get(h) {
            Some(&pr) => {
                let pp = format!("{p}.priorities.{h}");
                let why = cfg_vrrp::priority_problem("priority", pr);
                (ctx.checked::<u8>(&pp, pr, why), pp)
            }
            None => match host.vrrp_priority {
                Some(pr) => (Some(pr), format!("{}.vrrp_priority", host.path)),
                None => {
                    ctx.err(format!("{p}.priorities"), format!("no priority for load balancer `{h}`: set vips[].priorities.{h} or the host's vrrp_priority"));
                    (None, String::new())
                }
            },
        };
        let Some(prio) = prio else { continue };
        if prio == 255 {
            let owns = host
                .address
                .is_some_and(|a| addresses.iter().any(|v| v.addr() == a.addr()));
            if !owns {
                ctx.err(&pp, format!("priority 255 is reserved for the owner of the VIP address; `{h}` does not own it (use 1..254)"));
            }
        }
        if let Some(other) = by_prio.insert(prio, h.clone()) {
            ctx.err(&pp, format!("priority {prio} of `{h}` equals that of `{other}`: priorities must differ within a VIP group, or the election depends on IP order"));
        }
        let interface = rv
            .interface
            .clone()
            .unwrap_or_else(|| host.vrrp_interface.clone());
        members.push(Member {
            host: h.clone(),
            priority: prio,
            interface,
        });
    }
    if let Some(i) = &rv.interface {
        check_ifname(ctx, &format!("{p}.interface"), i);
    }
    // VIP vs node addresses and subnets.
    for (i, net) in addresses.iter().enumerate() {
        let ap = if i == 0 {
            format!("{p}.address")
        } else {
            format!("{p}.extra_addresses[{}]", i - 1)
        };
        for host in hosts.values() {
            if let Some(a) = host.address
                && a.addr() == net.addr()
                && !members
                    .iter()
                    .any(|m| m.host == host.name && m.priority == 255)
            {
                ctx.err(
                    &ap,
                    format!(
                        "VIP {} is the address of host `{}`: a VIP must be an unused address",
                        net.addr(),
                        host.name
                    ),
                );
            }
        }
        for m in &members {
            if let Some(host) = hosts.get(&m.host)
                && host.prefix_known
                && let Some(a) = host.address
                && !a.contains(&net.addr())
            {
                ctx.err(
                    &ap,
                    format!(
                        "VIP {} is outside the subnet {} of load balancer `{}`",
                        net.addr(),
                        a.trunc(),
                        m.host
                    ),
                );
            }
        }
    }
    // Transport.
    let unicast = match &rv.unicast {
        Some(RawUnicast::Enabled(b)) => Some(*b),
        Some(RawUnicast::Peers { .. }) => Some(true),
        None => d.unicast,
    };
    let transport = if unicast.unwrap_or(false) {
        match &rv.unicast {
            Some(RawUnicast::Peers { peers }) if !peers.is_empty() => {
                let mut list = Vec::new();
                for (i, t) in peers.iter().enumerate() {
                    match Ipv4Addr::from_str(t) {
                        Ok(a) => list.push(a),
                        Err(_) => ctx.err(
                            format!("{p}.unicast.peers[{i}]"),
                            format!("`{t}` is not an IPv4 address"),
                        ),
                    }
                }
                Transport::UnicastPeers(list)
            }
            _ => {
                for m in &members {
                    if hosts.get(&m.host).is_some_and(|h| h.address.is_none()) {
                        let up =
                            origin(p, dp, "unicast", rv.unicast.is_some(), d.unicast.is_some());
                        ctx.err(up, format!("unicast needs the address of `{}`: set its address (or an IP ssh_host)", m.host));
                    }
                }
                Transport::UnicastDerived
            }
        }
    } else {
        let g = rv.multicast_group.as_ref().or(d.multicast_group.as_ref());
        let mp = || {
            origin(
                p,
                dp,
                "multicast_group",
                rv.multicast_group.is_some(),
                d.multicast_group.is_some(),
            )
        };
        let group = match g.map(|t| (t, Ipv4Addr::from_str(t))) {
            None => DEFAULT_MULTICAST_GROUP,
            Some((_, Ok(a))) => {
                if let Some(why) = cfg_vrrp::multicast_group_problem(a) {
                    ctx.err(mp(), why);
                }
                a
            }
            Some((t, Err(_))) => {
                ctx.err(mp(), format!("`{t}` is not an IPv4 address"));
                DEFAULT_MULTICAST_GROUP
            }
        };
        Transport::Multicast(group)
    };
    let track_interface = rv
        .track_interface
        .clone()
        .or_else(|| d.track_interface.clone())
        .unwrap_or_default();
    for (i, t) in track_interface.iter().enumerate() {
        check_ifname(ctx, &format!("{p}.track_interface[{i}]"), t);
    }
    let notify_raw = rv
        .notify
        .clone()
        .or_else(|| d.notify.clone())
        .unwrap_or_default();
    let np = format!("{p}.notify");
    let cmd = |ctx: &mut Ctx<'_>, k: &str, c: &Option<Command>| {
        c.as_ref().map(|c| {
            let argv = c.argv();
            check_command(ctx, &format!("{np}.{k}"), &argv);
            argv
        })
    };
    let notify = Hooks {
        master: cmd(ctx, "master", &notify_raw.master),
        backup: cmd(ctx, "backup", &notify_raw.backup),
        fault: cmd(ctx, "fault", &notify_raw.fault),
        stop: cmd(ctx, "stop", &notify_raw.stop),
        generic: cmd(ctx, "generic", &notify_raw.generic),
        builtin: notify_raw.builtin.unwrap_or(true),
    };
    let (accept_peers, accept_any_peer) = resolve_peers(rv, p, dp, d, &members, hosts, ctx);
    if let Some(why) = rv.label.as_deref().and_then(cfg_vrrp::label_problem) {
        ctx.err(format!("{p}.label"), why);
    }
    let v3_checksum = rv
        .v3_checksum
        .or(d.v3_checksum)
        .unwrap_or(V3Checksum::PseudoHeader);
    if let Some(msg) = hadeploy_config::vrrp::v3_checksum_warning(version, v3_checksum) {
        let cp = origin(
            p,
            dp,
            "v3_checksum",
            rv.v3_checksum.is_some(),
            d.v3_checksum.is_some(),
        );
        ctx.warn(cp, msg);
    }
    Some(VipGroup {
        name: rv.name.clone(),
        addresses,
        vrid: vrid?,
        label: rv.label.clone(),
        version,
        advert_interval,
        auth_pass,
        preempt,
        preempt_delay,
        members,
        transport,
        v3_checksum,
        garp: rv
            .garp
            .clone()
            .or_else(|| d.garp.clone())
            .unwrap_or_default(),
        track_interface,
        track_script: rv
            .track_script
            .iter()
            .map(|t| (t.name.clone(), None))
            .collect(),
        notify,
        accept_peers,
        accept_any_peer,
    })
}

/// Whose adverts the VIP group's instances accept: the members (rendered
/// as each node's `peers`), `accept_peers`, or anyone with
/// `accept_any_peer`. A member whose address is unknown cannot be listed,
/// so the group falls back to accepting any source, with a warning.
fn resolve_peers(
    rv: &RawVip,
    p: &str,
    dp: &str,
    d: &RawVrrpDefaults,
    members: &[Member],
    hosts: &BTreeMap<String, Host>,
    ctx: &mut Ctx<'_>,
) -> (Vec<Ipv4Addr>, bool) {
    let list_path = origin(
        p,
        dp,
        "accept_peers",
        rv.accept_peers.is_some(),
        d.accept_peers.is_some(),
    );
    let mut accept_peers = Vec::new();
    for (i, t) in rv
        .accept_peers
        .as_ref()
        .or(d.accept_peers.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        match Ipv4Addr::from_str(t) {
            Ok(a) => {
                let member = members.iter().find(|m| {
                    hosts
                        .get(&m.host)
                        .and_then(|h| h.address)
                        .is_some_and(|h| h.addr() == a)
                });
                match member {
                    Some(m) => ctx.warn(
                        format!("{list_path}[{i}]"),
                        format!("{a} is load balancer `{}`, already a peer", m.host),
                    ),
                    None => accept_peers.push(a),
                }
            }
            Err(_) => ctx.err(
                format!("{list_path}[{i}]"),
                format!("`{t}` is not an IPv4 address"),
            ),
        }
    }
    let mut accept_any = rv.accept_any_peer.or(d.accept_any_peer).unwrap_or(false);
    if !accept_any {
        let unknown: Vec<&str> = members
            .iter()
            .filter(|m| hosts.get(&m.host).is_some_and(|h| h.address.is_none()))
            .map(|m| m.host.as_str())
            .collect();
        if !unknown.is_empty() {
            ctx.warn(
                format!("{p}.virtual_router_id"),
                format!(
                    "the address of {} is not known, so its adverts cannot be told from a forged \
                     one: VIP group `{}` accepts adverts from any source; set the host's `address` \
                     (or an IP ssh_host), or set accept_any_peer: true to say this is intended",
                    unknown.join(", "),
                    rv.name
                ),
            );
            accept_any = true;
        }
    }
    (accept_peers, accept_any)
}

fn resolve_upstream(ru: &RawUpstream, p: &str, ctx: &mut Ctx<'_>) -> Upstream {
    let mut servers = Vec::new();
    for (i, s) in ru.servers.iter().enumerate() {
        let sp = format!("{p}.servers[{i}]");
        let address = match SocketAddr::from_str(&s.address) {
            Ok(a) => a,
            Err(_) => {
                ctx.err(format!("{sp}.address"), format!("`{}` is not ip:port with a port 1..65535 (host names are not resolved on nodes)", s.address));
                continue;
            }
        };
        let weight = s.weight.map_or(Some(cfg_proxy::DEFAULT_WEIGHT), |w| {
            ctx.checked(&format!("{sp}.weight"), w, cfg_proxy::weight_problem(w))
        });
        let max_fails = s.max_fails.map_or(Some(cfg_proxy::DEFAULT_MAX_FAILS), |w| {
            ctx.ranged(&format!("{sp}.max_fails"), w, 0, 1000, "max_fails")
        });
        servers.push(UpstreamServer {
            address,
            weight: weight.unwrap_or(cfg_proxy::DEFAULT_WEIGHT),
            max_fails: max_fails.unwrap_or(cfg_proxy::DEFAULT_MAX_FAILS),
            fail_timeout: ctx.duration(
                &format!("{sp}.fail_timeout"),
                s.fail_timeout.as_ref(),
                cfg_proxy::DEFAULT_FAIL_TIMEOUT,
            ),
            backup: s.backup,
            down: s.down,
        });
    }
    let sixty = cfg_proxy::DEFAULT_TIMEOUT;
    let up = Upstream {
        servers,
        health_check: ru.health_check.clone(),
        keepalive: ru.keepalive.clone().unwrap_or_default(),
        connect_timeout: ctx.duration(
            &format!("{p}.connect_timeout"),
            ru.connect_timeout.as_ref(),
            sixty,
        ),
        read_timeout: ctx.duration(
            &format!("{p}.read_timeout"),
            ru.read_timeout.as_ref(),
            sixty,
        ),
        send_timeout: ctx.duration(
            &format!("{p}.send_timeout"),
            ru.send_timeout.as_ref(),
            sixty,
        ),
        next_upstream_tries: ru
            .next_upstream_tries
            .and_then(|t| {
                ctx.ranged(
                    &format!("{p}.next_upstream_tries"),
                    t,
                    0,
                    100,
                    "next_upstream_tries",
                )
            })
            .unwrap_or(0),
    };
    cfg_proxy::check_upstream(p, &up, &mut ctx.diags);
    up
}

fn resolve_site(rs: &RawSite, p: &str, vips: &[Ipv4Addr], ctx: &mut Ctx<'_>) -> Site {
    let listen = resolve_listen(&rs.listen, p, vips, ctx);
    if let Some(root) = &rs.root
        && !root.is_absolute()
    {
        ctx.err(format!("{p}.root"), "root must be an absolute path");
    }
    for (i, rl) in rs.locations.iter().enumerate() {
        let lp = format!("{p}.locations[{i}]");
        // Stricter than the runtime, which lets a proxy win over a root and
        // resolves a relative root against its working directory.
        if rl.proxy.is_some() && rl.root.is_some() {
            ctx.err(&lp, "a location either proxies or serves a root, not both");
        }
        if let Some(root) = &rl.root
            && !root.is_absolute()
        {
            ctx.err(format!("{lp}.root"), "root must be an absolute path");
        }
    }
    let mut site = rs.clone().map_listen(|_| listen);
    if site.name.is_empty() {
        site.name = match rs.server_names.first() {
            Some(n) => n.clone(),
            None if rs.default_server => "default".to_string(),
            None => format!("site{}", p.len()),
        };
    }
    site
}

/// `80`, `ip:port` or `vip:port` (one address per VIP of the cluster).
fn resolve_listen(
    forms: &ListenList,
    p: &str,
    vips: &[Ipv4Addr],
    ctx: &mut Ctx<'_>,
) -> Vec<SocketAddr> {
    let list: Vec<Listen> = match forms {
        ListenList::One(l) => vec![l.clone()],
        ListenList::Many(v) => v.clone(),
    };
    let mut listen = Vec::new();
    for (i, l) in list.iter().enumerate() {
        let lp = if matches!(forms, ListenList::One(_)) {
            format!("{p}.listen")
        } else {
            format!("{p}.listen[{i}]")
        };
        match l {
            Listen::Port(port) => {
                if let Some(port) = ctx.ranged::<u16>(&lp, *port, 1, 65535, "port") {
                    listen.push(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
                }
            }
            Listen::Addr(s) => {
                if let Some(port) = s.strip_prefix("vip:") {
                    match port.parse::<u16>() {
                        Ok(port) if port > 0 => {
                            listen.extend(vips.iter().map(|a| SocketAddr::from((*a, port))))
                        }
                        _ => ctx.err(&lp, format!("`{s}`: port must be 1..65535")),
                    }
                } else if let Ok(port) = s.parse::<i64>() {
                    if let Some(port) = ctx.ranged::<u16>(&lp, port, 1, 65535, "port") {
                        listen.push(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
                    }
                } else {
                    match SocketAddr::from_str(s) {
                        Ok(a) if a.port() != 0 => listen.push(a),
                        _ => ctx.err(&lp, format!("`{s}` is not a listen address: write 80, 0.0.0.0:80, 192.168.10.100:80 or vip:80")),
                    }
                }
            }
        }
    }
    listen
}

/// Checks that span clusters: the runtime's per-node VRID rule applied to
/// each host over all its clusters, duplicate VIPs, duplicate VIP group names.
fn cross_checks(inv: &Inventory, raw: &RawInventory, ctx: &mut Ctx<'_>) {
    // Per host: (interface, VRID, `cluster/vip`, YAML path of the VIP group).
    let mut per_host: BTreeMap<&str, Vec<(&str, u8, String, String)>> = BTreeMap::new();
    let mut vip_use: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for c in &inv.clusters {
        let rc = &raw.clusters[&c.name];
        for v in &c.vips {
            let idx = rc.vips.iter().position(|r| r.name == v.name).unwrap_or(0);
            let p = format!("clusters.{}.vips[{idx}]", c.name);
            let here = format!("{}/{}", c.name, v.name);
            for m in &v.members {
                per_host.entry(&m.host).or_default().push((
                    &m.interface,
                    v.vrid,
                    here.clone(),
                    p.clone(),
                ));
            }
            for a in &v.addresses {
                if let Some(prev) = vip_use.insert(a.addr(), here.clone()) {
                    ctx.err(
                        format!("{p}.address"),
                        format!("VIP {} is already managed by {prev}", a.addr()),
                    );
                }
            }
        }
        let mut names = BTreeSet::new();
        for v in &c.vips {
            if !names.insert(v.name.as_str()) {
                ctx.err(
                    format!("clusters.{}.vips", c.name),
                    format!("VIP group name `{}` is used twice", v.name),
                );
            }
        }
    }
    for (host, uses) in &per_host {
        for (i, prev) in cfg_vrrp::vrid_reuse(uses.iter().map(|u| (u.0, u.1))) {
            let (interface, vrid, _, p) = &uses[i];
            let why = cfg_vrrp::vrid_reuse_message(*vrid, interface, &uses[prev].2);
            ctx.err(
                format!("{p}.virtual_router_id"),
                format!("{why} (host `{host}`)"),
            );
        }
    }
}
