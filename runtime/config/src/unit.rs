//! The systemd units hadeploy installs on a node, as a type: each knows its
//! service name, unit file, config file, template and the stock service it
//! takes over from, so no other crate spells these out.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::paths;

/// One of the runtime's two daemons, as a systemd unit. Plans and JSON
/// write it as its service name (`hadeploy-vrrp.service`), as they always have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// `hadeploy-runtime vrrp`: keepalived's job.
    Vrrp,
    /// `hadeploy-runtime proxy`: nginx's job.
    Proxy,
}

impl Unit {
    /// In the order a node's units are listed (and enabled).
    pub const ALL: [Unit; 2] = [Unit::Vrrp, Unit::Proxy];

    /// Its short word in progress lines (`restart vrrp`); JSON and plans
    /// use [`Unit::service`].
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Vrrp => "vrrp",
            Unit::Proxy => "proxy",
        }
    }

    /// The systemd service name, e.g. `hadeploy-vrrp.service`.
    pub fn service(self) -> &'static str {
        match self {
            Unit::Vrrp => concat!(crate::vrrp_unit!(), ".service"),
            Unit::Proxy => concat!(crate::proxy_unit!(), ".service"),
        }
    }

    /// The service name without `.service` (journalctl -u, facts).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Vrrp => crate::vrrp_unit!(),
            Unit::Proxy => crate::proxy_unit!(),
        }
    }

    /// Where its unit file is installed.
    pub fn unit_file(self) -> &'static str {
        match self {
            Unit::Vrrp => concat!("/etc/systemd/system/", crate::vrrp_unit!(), ".service"),
            Unit::Proxy => concat!("/etc/systemd/system/", crate::proxy_unit!(), ".service"),
        }
    }

    /// The template its unit file is rendered from.
    pub fn template(self) -> &'static str {
        match self {
            Unit::Vrrp => concat!("systemd/", crate::vrrp_unit!(), ".service.j2"),
            Unit::Proxy => concat!("systemd/", crate::proxy_unit!(), ".service.j2"),
        }
    }

    /// The config file the daemon reads.
    pub fn config(self) -> &'static str {
        match self {
            Unit::Vrrp => paths::VRRP_CONFIG,
            Unit::Proxy => paths::PROXY_CONFIG,
        }
    }

    /// The stock service it replaces (`--replace-existing` stops it).
    pub fn replaces(self) -> &'static str {
        match self {
            Unit::Vrrp => "keepalived",
            Unit::Proxy => "nginx",
        }
    }

    /// Every file installed for this unit whatever the inventory says;
    /// files rendered only for some inventories (logrotate) included, so a
    /// caller watching these misses none.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Unit::Vrrp => &[
                paths::VRRP_CONFIG,
                concat!("/etc/systemd/system/", crate::vrrp_unit!(), ".service"),
                paths::NOTIFY_HOOK,
                paths::SYSCTL,
            ],
            Unit::Proxy => &[
                paths::PROXY_CONFIG,
                concat!("/etc/systemd/system/", crate::proxy_unit!(), ".service"),
                paths::TMPFILES,
                paths::LOGROTATE,
            ],
        }
    }

    /// The unit a service name names (with or without `.service`), if ours.
    pub fn from_service(name: &str) -> Option<Unit> {
        let name = name.strip_suffix(".service").unwrap_or(name);
        Unit::ALL.into_iter().find(|u| u.name() == name)
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.service())
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.service())
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Unit::from_service(&name)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown unit `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree() {
        for u in Unit::ALL {
            assert_eq!(u.service(), format!("{}.service", u.name()));
            assert_eq!(
                u.unit_file(),
                format!("/etc/systemd/system/{}", u.service())
            );
            assert_eq!(u.template(), format!("systemd/{}.j2", u.service()));
            assert_eq!(u.files()[0], u.config());
            assert_eq!(u.files()[1], u.unit_file());
            assert_eq!(Unit::from_service(u.service()), Some(u));
            assert_eq!(Unit::from_service(u.name()), Some(u));
            let json = serde_json::to_string(&u).expect("json");
            assert_eq!(json, format!("\"{}\"", u.service()));
            assert_eq!(serde_json::from_str::<Unit>(&json).expect("back"), u);
        }
        assert_eq!(Unit::from_service("nginx.service"), None);
        assert_eq!(Unit::Vrrp.replaces(), "keepalived");
        assert_eq!(
            serde_json::to_string(&Unit::ALL).expect("json"),
            r#"["hadeploy-vrrp.service","hadeploy-proxy.service"]"#
        );
        assert!(serde_json::from_str::<Unit>(r#""nginx.service""#).is_err());
    }
}
