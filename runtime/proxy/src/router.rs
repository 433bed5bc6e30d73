//! Virtual hosts and locations, resolved the way nginx does.
//!
//! Server selection (per listen address): exact name, longest leading
//! wildcard (`*.example.com`, `.example.com`), longest trailing wildcard
//! (`www.example.*`), then the `default_server`, else the first site that
//! listens there. Location selection: `= /exact` first, then the longest
//! prefix. Regex locations do not exist in the config, so nginx's regex
//! pass is not modelled.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;

use hadeploy_config::proxy::{Location, MatchKind, Site};

/// Sites reachable on one listen address.
#[derive(Debug, Default)]
pub(crate) struct VhostTable {
    exact: HashMap<String, usize>,
    /// `(".example.com", site)`; longest first. `*.example.com` is stored as
    /// `.example.com` with `also_bare = false`.
    leading: Vec<(String, bool, usize)>,
    /// `("www.example.", site)`; longest first.
    trailing: Vec<(String, usize)>,
    default: usize,
}

impl VhostTable {
    /// Builds one table per listen address from the sites in config order.
    /// A list, not a map: a node listens on a handful of addresses, and a
    /// linear scan beats hashing a socket address on every request.
    pub(crate) fn build_all(sites: &[Site]) -> Vec<(SocketAddr, VhostTable)> {
        let mut out: Vec<(SocketAddr, VhostTable)> = Vec::new();
        for (i, site) in sites.iter().enumerate() {
            for addr in &site.listen {
                let pos = match out.iter().position(|(a, _)| a == addr) {
                    Some(p) => p,
                    None => {
                        out.push((
                            *addr,
                            VhostTable {
                                default: i,
                                ..VhostTable::default()
                            },
                        ));
                        out.len() - 1
                    }
                };
                out[pos].1.add(i, site);
            }
        }
        for (_, t) in out.iter_mut() {
            // Stable sort keeps config order among equal lengths, so the
            // earlier site wins a tie like nginx's first definition does.
            t.leading
                .sort_by_key(|(s, _, _)| std::cmp::Reverse(s.len()));
            t.trailing.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        }
        out
    }

    fn add(&mut self, idx: usize, site: &Site) {
        for name in &site.server_names {
            let name = name.to_ascii_lowercase();
            if let Some(rest) = name.strip_prefix("*.") {
                self.leading.push((format!(".{rest}"), false, idx));
            } else if name.starts_with('.') {
                self.leading.push((name.clone(), true, idx));
            } else if let Some(rest) = name.strip_suffix(".*") {
                self.trailing.push((format!("{rest}."), idx));
            } else {
                self.exact.entry(name).or_insert(idx);
            }
        }
        if site.default_server {
            self.default = idx;
        }
    }

    /// The site for a Host header value (port and trailing dot ignored).
    pub(crate) fn select(&self, host: Option<&str>) -> usize {
        if self.exact.is_empty() && self.leading.is_empty() && self.trailing.is_empty() {
            // One site on this address (the usual case): no name to match.
            return self.default;
        }
        let Some(host) = host.map(normalize_host) else {
            return self.default;
        };
        let host: &str = &host;
        if let Some(i) = self.exact.get(host) {
            return *i;
        }
        for (suffix, also_bare, i) in &self.leading {
            if host.ends_with(suffix.as_str()) && host.len() > suffix.len() {
                return *i;
            }
            if *also_bare && host == &suffix[1..] {
                return *i;
            }
        }
        for (prefix, i) in &self.trailing {
            if host.starts_with(prefix.as_str()) && host.len() > prefix.len() {
                return *i;
            }
        }
        self.default
    }
}

/// Lowercase, without `:port` and without a trailing dot; IPv6 literals
/// keep their brackets. Borrowed when nothing needs lowering.
pub(crate) fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let no_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) => &host[..i],
            None => host,
        }
    };
    let h = no_port.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

/// Locations of one site.
#[derive(Debug, Default)]
pub(crate) struct LocationTable {
    exact: HashMap<String, usize>,
    /// Longest first.
    prefixes: Vec<(String, usize)>,
}

impl LocationTable {
    pub(crate) fn build(locations: &[Location]) -> LocationTable {
        let mut t = LocationTable::default();
        for (i, loc) in locations.iter().enumerate() {
            match loc.match_kind {
                MatchKind::Exact => {
                    t.exact.entry(loc.path.clone()).or_insert(i);
                }
                MatchKind::Prefix => t.prefixes.push((loc.path.clone(), i)),
            }
        }
        t.prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        t
    }

    /// The location index for a normalized (decoded, dot-segment free) path.
    pub(crate) fn select(&self, path: &str) -> Option<usize> {
        if !self.exact.is_empty()
            && let Some(i) = self.exact.get(path)
        {
            return Some(*i);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
            .map(|(_, i)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, names: &[&str], default: bool) -> Site {
        Site {
            server_names: names.iter().map(|s| s.to_string()).collect(),
            default_server: default,
            root: Some("/tmp".into()),
            ..Site::new(name, vec!["127.0.0.1:80".parse().expect("addr")])
        }
    }

    #[test]
    fn vhost_precedence_table() {
        let sites = vec![
            site("first", &["first.test"], false),
            site("wild", &["*.example.com"], false),
            site("exact", &["www.example.com"], false),
            site("longer", &["*.api.example.com"], false),
            site("dot", &[".dot.test"], false),
            site("tail", &["mail.*"], false),
            site("dflt", &["default.test"], true),
        ];
        let tables = VhostTable::build_all(&sites);
        let t = &tables[0].1;
        let cases = [
            (Some("www.example.com"), "exact"),
            (Some("WWW.Example.COM:8080"), "exact"),
            (Some("www.example.com."), "exact"),
            (Some("a.example.com"), "wild"),
            (Some("x.api.example.com"), "longer"),
            (Some("example.com"), "dflt"),
            (Some("dot.test"), "dot"),
            (Some("a.dot.test"), "dot"),
            (Some("mail.foo.org"), "tail"),
            (Some("first.test"), "first"),
            (Some("unknown.test"), "dflt"),
            (None, "dflt"),
        ];
        for (host, want) in cases {
            assert_eq!(sites[t.select(host)].name, want, "host {host:?}");
        }
        // Without a default_server the first site on the address wins.
        let sites2 = vec![site("a", &["a.test"], false), site("b", &["b.test"], false)];
        let t2 = VhostTable::build_all(&sites2);
        let t2 = &t2[0].1;
        assert_eq!(t2.select(Some("zzz")), 0);
        assert_eq!(t2.select(Some("b.test")), 1);
    }

    #[test]
    fn location_precedence_table() {
        let loc = |p: &str, k: MatchKind| Location {
            path: p.into(),
            match_kind: k,
            proxy: None,
            root: None,
            index: None,
        };
        let locs = vec![
            loc("/", MatchKind::Prefix),
            loc("/api/", MatchKind::Prefix),
            loc("/api/v2/", MatchKind::Prefix),
            loc("/api/", MatchKind::Exact),
            loc("/exact", MatchKind::Exact),
        ];
        let t = LocationTable::build(&locs);
        let cases = [
            ("/", Some(0)),
            ("/index.html", Some(0)),
            ("/api/", Some(3)),
            ("/api/x", Some(1)),
            ("/api/v2/y", Some(2)),
            ("/api", Some(0)),
            ("/exact", Some(4)),
            ("/exact/more", Some(0)),
        ];
        for (path, want) in cases {
            assert_eq!(t.select(path), want, "path {path}");
        }
        let t = LocationTable::build(&locs[1..2]);
        assert_eq!(t.select("/other"), None);
    }
}
