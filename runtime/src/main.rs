//! `hadeploy-runtime`: what runs on each node. A thin binary: argument
//! parsing, logging and signal wiring over the library crates.
//!
//! Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error.

mod check;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "hadeploy-runtime", version, about = "hadeploy node runtime: VRRP daemon and reverse proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file, like `nginx -t` (vrrp.yaml or proxy.yaml)
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check::run(&config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hadeploy-runtime: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
