//! The command-line interface, defined once: clap derives the parser, the
//! shell completions and the man page from these types.
//!
//! Exit codes:
//!   0  success (warnings do not fail)
//!   1  the inventory, a config or an operation failed
//!   2  usage error (bad flags or arguments)

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use hadeploy_config::Unit;

pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "hadeploy",
    version,
    about = "Make a web service highly available the way nginx + keepalived do, with one native stack",
    long_about = "hadeploy reads an inventory of load balancers and backends, renders each node's \
                  configuration, installs the hadeploy runtime (VRRP daemon and reverse proxy) over \
                  SSH, and proves that the virtual IP fails over.",
    after_help = "Exit codes: 0 success, 1 failure (inventory errors, failed operations), 2 usage error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// More output (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate an inventory: syntax, unknown keys, and semantic checks
    Check(CheckArgs),
    /// Render the exact files each node will receive
    Render(RenderArgs),
    /// Install or update every node over SSH, idempotently, in rolling order
    Apply(ApplyArgs),
    /// Show units, VRRP state, VIP holders and upstream health per node
    Status(StatusArgs),
    /// Stop, disable and remove everything apply installed (VIPs released)
    Uninstall(StatusArgs),
    /// Prove failover under HTTP load: switchover, kill -9, power cut, cable
    /// pull, backend failure, split brain; prints a timed table
    TestFailover(FailoverArgs),
    /// The local lab: systemd-nspawn containers on a private bridge (root)
    #[command(subcommand)]
    Lab(LabCommand),
    /// Inventory helpers
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man page (to stdout, or into a directory)
    Man {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Inventory file (YAML)
    pub inventory: PathBuf,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Inventory file (YAML)
    pub inventory: PathBuf,
    /// Write DIR/<host>/<path> trees; without it, list files and hashes
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Only this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Print one rendered file's content, e.g. /etc/hadeploy/proxy.yaml (secrets masked)
    #[arg(long, value_name = "PATH", requires = "hosts")]
    pub show: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Accept and record host keys of hosts never seen before (accept-new);
    /// changed keys are still refused
    #[arg(long)]
    pub trust_new_host_keys: bool,
    /// Parallel hosts
    #[arg(long, default_value_t = 10)]
    pub forks: usize,
    /// Only these hosts, groups or clusters (comma separated, repeatable)
    #[arg(long)]
    pub limit: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Inventory file (YAML)
    pub inventory: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Plan only: show what would change, change nothing
    #[arg(long)]
    pub check: bool,
    /// Show a unified diff of every changed file (secrets masked)
    #[arg(long)]
    pub diff: bool,
    /// Stop and disable nginx/keepalived found on a node instead of refusing
    #[arg(long)]
    pub replace_existing: bool,
    /// Runtime binary to push (static x86_64); default: next to hadeploy
    #[arg(long, env = "HADEPLOY_RUNTIME")]
    pub runtime: Option<PathBuf>,
    /// Return once the nodes are changed and healthy. By default apply then
    /// waits (bounded by the VRRP timers: Master_Down_Interval, plus
    /// preempt_delay, plus 3 s for the election, then up to 3 s more for the
    /// sites to answer) until each VIP is held by exactly the node
    /// VRRP elects and each site answers an HTTP request through it (any
    /// status counts, and is reported), and fails otherwise
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Inventory file (YAML)
    pub inventory: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Inventory file (YAML)
    pub inventory: PathBuf,
    /// Cluster to test (default: the first)
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only steps whose name starts with this (repeatable), e.g. "planned", "split"
    #[arg(long)]
    pub only: Vec<String>,
    /// Milliseconds allowed above the RFC bound (Master_Down_Interval, Skew_Time)
    #[arg(long, default_value_t = 100)]
    pub slack_ms: u64,
    /// Requests per second sent to the VIP during the test
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    #[arg(long)]
    pub trust_new_host_keys: bool,
    /// VRRP unit to stop and kill (e.g. keepalived.service to measure the seed's stack)
    #[arg(long, default_value = Unit::Vrrp.service())]
    pub vrrp_unit: String,
    /// Backend web server unit for the backend failure step
    #[arg(long, default_value = Unit::Proxy.service())]
    pub backend_unit: String,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create (or reuse) the lab and print the path of its inventory
    #[command(
        long_about = "Create the lab (or reuse it when it is up and healthy) and write its \
                      inventory. stdout is exactly the inventory's path (with --json: the \
                      lab's description), so `inv=$(hadeploy lab up)` works; progress and \
                      messages go to stderr.\n\n\
                      The first run builds the nodes' Debian root file system with debootstrap \
                      (a few minutes) into the cache directory and reuses it afterwards; the \
                      build's raw output goes to <cache-dir>/rootfs-*.log, named when it fails."
    )]
    Up(LabArgs),
    /// Remove containers, mounts, bridge and state (safe to repeat)
    Down(LabName),
    /// Show the lab's nodes
    Status(LabName),
}

#[derive(Debug, Args)]
pub struct LabName {
    /// Lab name (1-6 lowercase letters/digits)
    #[arg(long, default_value = "hd")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(flatten)]
    pub name: LabName,
    /// Load balancers
    #[arg(long, default_value_t = 2)]
    pub lbs: usize,
    /// Backends
    #[arg(long, default_value_t = 2)]
    pub backends: usize,
    /// VRRP version of the generated inventory
    #[arg(long, default_value_t = 2)]
    pub vrrp_version: u8,
    /// Advert interval of the generated inventory (1s for v2, e.g. 100ms for v3)
    #[arg(long, default_value = "1s")]
    pub advert_interval: String,
    /// Where the root file system is built once and cached (kept by `lab down`)
    #[arg(
        long,
        value_name = "DIR",
        env = hadeploy_lab::CACHE_DIR_ENV,
        default_value = hadeploy_lab::DEFAULT_CACHE_DIR
    )]
    pub cache_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Write an inventory for the Vagrant lab from `vagrant ssh-config`
    FromVagrant {
        /// Directory holding the Vagrantfile
        #[arg(long, default_value = "vagrant")]
        dir: PathBuf,
    },
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "hadeploy", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub fn man(out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    match out {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(cmd, dir)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
