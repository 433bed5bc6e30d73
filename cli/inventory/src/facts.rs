//! What rendering needs to know about a target. `apply` gathers these over
//! SSH; `render` without a target uses the inventory's assumed facts, which
//! default to CentOS 7 (systemd 219, firewalld on).

use serde::{Deserialize, Serialize};

use crate::model::AssumedFacts;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// `ID:VERSION_ID` from /etc/os-release, e.g. `centos:7`, `debian:12`.
    pub os: String,
    pub systemd_version: u32,
    pub firewalld: bool,
}

/// systemd releases that introduced the directives of the hardened units
/// (ProtectSystem=strict and ReadWritePaths are 231-232, LockPersonality 235).
pub const HARDENED_SYSTEMD: u32 = 235;

impl Facts {
    pub fn hardened_units(&self) -> bool {
        self.systemd_version >= HARDENED_SYSTEMD
    }
}

impl From<&AssumedFacts> for Facts {
    fn from(a: &AssumedFacts) -> Self {
        Facts {
            os: a.os.clone(),
            systemd_version: a.systemd_version,
            firewalld: a.firewalld,
        }
    }
}
