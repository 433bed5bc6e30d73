//! `/etc/hadeploy/proxy.yaml`: what the proxy runs (nginx's job).
//!
//! The shape mirrors nginx: `upstreams` are `upstream {}` blocks, `sites`
//! are `server {}` blocks, `locations` are `location {}` blocks. Defaults are
//! nginx's unless a comment says why not.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::duration::human;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub node: String,
    /// Prometheus metrics and status (`GET /metrics`, `GET /status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
    /// Worker threads; 0 means one per core (`worker_processes auto`).
    #[serde(default)]
    pub workers: usize,
    #[serde(default)]
    pub limits: Limits,
    /// Client addresses whose X-Forwarded-For / X-Real-IP are believed
    /// (nginx's `set_real_ip_from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<IpNet>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    pub sites: Vec<Site>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// `worker_connections` summed over workers: accepted connections beyond
    /// this wait in the listen backlog.
    #[serde(default = "max_connections")]
    pub max_connections: usize,
    /// `client_header_timeout`: whole request head must arrive in this time.
    #[serde(default = "sixty_s", with = "human")]
    pub header_timeout: Duration,
    /// `large_client_header_buffers`: larger heads get 431.
    #[serde(default = "max_header_bytes")]
    pub max_header_bytes: usize,
    /// `client_max_body_size`: larger bodies get 413. 0 = unlimited.
    #[serde(default = "max_body_bytes")]
    pub max_body_bytes: u64,
    /// `keepalive_timeout` for idle client connections.
    #[serde(default = "keepalive_timeout", with = "human")]
    pub keepalive_timeout: Duration,
    /// `client_body_timeout`/`send_timeout`: gap between two reads or writes.
    #[serde(default = "sixty_s", with = "human")]
    pub io_timeout: Duration,
    /// `keepalive_requests`: requests served on one client connection; the
    /// last response says `Connection: close` (HTTP/2: GOAWAY after that
    /// many streams). 0 = one request per connection. Not written when it
    /// is the default, so configs rendered before it existed stay the same.
    #[serde(
        default = "keepalive_requests",
        skip_serializing_if = "is_default_keepalive_requests"
    )]
    pub keepalive_requests: u64,
    /// How long a graceful stop waits for in-flight requests.
    #[serde(default = "drain_timeout", with = "human")]
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: max_connections(),
            header_timeout: sixty_s(),
            max_header_bytes: max_header_bytes(),
            max_body_bytes: max_body_bytes(),
            keepalive_timeout: keepalive_timeout(),
            io_timeout: sixty_s(),
            keepalive_requests: keepalive_requests(),
            drain_timeout: drain_timeout(),
        }
    }
}

fn max_connections() -> usize {
    10_240
}
/// nginx's default for `client_header_timeout`, `client_body_timeout`,
/// `send_timeout` and the `proxy_*_timeout`s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

fn sixty_s() -> Duration {
    DEFAULT_TIMEOUT
}
fn max_header_bytes() -> usize {
    32 * 1024
}
fn max_body_bytes() -> u64 {
    1024 * 1024
}
fn keepalive_timeout() -> Duration {
    Duration::from_secs(75)
}
fn keepalive_requests() -> u64 {
    1000
}
fn is_default_keepalive_requests(n: &u64) -> bool {
    *n == keepalive_requests()
}
fn drain_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub servers: Vec<UpstreamServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub keepalive: Keepalive,
    #[serde(default = "sixty_s", with = "human")]
    pub connect_timeout: Duration,
    #[serde(default = "sixty_s", with = "human")]
    pub read_timeout: Duration,
    #[serde(default = "sixty_s", with = "human")]
    pub send_timeout: Duration,
    /// `proxy_next_upstream_tries`; 0 = every usable server once.
    #[serde(default)]
    pub next_upstream_tries: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamServer {
    /// `host:port`; IP addresses only, so a node never depends on DNS.
    pub address: SocketAddr,
    #[serde(default = "one")]
    pub weight: u32,
    /// 0 disables passive health accounting for this server.
    #[serde(default = "one")]
    pub max_fails: u32,
    #[serde(default = "ten_s", with = "human")]
    pub fail_timeout: Duration,
    #[serde(default)]
    pub backup: bool,
    #[serde(default)]
    pub down: bool,
}

/// nginx's `server` defaults: `weight=1 max_fails=1 fail_timeout=10s`.
pub const DEFAULT_WEIGHT: u32 = 1;
pub const DEFAULT_MAX_FAILS: u32 = 1;
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

fn one() -> u32 {
    DEFAULT_WEIGHT
}
fn ten_s() -> Duration {
    DEFAULT_FAIL_TIMEOUT
}

/// Active health checks: keepalived's `delay_loop` real-server checks with
/// `inhibit_on_failure` intent (a failing server gets no traffic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "health_interval", with = "human")]
    pub interval: Duration,
    #[serde(default = "two_s", with = "human")]
    pub timeout: Duration,
    #[serde(default = "slash")]
    pub path: String,
    /// Host header for the check; the server address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Accepted statuses; 200..=399 when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    #[serde(default = "two")]
    pub rise: u32,
    #[serde(default = "three")]
    pub fall: u32,
}

fn health_interval() -> Duration {
    Duration::from_secs(6)
}
fn two_s() -> Duration {
    Duration::from_secs(2)
}
fn slash() -> String {
    "/".to_string()
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keepalive {
    /// Idle pooled connections per upstream server (nginx `keepalive N`).
    #[serde(default = "max_idle")]
    pub max_idle: usize,
    /// Kept below common backend keep-alive timeouts (nginx 75s, Apache 5s,
    /// Node 5s) so a reused connection does not race the backend's close.
    #[serde(default = "idle_timeout", with = "human")]
    pub idle_timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            max_idle: max_idle(),
            idle_timeout: idle_timeout(),
        }
    }
}

fn max_idle() -> usize {
    32
}
fn idle_timeout() -> Duration {
    Duration::from_secs(4)
}

/// One virtual server. `L` is the form of `listen`: socket addresses here
/// and on the nodes; the inventory reads the same type with its own listen
/// forms (`80`, `vip:80`) and resolves only those, so a key added here is an
/// inventory key too, with the same checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site<L = Vec<SocketAddr>> {
    /// A name for logs and metrics. The inventory may leave it out and
    /// fills a default (the first server_name, or `default`) before
    /// validation; a node's config must have one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub listen: L,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    #[serde(default)]
    pub default_server: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    #[serde(default = "default_index")]
    pub index: Vec<String>,
    /// Status -> URI served from `root` for errors the proxy generates.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "error_pages"
    )]
    pub error_pages: BTreeMap<u16, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
}

impl<L> Site<L> {
    /// A site with every optional key at its default (what serde gives a
    /// site that sets only `name` and `listen`), for code that builds one
    /// and sets a few keys with `..Site::new(name, listen)`.
    pub fn new(name: impl Into<String>, listen: L) -> Site<L> {
        Site {
            name: name.into(),
            listen,
            server_names: Vec::new(),
            default_server: false,
            root: None,
            index: default_index(),
            error_pages: BTreeMap::new(),
            access_log: None,
            locations: Vec::new(),
        }
    }

    /// The same site with `listen` in another form (the inventory's
    /// resolved addresses).
    pub fn map_listen<M>(self, f: impl FnOnce(L) -> M) -> Site<M> {
        Site {
            name: self.name,
            listen: f(self.listen),
            server_names: self.server_names,
            default_server: self.default_server,
            root: self.root,
            index: self.index,
            error_pages: self.error_pages,
            access_log: self.access_log,
            locations: self.locations,
        }
    }
}

/// Error page statuses read wide, so a number beyond `u16` gets the status
/// rule's wording rather than serde's, reported as each key is read (so at
/// its position).
fn error_pages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<u16, String>, D::Error> {
    struct Pages;
    impl<'de> serde::de::Visitor<'de> for Pages {
        type Value = BTreeMap<u16, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of status to URI")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(code) = map.next_key::<i64>()? {
                let status = u16::try_from(code).map_err(|_| {
                    serde::de::Error::custom(error_status_problem(code).unwrap_or_default())
                })?;
                out.insert(status, map.next_value()?);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pages)
}

/// nginx's `index` default.
pub const DEFAULT_INDEX: &str = "index.html";

/// `index` when a site sets none.
pub fn default_index() -> Vec<String> {
    vec![DEFAULT_INDEX.to_string()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    pub path: PathBuf,
    #[serde(default)]
    pub format: LogFormat,
}

/// nginx's predefined `combined`, and `main` as nginx's default nginx.conf
/// defines it (combined plus `"$http_x_forwarded_for"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Combined,
    Main,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// `location /path` (longest prefix wins).
    #[default]
    Prefix,
    /// `location = /path` (checked first).
    Exact,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub path: String,
    #[serde(default, rename = "match")]
    pub match_kind: MatchKind,
    /// Proxy to an upstream; otherwise serve files from `root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyPass>,
    /// Overrides the site's root (nginx `root` inside a location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyPass {
    pub upstream: String,
    /// nginx `proxy_pass http://backend/uri`: when set, the matched location
    /// prefix is replaced by this URI; when absent the request URI is passed
    /// unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Written `host: client` or `host: {fixed: name}`; `!fixed name` (a
    /// YAML tag, serde's own form for an enum) loads too.
    #[serde(default, with = "host_header")]
    pub host: HostHeader,
    /// Extra request headers (`proxy_set_header`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_headers: BTreeMap<String, String>,
}

/// What Host header the upstream sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostHeader {
    /// The client's Host (`proxy_set_header Host $host`, what most users set).
    #[default]
    Client,
    /// The upstream server's address (nginx's `$proxy_host` default).
    Upstream,
    /// A fixed value.
    Fixed(String),
}

/// serde adapter for [`ProxyPass::host`]: the `{fixed: name}` form the
/// inventory documents, and the tag form earlier runtime configs could use.
mod host_header {
    use serde::{Deserialize, Deserializer, Serializer};
    use yaml_serde::Value;
    use yaml_serde::with::singleton_map;

    use super::HostHeader;

    pub fn serialize<S: Serializer>(h: &HostHeader, s: S) -> Result<S::Ok, S::Error> {
        singleton_map::serialize(h, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HostHeader, D::Error> {
        let v = Value::deserialize(d)?;
        let parsed = match v {
            Value::Tagged(_) => HostHeader::deserialize(v),
            other => singleton_map::deserialize(other),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// Why a `set_headers` entry cannot be sent upstream, if it cannot: names
/// must be HTTP tokens and not one of the headers that frame the message or
/// the connection (the proxy writes those itself; setting them would make
/// the proxy and the backend disagree about where a message ends), values
/// must not contain line breaks or other control characters.
pub fn set_header_problem(name: &str, value: &str) -> Option<String> {
    const MANAGED: [&str; 9] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "expect",
    ];
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Some(format!("`{name}` is not a valid header name"));
    }
    if MANAGED.iter().any(|m| name.eq_ignore_ascii_case(m)) {
        return Some(format!(
            "`{name}` is managed by the proxy (message framing and connection handling) and cannot be set"
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Some(format!(
            "the value of `{name}` contains a control character (line break?)"
        ));
    }
    None
}

/// Why an error page status cannot be used, if it cannot (wide, so the
/// inventory can check a number before it fits a `u16`).
pub fn error_status_problem(code: i64) -> Option<String> {
    (!(300..=599).contains(&code))
        .then(|| format!("error page status must be 300..599, not {code}"))
}

/// nginx takes any positive `weight`; the balancer sums them in i64, so
/// every u32 is safe and the only bound is the field's type.
pub const WEIGHT_RANGE: std::ops::RangeInclusive<i64> = 1..=u32::MAX as i64;

/// Why an upstream server's weight cannot be used, if it cannot.
pub fn weight_problem(weight: i64) -> Option<String> {
    crate::diag::range_problem("weight", weight, WEIGHT_RANGE)
}

/// The rules of one upstream, its keys under `p` (`upstreams.NAME` in a
/// proxy config, `clusters.C.upstreams.NAME` in an inventory).
pub fn check_upstream(p: &str, up: &Upstream, out: &mut Vec<Diagnostic>) {
    if up.servers.is_empty() {
        out.push(Diagnostic::error(
            format!("{p}.servers"),
            "an upstream needs at least one server",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, s) in up.servers.iter().enumerate() {
        if let Some(why) = weight_problem(s.weight.into()) {
            out.push(Diagnostic::error(format!("{p}.servers[{i}].weight"), why));
        }
        if s.address.port() == 0 {
            out.push(Diagnostic::error(
                format!("{p}.servers[{i}].address"),
                "port must be 1..65535",
            ));
        }
        if !seen.insert(s.address) {
            out.push(Diagnostic::error(
                format!("{p}.servers[{i}].address"),
                format!("server {} is listed twice", s.address),
            ));
        }
    }
    if up.servers.iter().all(|s| s.backup || s.down) && !up.servers.is_empty() {
        out.push(Diagnostic::warning(
            format!("{p}.servers"),
            "every server is backup or down: the upstream has no primary",
        ));
    }
    if let Some(hc) = &up.health_check {
        if hc.rise == 0 || hc.fall == 0 {
            out.push(Diagnostic::error(
                format!("{p}.health_check"),
                "rise and fall must be at least 1",
            ));
        }
        if !hc.path.starts_with('/') {
            out.push(Diagnostic::error(
                format!("{p}.health_check.path"),
                "path must start with /",
            ));
        }
        if hc.interval.is_zero() {
            out.push(Diagnostic::error(
                format!("{p}.health_check.interval"),
                "interval must be above 0",
            ));
        }
    }
}

/// The rules of a list of sites, keys under `p` (`sites`, or
/// `clusters.C.sites`): each site's own, and across sites one server_name
/// per listen address and one default_server per listen address.
pub fn check_sites(
    p: &str,
    sites: &[Site],
    upstreams: &BTreeMap<String, Upstream>,
    out: &mut Vec<Diagnostic>,
) {
    let mut vhosts: BTreeMap<(SocketAddr, String), usize> = BTreeMap::new();
    let mut defaults: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for (i, site) in sites.iter().enumerate() {
        let p = format!("{p}[{i}]");
        if site.listen.is_empty() {
            out.push(Diagnostic::error(
                format!("{p}.listen"),
                "a site needs at least one listen address",
            ));
        }
        for (j, addr) in site.listen.iter().enumerate() {
            if addr.port() == 0 {
                out.push(Diagnostic::error(
                    format!("{p}.listen[{j}]"),
                    "port must be 1..65535",
                ));
            }
            for name in &site.server_names {
                if let Some(prev) = vhosts.insert((*addr, name.to_ascii_lowercase()), i) {
                    out.push(Diagnostic::error(
                        format!("{p}.server_names"),
                        format!(
                            "server_name `{name}` on {addr} is already served by sites[{prev}]"
                        ),
                    ));
                }
            }
            if site.default_server
                && let Some(prev) = defaults.insert(*addr, i)
            {
                out.push(Diagnostic::error(
                    format!("{p}.default_server"),
                    format!("{addr} already has a default_server: sites[{prev}]"),
                ));
            }
        }
        check_site(&p, site, upstreams, out);
    }
}

/// One site's own rules, keys under `p`.
fn check_site(
    p: &str,
    site: &Site,
    upstreams: &BTreeMap<String, Upstream>,
    out: &mut Vec<Diagnostic>,
) {
    if site.name.is_empty() {
        out.push(Diagnostic::error(
            format!("{p}.name"),
            "a site needs a name",
        ));
    }
    for (code, uri) in &site.error_pages {
        if let Some(why) = error_status_problem(i64::from(*code)) {
            out.push(Diagnostic::error(format!("{p}.error_pages.{code}"), why));
        }
        if !uri.starts_with('/') {
            out.push(Diagnostic::error(
                format!("{p}.error_pages.{code}"),
                format!("error page `{uri}` must be a URI starting with /"),
            ));
        }
    }
    if !site.error_pages.is_empty() && site.root.is_none() {
        out.push(Diagnostic::error(
            format!("{p}.error_pages"),
            "error pages are served from root: set root",
        ));
    }
    let mut seen = BTreeSet::new();
    for (j, loc) in site.locations.iter().enumerate() {
        let lp = format!("{p}.locations[{j}]");
        if !loc.path.starts_with('/') {
            out.push(Diagnostic::error(
                format!("{lp}.path"),
                format!("location `{}` must start with /", loc.path),
            ));
        }
        if !seen.insert((loc.match_kind, loc.path.clone())) {
            out.push(Diagnostic::error(
                format!("{lp}.path"),
                format!("duplicate location `{}`", loc.path),
            ));
        }
        match &loc.proxy {
            Some(pp) => check_proxy_pass(&lp, pp, upstreams, out),
            None if loc.root.is_none() && site.root.is_none() => out.push(Diagnostic::error(
                lp.clone(),
                "location neither proxies nor has a root (set proxy, or root here or on the site)",
            )),
            None => {}
        }
    }
    if site.locations.is_empty() && site.root.is_none() {
        out.push(Diagnostic::error(
            p.to_string(),
            "site has no locations and no root: it would serve nothing",
        ));
    }
}

fn check_proxy_pass(
    lp: &str,
    pp: &ProxyPass,
    upstreams: &BTreeMap<String, Upstream>,
    out: &mut Vec<Diagnostic>,
) {
    if !upstreams.contains_key(&pp.upstream) {
        let names: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        let hint = crate::load::did_you_mean(&pp.upstream, &names)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        out.push(Diagnostic::error(
            format!("{lp}.proxy.upstream"),
            format!("no upstream named `{}`{hint}", pp.upstream),
        ));
    }
    if let Some(uri) = &pp.uri
        && !uri.starts_with('/')
    {
        out.push(Diagnostic::error(
            format!("{lp}.proxy.uri"),
            "uri must start with /",
        ));
    }
    for (k, v) in &pp.set_headers {
        if let Some(why) = set_header_problem(k, v) {
            out.push(Diagnostic::error(
                format!("{lp}.proxy.set_headers.{k}"),
                why,
            ));
        }
    }
}

impl ProxyConfig {
    pub fn validate(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.sites.is_empty() {
            out.push(Diagnostic::error("sites", "at least one site is required"));
        }
        for (name, up) in &self.upstreams {
            check_upstream(&format!("upstreams.{name}"), up, &mut out);
        }
        check_sites("sites", &self.sites, &self.upstreams, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::HostHeader;

    fn host(form: &str) -> Result<HostHeader, crate::ConfigError> {
        let text = format!(
            "node: n\nupstreams: {{u: {{servers: [{{address: \"127.0.0.1:81\"}}]}}}}\nsites:\n  - name: s\n    \
             listen: [\"127.0.0.1:80\"]\n    locations:\n      - path: /\n        proxy:\n          \
             upstream: u\n          host: {form}\n"
        );
        let (cfg, _) = crate::parse_proxy(&text, Path::new("proxy.yaml"))?;
        let out = crate::to_yaml(&cfg).expect("writes");
        let (back, _) = crate::parse_proxy(&out, Path::new("proxy.yaml")).expect("loads back");
        assert_eq!(back, cfg, "{out}");
        Ok(cfg.sites[0].locations[0].proxy.clone().expect("proxy").host)
    }

    /// `Site::new` is what serde makes of a site with only the required keys.
    #[test]
    fn site_new_matches_the_serde_defaults() {
        let text = "node: n\nsites:\n  - name: s\n    listen: [\"127.0.0.1:80\"]\n    root: /srv\n";
        let (cfg, _) = crate::parse_proxy(text, Path::new("proxy.yaml")).expect("valid");
        let expected = super::Site {
            root: Some("/srv".into()),
            ..super::Site::new("s", vec!["127.0.0.1:80".parse().expect("addr")])
        };
        assert_eq!(cfg.sites, [expected]);
    }

    /// `name` may be left out of the inventory (which fills it in), not out
    /// of a node's config.
    #[test]
    fn a_site_without_a_name_fails_check() {
        let text = "node: n\nsites:\n  - listen: [\"127.0.0.1:80\"]\n    root: /srv\n";
        let e = crate::parse_proxy(text, Path::new("proxy.yaml")).expect_err("no name");
        let d = &e.diagnostics()[0];
        assert_eq!(
            (d.path.as_str(), d.message.as_str()),
            ("sites[0].name", "a site needs a name"),
            "{e}"
        );
    }

    #[test]
    fn host_header_forms() {
        let fixed = HostHeader::Fixed("api.example.com".into());
        assert_eq!(host("{fixed: api.example.com}").expect("map"), fixed);
        assert_eq!(host("!fixed api.example.com").expect("tag"), fixed);
        assert_eq!(host("upstream").expect("unit"), HostHeader::Upstream);
        assert!(host("nope").is_err());
    }
}
