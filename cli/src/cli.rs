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
