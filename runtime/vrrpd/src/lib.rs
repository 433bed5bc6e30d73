//! hadeploy-vrrpd: the VRRP daemon's I/O around the `hadeploy-vrrp` core
//! (keepalived's job in a hadeploy node).
//!
//! ```text
//! caller's runtime        vrrp-protocol thread (current_thread runtime)    vrrp-worker thread
//! run(): forwards   --->  supervisor: one raw socket per interface,        notify hooks (one
//! shutdown/reload         rx loop demuxing by VRID -> one driver per       queue per instance),
//!                         instance (state machine, timers, adverts);       track scripts
//!                         effect queue per instance (VIPs via netlink,
//!                         GARP via AF_PACKET); link poller (netlink)
//! ```
//!
//! Entry point: [`run`]. Observability: a [`Stats`] handle passed to `run`
//! and kept by the caller: [`Stats::status`] (per instance: state,
//! priority, master IP, VIPs held, counters) and
//! [`Stats::render_prometheus`] for `GET /metrics`.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let (cfg, _warnings) = hadeploy_config::load_vrrp("/etc/hadeploy/vrrp.yaml".as_ref())?;
//! let stats = hadeploy_vrrpd::Stats::new();
//! let (_reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
//! let (_stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>(); // SIGTERM in the binary
//! let shutdown = async { let _ = stop_rx.await; };
//! hadeploy_vrrpd::run(cfg, stats.clone(), shutdown, reload_rx).await?;
//! # Ok(()) }
//! ```

pub mod arp;
mod daemon;
mod demux;
mod driver;
mod effects;
pub mod error;
pub mod hooks;
pub mod linkwatch;
pub mod netlink;
mod params;
pub mod process;
pub mod realtime;
pub mod socket;
pub mod stats;
mod strangers;
pub mod track;
mod worker;

pub use daemon::run;
pub use error::VrrpdError;
pub use hadeploy_config::status::VrrpState;
pub use stats::{IfaceDiscard, InstanceStatus, PeerStatus, Stats, Status};
