//! Model + facts -> the exact file tree a node receives.
//!
//! Runtime configs are typed values (`hadeploy_config`'s own types),
//! serialized with serde behind a short header; only files no Rust type owns
//! (units, sysctl, firewalld, logrotate, tmpfiles, the notify hook) come from
//! templates. Every render runs the runtime's `validate()` on the typed
//! configs (a rule `resolve` lacks fails here, not on the node); that the
//! serialized files load back to the same value is proven by the tests
//! (tests/render.rs), not re-parsed on every render. Output is deterministic
//! (ordered maps, no timestamps), so `apply` can compare hashes.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use hadeploy_config::paths;
use hadeploy_config::proxy::{AccessLog, LogFormat, ProxyConfig, Site};
use hadeploy_config::status::VrrpState;
use hadeploy_config::vrrp::{
    AuthPass, DEFAULT_MULTICAST_GROUP, DEFAULT_SCRIPT_TIMEOUT, Instance, Notify, TrackScriptRef,
    Unicast, Vip, VrrpConfig,
};
use hadeploy_config::{ConfigError, Diagnostic, Unit, WriteError};
use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::facts::Facts;
use crate::model::{Cluster, Host, Inventory, Transport};
use crate::templates;

/// Which service must be restarted or reloaded when a file changes
/// (Ansible's handlers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handler {
    /// systemd daemon-reload, then restart the unit.
    RestartVrrp,
    RestartProxy,
    /// SIGHUP: the daemon validates and swaps.
    ReloadVrrp,
    ReloadProxy,
    Sysctl,
    Firewalld,
    /// systemd-tmpfiles --create: directories the units need.
    Tmpfiles,
    None,
}

impl Handler {
    /// Restarts `unit` (its unit file or the binary changed).
    pub fn restart(unit: Unit) -> Handler {
        match unit {
            Unit::Vrrp => Handler::RestartVrrp,
            Unit::Proxy => Handler::RestartProxy,
        }
    }

    /// Reloads `unit` (its config changed).
    pub fn reload(unit: Unit) -> Handler {
        match unit {
            Unit::Vrrp => Handler::ReloadVrrp,
            Unit::Proxy => Handler::ReloadProxy,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RenderedFile {
    /// Absolute path on the node.
    pub path: String,
    pub mode: u32,
    /// Holds a secret: installed 0600, masked in plans and diffs.
    pub secret: bool,
    /// Not serialized: output lists files, it never dumps them.
    pub content: String,
    /// Compared with the node's copy to decide what changes. Never printed
    /// for a secret file: the hash of a short password can be brute-forced.
    pub sha256: String,
    pub handler: Handler,
}

impl RenderedFile {
    /// The hash as output may show it: `None` for a secret file.
    pub fn shown_sha256(&self) -> Option<&str> {
        (!self.secret).then_some(self.sha256.as_str())
    }
}

impl Serialize for RenderedFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RenderedFile", 5)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("mode", &self.mode)?;
        st.serialize_field("secret", &self.secret)?;
        st.serialize_field("sha256", &self.shown_sha256())?;
        st.serialize_field("handler", &self.handler)?;
        st.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeTree {
    pub host: String,
    pub facts: Facts,
    pub files: Vec<RenderedFile>,
    /// Units to enable and keep running, in start order.
    pub units: Vec<Unit>,
    #[serde(skip)]
    pub vrrp: Option<VrrpConfig>,
    #[serde(skip)]
    pub proxy: Option<ProxyConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no host named `{0}` in the inventory")]
    UnknownHost(String),
    #[error("{host}: template {template}: {source}")]
    Template {
        host: String,
        template: String,
        #[source]
        source: minijinja::Error,
    },
    /// The runtime's validation refused a config built from a valid
    /// inventory: a rule `resolve` does not apply yet (a bug, reported
    /// rather than shipped to the node).
    #[error("{host}: {file} does not pass the runtime's check:\n{source}")]
    Invalid {
        host: String,
        file: String,
        #[source]
        source: ConfigError,
    },
    #[error("{host}: {file}: {source}")]
    Serialize {
        host: String,
        file: String,
        #[source]
        source: WriteError,
    },
    #[error("{host}: {message}")]
    Conflict { host: String, message: String },
}

/// Address of the runtime's admin endpoints when the inventory sets none
/// (the runtime itself has no default: no `admin`, no endpoint).
pub const DEFAULT_ADMIN_VRRP: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9101));
pub const DEFAULT_ADMIN_PROXY: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9102));
pub use hadeploy_config::paths::NOTIFY_HOOK;

/// Holds the node and its facts, not the inventory: templates get
/// `base_ctx`, runtime configs are typed values, so nothing about the
/// inventory file can reach a node.
struct Renderer<'a> {
    env: Environment<'static>,
    host: &'a Host,
    facts: &'a Facts,
    files: Vec<RenderedFile>,
}

/// Renders every managed host, with facts from `facts_for`.
pub fn render_all(
    inv: &Inventory,
    facts_for: impl Fn(&Host) -> Facts,
) -> Result<Vec<NodeTree>, RenderError> {
    inv.managed_hosts()
        .into_iter()
        .map(|h| render(inv, &h.name, &facts_for(h)))
        .collect()
}

pub fn render(inv: &Inventory, host: &str, facts: &Facts) -> Result<NodeTree, RenderError> {
    let h = inv
        .hosts
        .get(host)
        .ok_or_else(|| RenderError::UnknownHost(host.to_string()))?;
    let mut r = Renderer {
        env: templates::environment(),
        host: h,
        facts,
        files: Vec::new(),
    };
    let lb_clusters: Vec<&Cluster> = inv.lb_clusters(host).collect();
    let backend_clusters: Vec<&Cluster> = inv.backend_clusters(host).collect();
    let mut units = Vec::new();
    let vrrp = if lb_clusters.is_empty() {
        None
    } else {
        let cfg = vrrp_config(h, &lb_clusters, inv);
        r.check(paths::VRRP_CONFIG, cfg.validate())?;
        r.runtime_file(
            paths::VRRP_CONFIG,
            &cfg,
            "keepalived equivalent: each entry of `instances` is a vrrp_instance.",
            true,
            Handler::reload(Unit::Vrrp),
        )?;
        r.unit(Unit::Vrrp, &[])?;
        r.template_file(
            "hooks/notify.sh.j2",
            NOTIFY_HOOK,
            0o755,
            Handler::None,
            minijinja::context! {},
        )?;
        r.template_file(
            "sysctl/90-hadeploy.conf.j2",
            paths::SYSCTL,
            0o644,
            Handler::Sysctl,
            minijinja::context! {},
        )?;
        units.push(Unit::Vrrp);
        Some(cfg)
    };
    let proxy = if lb_clusters.is_empty() && backend_clusters.is_empty() {
        None
    } else {
        let cfg = proxy_config(h, &lb_clusters, &backend_clusters)?;
        r.check(paths::PROXY_CONFIG, cfg.validate())?;
        r.runtime_file(
            paths::PROXY_CONFIG,
            &cfg,
            "nginx equivalent: `upstreams` are upstream {} blocks, `sites` server {} blocks.",
            false,
            Handler::reload(Unit::Proxy),
        )?;
        let log_dirs = log_dirs(&cfg);
        r.unit(Unit::Proxy, &log_dirs)?;
        r.template_file(
            "tmpfiles/hadeploy.conf.j2",
            paths::TMPFILES,
            0o644,
            Handler::Tmpfiles,
            minijinja::context! { dirs => log_dirs },
        )?;
        let log_files: BTreeSet<String> = cfg
            .sites
            .iter()
            .filter_map(|s| s.access_log.as_ref())
            .map(|a| a.path.display().to_string())
            .collect();
        if !log_files.is_empty() {
            r.template_file(
                "logrotate/hadeploy.j2",
                paths::LOGROTATE,
                0o644,
                Handler::None,
                minijinja::context! { log_files => log_files, proxy_service => Unit::Proxy.service() },
            )?;
        }
        for c in &backend_clusters {
            if let Some(b) = &c.backends
                && b.index_page
            {
                r.template_file(
                    "www/backend-index.html.j2",
                    &format!("{}/index.html", b.root.display()),
                    0o644,
                    Handler::None,
                    minijinja::context! {},
                )?;
            }
        }
        units.push(Unit::Proxy);
        Some(cfg)
    };
    if facts.firewalld {
        let mut ports: BTreeSet<u16> = BTreeSet::new();
        if let Some(p) = &proxy {
            ports.extend(
                p.sites
                    .iter()
                    .flat_map(|s| s.listen.iter().map(SocketAddr::port)),
            );
        }
        r.template_file(
            "firewalld/hadeploy.xml.j2",
            paths::FIREWALLD_SERVICE,
            0o644,
            Handler::Firewalld,
            minijinja::context! { ports => ports, vrrp => vrrp.is_some() },
        )?;
    }
    let mut files = r.files;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(NodeTree {
        host: host.to_string(),
        facts: facts.clone(),
        files,
        units,
        vrrp,
        proxy,
    })
}

impl Renderer<'_> {
    /// What every template may use. Only configuration and the node's facts
    /// belong here: nothing about where the inventory was read from (its file
    /// name, path, mtime) or when, since any byte of that reaching a node would
    /// make the same configuration saved elsewhere change every managed file
    /// and reload both daemons.
    fn base_ctx(&self) -> minijinja::Value {
        minijinja::context! {
            version => env!("CARGO_PKG_VERSION"),
            node => self.host.name,
            facts => self.facts,
            hardened => self.facts.hardened_units(),
            runtime => paths::RUNTIME_BIN,
        }
    }

    fn template_file(
        &mut self,
        template: &str,
        path: &str,
        mode: u32,
        handler: Handler,
        extra: minijinja::Value,
    ) -> Result<(), RenderError> {
        let ctx = minijinja::context! { ..extra, ..self.base_ctx() };
        let content = self.render_text(template, ctx)?;
        self.push(path, mode, false, content, handler);
        Ok(())
    }

    fn render_text(&self, template: &str, ctx: minijinja::Value) -> Result<String, RenderError> {
        let err = |source| RenderError::Template {
            host: self.host.name.clone(),
            template: template.to_string(),
            source,
        };
        self.env
            .get_template(template)
            .map_err(err)?
            .render(ctx)
            .map_err(err)
    }

    fn push(&mut self, path: &str, mode: u32, secret: bool, content: String, handler: Handler) {
        let sha256 = hex::encode(Sha256::digest(content.as_bytes()));
        self.files.push(RenderedFile {
            path: path.to_string(),
            mode,
            secret,
            content,
            sha256,
            handler,
        });
    }

    fn unit(&mut self, unit: Unit, log_dirs: &[String]) -> Result<(), RenderError> {
        self.template_file(
            unit.template(),
            unit.unit_file(),
            0o644,
            Handler::restart(unit),
            minijinja::context! { config => unit.config(), log_dirs => log_dirs },
        )
    }

    /// Refuses a config the runtime's validation finds errors in.
    fn check(&self, path: &str, diags: Vec<Diagnostic>) -> Result<(), RenderError> {
        if !diags.iter().any(Diagnostic::is_error) {
            return Ok(());
        }
        let mut diags = diags;
        for d in &mut diags {
            d.file = Some(PathBuf::from(path));
        }
        Err(RenderError::Invalid {
            host: self.host.name.clone(),
            file: path.to_string(),
            source: ConfigError::Invalid(diags),
        })
    }

    /// Writes a runtime config: its serde form behind a header saying who
    /// wrote it and what it corresponds to in keepalived or nginx. The
    /// header names the node, never the inventory file (see `base_ctx`).
    fn runtime_file<T: Serialize>(
        &mut self,
        path: &str,
        cfg: &T,
        equivalent: &str,
        secret: bool,
        handler: Handler,
    ) -> Result<(), RenderError> {
        let body = hadeploy_config::to_yaml(cfg).map_err(|source| RenderError::Serialize {
            host: self.host.name.clone(),
            file: path.to_string(),
            source,
        })?;
        let content = format!(
            "# Rendered by hadeploy {} for {}.\n\
             # Do not edit on the node: the next `hadeploy apply` replaces this file.\n\
             # {equivalent}\n{body}",
            env!("CARGO_PKG_VERSION"),
            self.host.name,
        );
        let mode = if secret { 0o600 } else { 0o644 };
        self.push(path, mode, secret, content, handler);
        Ok(())
    }
}

fn vrrp_config(h: &Host, clusters: &[&Cluster], inv: &Inventory) -> VrrpConfig {
    let mut instances = Vec::new();
    let mut track_scripts = Vec::new();
    for c in clusters {
        for v in &c.vips {
            let Some(me) = v.members.iter().find(|m| m.host == h.name) else {
                continue;
            };
            let my_addr = h.address.map(|a| a.addr());
            let peers_of = || -> Vec<Ipv4Addr> {
                v.members
                    .iter()
                    .filter(|m| m.host != h.name)
                    .filter_map(|m| {
                        inv.hosts
                            .get(&m.host)
                            .and_then(|o| o.address)
                            .map(|a| a.addr())
                    })
                    .collect()
            };
            // The other load balancers, whatever the transport: adverts
            // from any other source are discarded (forged, or another
            // cluster reusing the VRID), and only these are told with
            // priority 0 when this node steps down to them.
            let peers = Some(peers_of());
            let unicast = match (&v.transport, my_addr) {
                (Transport::Multicast(_), _) | (_, None) => None,
                (Transport::UnicastDerived, Some(src)) => Some(Unicast {
                    src_ip: src,
                    peers: peers_of(),
                }),
                (Transport::UnicastPeers(p), Some(src)) => Some(Unicast {
                    src_ip: src,
                    peers: p.clone(),
                }),
            };
            let multicast_group = match &v.transport {
                Transport::Multicast(g) => *g,
                _ => DEFAULT_MULTICAST_GROUP,
            };
            // The built-in hook takes keepalived's notify word in lower case
            // (`notify.sh master|backup|fault|stop INSTANCE`).
            let hook = |state: VrrpState, explicit: &Option<Vec<String>>| {
                explicit.clone().or_else(|| {
                    v.notify.builtin.then(|| {
                        vec![
                            NOTIFY_HOOK.to_string(),
                            state.notify_word().to_ascii_lowercase(),
                            v.name.clone(),
                        ]
                    })
                })
            };
            for name in v.track_script.iter().map(|(n, _)| n) {
                if let Some(ts) = c.track_scripts.iter().find(|t| &t.name == name)
                    && !track_scripts
                        .iter()
                        .any(|t: &hadeploy_config::vrrp::TrackScript| t.name == ts.name)
                {
                    track_scripts.push(ts.clone());
                }
            }
            instances.push(Instance {
                name: v.name.clone(),
                interface: me.interface.clone(),
                virtual_router_id: v.vrid,
                version: v.version,
                priority: me.priority,
                advert_interval: v.advert_interval,
                preempt: v.preempt,
                preempt_delay: v.preempt_delay,
                auth_pass: v.auth_pass.as_ref().map(|s| AuthPass::new(s.expose())),
                unicast,
                multicast_group,
                source_address: my_addr,
                peers,
                accept_peers: v.accept_peers.clone(),
                accept_any_peer: v.accept_any_peer,
                virtual_ipaddress: v
                    .addresses
                    .iter()
                    .map(|a| Vip {
                        address: *a,
                        dev: None,
                        label: v.label.clone(),
                    })
                    .collect(),
                track_interface: v.track_interface.clone(),
                track_script: v
                    .track_script
                    .iter()
                    .map(|(name, weight)| TrackScriptRef {
                        name: name.clone(),
                        weight: *weight,
                    })
                    .collect(),
                garp: v.garp.clone(),
                v3_checksum: v.v3_checksum,
                notify: Notify {
                    master: hook(VrrpState::Master, &v.notify.master),
                    backup: hook(VrrpState::Backup, &v.notify.backup),
                    fault: hook(VrrpState::Fault, &v.notify.fault),
                    stop: hook(VrrpState::Stopped, &v.notify.stop),
                    generic: v.notify.generic.clone(),
                },
            });
        }
    }
    VrrpConfig {
        node: h.name.clone(),
        admin: Some(
            clusters
                .iter()
                .find_map(|c| c.admin_vrrp)
                .unwrap_or(DEFAULT_ADMIN_VRRP),
        ),
        script_timeout: DEFAULT_SCRIPT_TIMEOUT,
        instances,
        track_scripts,
        realtime: clusters
            .iter()
            .find_map(|c| c.vrrp_realtime.clone())
            .unwrap_or_default(),
    }
}

fn proxy_config(
    h: &Host,
    lb: &[&Cluster],
    backends: &[&Cluster],
) -> Result<ProxyConfig, RenderError> {
    let mut upstreams = std::collections::BTreeMap::new();
    let mut sites = Vec::new();
    let first = lb.first().or(backends.first());
    for c in lb {
        for (name, u) in &c.upstreams {
            if upstreams.insert(name.clone(), u.clone()).is_some() {
                return Err(RenderError::Conflict {
                    host: h.name.clone(),
                    message: format!(
                        "upstream `{name}` is defined by two clusters this node serves; give them different names"
                    ),
                });
            }
        }
        sites.extend(c.sites.iter().cloned());
    }
    for c in backends {
        if let Some(b) = &c.backends {
            sites.push(Site {
                default_server: true,
                root: Some(b.root.clone()),
                access_log: Some(AccessLog {
                    path: PathBuf::from(paths::BACKEND_ACCESS_LOG),
                    format: LogFormat::Combined,
                }),
                ..Site::new(
                    format!("{}-backend", c.name),
                    vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, b.port))],
                )
            });
        }
    }
    Ok(ProxyConfig {
        node: h.name.clone(),
        admin: Some(
            first
                .and_then(|c| c.admin_proxy)
                .unwrap_or(DEFAULT_ADMIN_PROXY),
        ),
        workers: first.map_or(0, |c| c.workers),
        limits: first.map(|c| c.limits.clone()).unwrap_or_default(),
        trusted_proxies: first.map(|c| c.trusted_proxies.clone()).unwrap_or_default(),
        upstreams,
        sites,
    })
}

fn log_dirs(cfg: &ProxyConfig) -> Vec<String> {
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    dirs.insert(paths::LOG_DIR.to_string());
    for s in &cfg.sites {
        if let Some(a) = &s.access_log
            && let Some(parent) = a.path.parent()
        {
            dirs.insert(parent.display().to_string());
        }
    }
    dirs.into_iter().collect()
}

/// Writes trees under `out/<host>/...`; secret files get mode 0600.
pub fn write_trees(trees: &[NodeTree], out: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    for t in trees {
        for f in &t.files {
            let dest = out.join(&t.host).join(f.path.trim_start_matches('/'));
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // A fresh temp file created with its final mode (a secret is
            // never readable by others, not even while it is written), then
            // renamed: a rerun never leaves a half-written file. A temp file
            // a killed run left may have any mode: it is removed, not reused.
            let tmp = dest.with_extension("hadeploy-tmp");
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(f.mode & 0o600)
                .open(&tmp)?;
            file.write_all(f.content.as_bytes())?;
            file.sync_all()?;
            // The umask may have narrowed the mode at creation.
            file.set_permissions(std::fs::Permissions::from_mode(f.mode))?;
            drop(file);
            std::fs::rename(&tmp, &dest)?;
        }
    }
    Ok(())
}

/// Diagnostics as a stable list, for the CLI's `--json`.
pub fn diagnostics_json(d: &[Diagnostic]) -> serde_json::Value {
    serde_json::Value::Array(
        d.iter()
            .map(|d| {
                serde_json::json!({
                    "severity": if d.is_error() { "error" } else { "warning" },
                    "file": d.file.as_ref().map(|f| f.display().to_string()),
                    "line": d.line,
                    "column": d.column,
                    "path": d.path,
                    "message": d.message,
                })
            })
            .collect(),
    )
}
