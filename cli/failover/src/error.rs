//! What can go wrong in test-failover, as types; the messages are the ones
//! the report and the CLI print.

use hadeploy_deploy::DeployError;
use hadeploy_lab::LabError;

/// Why test-failover could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("no cluster {0}")]
    UnknownCluster(String),
    #[error("the inventory has no cluster")]
    NoCluster,
    #[error("the cluster has no VIP group")]
    NoVipGroup,
    #[error("the VIP group has no address")]
    NoVip,
    #[error("test-failover needs at least two load balancers in the VIP group")]
    TooFewMembers,
    #[error("the cluster has no site to send load to")]
    NoSite,
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Lab(#[from] LabError),
}

/// A node that could not be reached or broken (or repaired).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no host {0}")]
    UnknownHost(String),
    #[error("no connection to {0}")]
    NotConnected(String),
    #[error(transparent)]
    Remote(#[from] DeployError),
    #[error("needs the local lab")]
    NoLab,
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("bridge: {0}")]
    Bridge(std::io::Error),
    #[error("bridge link set dev {0} isolated failed")]
    Isolate(String),
    /// The cluster did not come back to its steady state.
    #[error("VIP holders after {secs}s: {holders:?}")]
    Unsettled { secs: u64, holders: Vec<String> },
}

/// Why the load generator did not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Netns {
        path: String,
        source: std::io::Error,
    },
    #[error("setns {name}: {source}")]
    Setns { name: String, source: nix::Error },
    /// The load thread or its runtime could not be created.
    #[error("{0}")]
    Thread(std::io::Error),
    /// The load thread ended before it said it was ready.
    #[error("{0}")]
    Gone(std::sync::mpsc::RecvError),
}

/// Why one request of the load failed (a sample's error).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("connect timeout")]
    ConnectTimeout,
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("send: {0}")]
    Send(std::io::Error),
    #[error("read: {0}")]
    Read(std::io::Error),
    #[error("request timeout")]
    Timeout,
    #[error("status {0}")]
    Status(String),
}
