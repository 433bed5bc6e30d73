//! `hadeploy apply`, `status` and `uninstall` over SSH.
//!
//! Order of work, and the invariants it keeps:
//! 1. connect + facts on every selected host (parallel, `--forks`);
//! 2. render with the real facts and plan (hash comparison), preflight;
//!    any failure stops here: nothing has changed on any node;
//! 3. execute in rolling lanes: within a cluster one node at a time,
//!    backends, then backup load balancers, the VIP holder last; a node must
//!    be healthy before the next starts;
//! 4. wait until the service is served: each VIP held by exactly the node
//!    VRRP elects, each site answering through it (`served`; `--no-wait`).
//!
//! Every remote write is temp-file + fsync + rename in the target directory,
//! runtime configs are validated on the node before the rename, and temp
//! files a killed run left are removed first.

pub mod apply;
pub mod artifact;
pub mod diff;
pub mod error;
pub mod execute;
pub mod facts;
pub mod fanout;
pub mod plan;
pub mod preflight;
pub mod recap;
pub mod served;
pub mod ssh;
pub mod status;
pub mod uninstall;

pub use apply::{ApplyOptions, ApplyReport, apply};
pub use error::{DeployError, Step};
