//! hadeploy-lab: a local lab of real hosts on one Linux machine.
//!
//! Each node is a systemd-nspawn container (systemd as PID 1, sshd, its own network
//! namespace) on an overlay of a cached Debian root file system, attached to a bridge the
//! lab creates and never connects to anything else. The API brings a lab up and down
//! idempotently and offers failure primitives (power cut, cable pull, power on) for
//! failover tests. Everything here is synchronous and must run as root.

mod boot;
mod cgroup;
mod cmd;
mod down;
mod error;
mod exec;
mod guard;
mod host;
pub mod inventory;
mod lab;
mod mirror;
mod mounts;
mod net;
mod node;
mod power;
mod procs;
mod rootfs;
mod spec;
mod sshkeys;
mod status;
mod up;

pub use boot::FailedUnit;
pub use cgroup::LAB_CGROUP;
pub use down::{down, down_dir};
pub use error::{LabError, Result};
pub use exec::ExecOutput;
pub use guard::LabGuard;
pub use hadeploy_progress::{Progress, ProgressMode};
pub use host::ensure_host_packages;
pub use lab::{ClientNetns, LAB_JSON, Lab};
pub use mirror::host_debian_mirror;
pub use node::{MASKED_UNITS, Node};
pub use rootfs::{
    BASE_PACKAGES, COMPARISON_PACKAGES, ROOTFS_DIR, ensure_rootfs, ensure_rootfs_with,
    rootfs_log_path, rootfs_path, rootfs_ready,
};
pub use spec::{
    CACHE_DIR_ENV, DEFAULT_CACHE_DIR, LabSpec, MAX_BACKENDS, MAX_NAME_LEN, MAX_PER_ROLE, MAX_VIPS,
    Role, STATE_ROOT, backend_name, bridge_name, client_link_name, client_netns_name,
    default_cache_dir, default_state_dir, host_link_name, is_node_of, lb_name,
    preferred_subnet_index,
};
pub use status::{LabStatus, NodeStatus, status};
pub use up::{up, up_with};
