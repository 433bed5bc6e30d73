//! hadeploy-vrrpd: the VRRP daemon's I/O around the `hadeploy-vrrp` core.
//!
//! Entry point: [`run`]. Observability: [`Stats`] ([`Stats::status`],
//! [`Stats::render_prometheus`]).

pub mod arp;
mod daemon;
mod driver;
mod effects;
pub mod error;
pub mod hooks;
pub mod linkwatch;
pub mod netlink;
mod params;
pub mod process;
pub mod socket;
pub mod stats;
pub mod track;

pub use daemon::run;
pub use error::VrrpdError;
pub use stats::{InstanceStatus, StateName, Stats, Status};
