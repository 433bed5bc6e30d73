//! An inventory for the Vagrant lab (`vagrant/Vagrantfile`) from the output
//! of `vagrant ssh-config`.
//!
//! `vagrant ssh-config` prints one OpenSSH `Host` block per running machine:
//! where sshd is reachable from the host running vagrant (127.0.0.1 and a
//! forwarded port with VirtualBox, the management IP and port 22 with
//! libvirt), the user and the per-machine key. The VRRP/proxy addresses are
//! not in it: they are the Vagrantfile's private network, given here by
//! [`VagrantOptions::addresses`].

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::generated;
use crate::raw::{HostVars, RawInventory};

/// The topology of the Vagrantfile the ssh-config came from. The
/// [`Default`] is `vagrant/Vagrantfile` of this repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VagrantOptions {
    /// Address (with prefix) of each machine on the private network, by
    /// Vagrant machine name.
    pub addresses: Vec<(String, Ipv4Net)>,
    /// Interface of the private network in the guests (`eth1` on centos/7:
    /// eth0 is VirtualBox's NAT or vagrant-libvirt's management network).
    pub vrrp_interface: String,
    /// Machines whose name starts with this are load balancers.
    pub lb_prefix: String,
    /// Machines whose name starts with this are backends.
    pub backend_prefix: String,
    /// Inventory group names for the two roles.
    pub lb_group: String,
    pub backend_group: String,
    pub cluster: String,
    /// The VIP, with the private network's prefix.
    pub vip: Ipv4Net,
    pub virtual_router_id: u8,
    /// VRRP v2 PASS authentication (1..8 bytes).
    pub auth_pass: String,
    /// Port the backends serve on (managed by hadeploy).
    pub backend_port: u16,
    /// Port of the site on the load balancers.
    pub site_port: u16,
    pub site_name: String,
}

impl Default for VagrantOptions {
    fn default() -> Self {
        let net = |last: u8| Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 56, last), 24);
        VagrantOptions {
            addresses: [("lb1", 11), ("lb2", 12), ("web1", 21), ("web2", 22)]
                .into_iter()
                .map(|(h, last)| (h.to_string(), net(last)))
                .collect(),
            vrrp_interface: "eth1".into(),
            lb_prefix: "lb".into(),
            backend_prefix: "web".into(),
            lb_group: "vagrant_lbs".into(),
            backend_group: "vagrant_backends".into(),
            cluster: "vagrant".into(),
            vip: net(100),
            virtual_router_id: 66,
            auth_pass: "labpass".into(),
            backend_port: crate::raw::DEFAULT_BACKEND_PORT,
            site_port: 80,
            site_name: "www.domain1.com".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VagrantError {
    #[error(
        "no `Host` block in the `vagrant ssh-config` output (are the machines up? `vagrant up`)"
    )]
    NoHosts,
    #[error("`vagrant ssh-config`, line {line}: Host `{host}` has no {field}")]
    MissingField {
        host: String,
        line: usize,
        field: &'static str,
    },
    #[error("`vagrant ssh-config`, line {line}: {field} `{value}` is not valid")]
    InvalidValue {
        line: usize,
        field: &'static str,
        value: String,
    },
    /// vagrant-libvirt on a remote libvirt host (`connect_via_ssh`) reaches
    /// the guests through a ProxyCommand; hadeploy only knows ProxyJump.
    #[error(
        "`vagrant ssh-config`, line {line}: Host `{host}` is reached through a ProxyCommand, which hadeploy does not support (set ssh_jump by hand)"
    )]
    ProxyCommand { host: String, line: usize },
    #[error("`vagrant ssh-config`, line {line}: Host `{host}` appears twice")]
    DuplicateHost { host: String, line: usize },
    #[error(
        "machine name `{0}` cannot be an inventory host name (letters, digits, '-', '_' and '.' only)"
    )]
    InvalidHostName(String),
    #[error(
        "machine `{host}` is neither a load balancer (`{lb_prefix}*`) nor a backend (`{backend_prefix}*`)"
    )]
    UnknownRole {
        host: String,
        lb_prefix: String,
        backend_prefix: String,
    },
    #[error("machine `{0}` has no private network address in the options")]
    NoAddress(String),
    #[error("no load balancer machine (`{0}*`) in the `vagrant ssh-config` output")]
    NoLoadBalancers(String),
    #[error("no backend machine (`{0}*`) in the `vagrant ssh-config` output")]
    NoBackends(String),
    /// The generated text does not load (options inconsistent with each
    /// other, e.g. the VIP outside the machines' subnet).
    #[error("the generated inventory does not load:\n{0}")]
    Generated(#[source] hadeploy_config::ConfigError),
    #[error("cannot write the inventory as YAML: {0}")]
    Serialize(#[source] yaml_serde::Error),
}

/// One `Host` block of `vagrant ssh-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    pub name: String,
    pub host_name: String,
    pub port: u16,
    pub user: String,
    /// The first `IdentityFile`, unquoted.
    pub identity_file: Option<String>,
}

/// Parses `vagrant ssh-config` output: `Host` blocks of `Keyword value`
/// (or `Keyword=value`) lines, keywords case-insensitive, values possibly
/// double-quoted. Lines before the first `Host`, blank lines and comments
/// are ignored; so are keywords hadeploy has no use for.
pub fn parse_ssh_config(text: &str) -> Result<Vec<SshHost>, VagrantError> {
    struct Block {
        name: String,
        line: usize,
        host_name: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        identity_file: Option<String>,
    }
    fn finish(b: Block) -> Result<SshHost, VagrantError> {
        let missing = |field| VagrantError::MissingField {
            host: b.name.clone(),
            line: b.line,
            field,
        };
        Ok(SshHost {
            host_name: b.host_name.clone().ok_or_else(|| missing("HostName"))?,
            port: b.port.ok_or_else(|| missing("Port"))?,
            user: b.user.clone().ok_or_else(|| missing("User"))?,
            identity_file: b.identity_file,
            name: b.name,
        })
    }

    let mut hosts: Vec<SshHost> = Vec::new();
    let mut cur: Option<Block> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (key, value) = split_keyword(trimmed);
        let invalid = |field| VagrantError::InvalidValue {
            line,
            field,
            value: value.to_string(),
        };
        if key.eq_ignore_ascii_case("Host") {
            if let Some(b) = cur.take() {
                hosts.push(finish(b)?);
            }
            // Vagrant prints one name; with several patterns the first is
            // the machine's.
            let name = first_word(value).ok_or_else(|| invalid("Host"))?;
            if hosts.iter().any(|h| h.name == name) {
                return Err(VagrantError::DuplicateHost { host: name, line });
            }
            cur = Some(Block {
                name,
                line,
                host_name: None,
                port: None,
                user: None,
                identity_file: None,
            });
            continue;
        }
        let Some(b) = cur.as_mut() else {
            continue; // global options before any Host: not vagrant's output
        };
        if key.eq_ignore_ascii_case("HostName") {
            b.host_name = Some(first_word(value).ok_or_else(|| invalid("HostName"))?);
        } else if key.eq_ignore_ascii_case("Port") {
            let port = value
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("Port"))?;
            b.port = Some(port);
        } else if key.eq_ignore_ascii_case("User") {
            b.user = Some(first_word(value).ok_or_else(|| invalid("User"))?);
        } else if key.eq_ignore_ascii_case("ProxyCommand") {
            return Err(VagrantError::ProxyCommand {
                host: b.name.clone(),
                line,
            });
        } else if key.eq_ignore_ascii_case("IdentityFile") {
            // ssh uses the first IdentityFile that works; vagrant lists the
            // machine's own key first.
            if b.identity_file.is_none() {
                let path = unquote(value);
                if path.is_empty() {
                    return Err(invalid("IdentityFile"));
                }
                b.identity_file = Some(path);
            }
        }
    }
    if let Some(b) = cur.take() {
        hosts.push(finish(b)?);
    }
    if hosts.is_empty() {
        return Err(VagrantError::NoHosts);
    }
    Ok(hosts)
}

/// `Keyword value`, `Keyword=value` or `Keyword = value`.
fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (key, rest)
}

/// The value with surrounding double quotes removed; an unquoted value is
/// kept whole, spaces included (an IdentityFile path with spaces).
fn unquote(value: &str) -> String {
    let v = value.trim();
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.to_string(),
        None => v.to_string(),
    }
}

/// First word of a value, quotes removed; `None` when empty.
fn first_word(value: &str) -> Option<String> {
    let v = value.trim();
    let word = if let Some(rest) = v.strip_prefix('"') {
        rest.split('"').next().unwrap_or_default()
    } else {
        v.split_whitespace().next().unwrap_or_default()
    };
    (!word.is_empty()).then(|| word.to_string())
}

fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The hadeploy inventory (YAML text) for the Vagrant lab whose
/// `vagrant ssh-config` output is `ssh_config`. The result is checked with
/// [`crate::parse`] before it is returned.
pub fn inventory_from_ssh_config(
    ssh_config: &str,
    opts: &VagrantOptions,
) -> Result<String, VagrantError> {
    let hosts = parse_ssh_config(ssh_config)?;
    let mut lbs = Vec::new();
    let mut backends = Vec::new();
    for h in &hosts {
        if !valid_host_name(&h.name) {
            return Err(VagrantError::InvalidHostName(h.name.clone()));
        }
        let address = opts
            .addresses
            .iter()
            .find(|(n, _)| *n == h.name)
            .map(|(_, a)| *a)
            .ok_or_else(|| VagrantError::NoAddress(h.name.clone()))?;
        if h.name.starts_with(&opts.lb_prefix) {
            lbs.push((h, address));
        } else if h.name.starts_with(&opts.backend_prefix) {
            backends.push((h, address));
        } else {
            return Err(VagrantError::UnknownRole {
                host: h.name.clone(),
                lb_prefix: opts.lb_prefix.clone(),
                backend_prefix: opts.backend_prefix.clone(),
            });
        }
    }
    if lbs.is_empty() {
        return Err(VagrantError::NoLoadBalancers(opts.lb_prefix.clone()));
    }
    if backends.is_empty() {
        return Err(VagrantError::NoBackends(opts.backend_prefix.clone()));
    }

    let text = render_yaml(opts, &lbs, &backends)?;
    crate::parse(&text, Path::new("vagrant.yaml")).map_err(VagrantError::Generated)?;
    Ok(text)
}

/// What the written file says before its YAML: how it was made and how
/// to use it.
const HEADER: &str = "\
# hadeploy inventory for the Vagrant lab (vagrant/Vagrantfile), written by
# `hadeploy inventory from-vagrant` from `vagrant ssh-config`.
#
# Host keys: vagrant's own ssh settings skip host key checks
# (StrictHostKeyChecking no, UserKnownHostsFile /dev/null); hadeploy does
# not. Each `vagrant up` of a new machine brings a new host key, so the
# first apply must accept them:
#   hadeploy apply inventory/vagrant.yaml --trust-new-host-keys
#
# ssh_host/ssh_port are where vagrant forwards sshd (VirtualBox: 127.0.0.1
# and a forwarded port; libvirt: the management network, port 22); address
# is the private network, which carries VRRP, the VIP and the proxy traffic.
# Facts (CentOS 7, systemd 219, firewalld) are gathered by apply.
";

fn render_yaml(
    opts: &VagrantOptions,
    lbs: &[(&SshHost, Ipv4Net)],
    backends: &[(&SshHost, Ipv4Net)],
) -> Result<String, VagrantError> {
    generated::to_yaml(HEADER, &raw_inventory(opts, lbs, backends)).map_err(VagrantError::Serialize)
}

/// The inventory as the loader's own types, so every value is quoted as
/// YAML needs it (a key path with spaces, a `#` or a `:`).
fn raw_inventory(
    opts: &VagrantOptions,
    lbs: &[(&SshHost, Ipv4Net)],
    backends: &[(&SshHost, Ipv4Net)],
) -> RawInventory {
    let group = |members: &[(&SshHost, Ipv4Net)], is_lb: bool| {
        generated::group(members.iter().enumerate().map(|(i, (h, address))| {
            let vars = HostVars {
                ssh_host: Some(h.host_name.clone()),
                ssh_port: Some(i64::from(h.port)),
                ssh_user: Some(h.user.clone()),
                ssh_key: h.identity_file.clone(),
                become_root: (h.user != "root").then_some(true),
                address: Some(address.to_string()),
                vrrp_priority: is_lb.then(|| i64::from(lb_priority(i))),
                ..HostVars::default()
            };
            (h.name.clone(), vars)
        }))
    };
    let vars = HostVars {
        vrrp_interface: Some(opts.vrrp_interface.clone()),
        ..HostVars::default()
    };
    let mut cluster = generated::cluster(&opts.lb_group);
    cluster.backends = Some(generated::backends(&opts.backend_group, opts.backend_port));
    cluster.vrrp = generated::vrrp(2, "1s", Some(&opts.auth_pass));
    let vip = generated::vip(
        "VI_1".into(),
        opts.vip.to_string(),
        opts.virtual_router_id,
        &opts.vrrp_interface,
        1,
    );
    cluster.vips = vec![vip];
    let servers = backends
        .iter()
        .map(|(_, a)| format!("{}:{}", a.addr(), opts.backend_port));
    let upstream = generated::weighted_upstream(servers.collect(), Duration::from_secs(2));
    cluster
        .upstreams
        .insert(generated::UPSTREAM.into(), upstream);
    cluster.sites = vec![generated::site(&opts.site_name, opts.site_port, None, None)];
    let groups = [
        (opts.lb_group.clone(), group(lbs, true)),
        (opts.backend_group.clone(), group(backends, false)),
    ];
    generated::inventory(vars, groups, &opts.cluster, cluster)
}

/// 150 for the first load balancer (the preferred master), then 100, 90, ...
fn lb_priority(i: usize) -> u8 {
    match i {
        0 => 150,
        n => u8::try_from(110usize.saturating_sub(10 * n))
            .unwrap_or(1)
            .max(1),
    }
}
