//! `hadeploy-runtime`: what runs on each node. A thin binary: argument
//! parsing, logging, signals and the admin endpoint over the library crates
//! (`hadeploy-vrrpd`, `hadeploy-proxy`, `hadeploy-config`).
//!
//! Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error.

mod admin;
mod check;
mod logging;
mod proxy;
mod signals;
mod status;
mod vrrp;

#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hadeploy-runtime",
    version,
    about = "hadeploy node runtime: VRRP daemon and reverse proxy"
)]
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
    /// Run the VRRP daemon (keepalived's job). SIGHUP reloads, SIGTERM stops
    /// (priority 0 sent, VIPs released)
    Vrrp {
        #[arg(long, short, default_value = hadeploy_config::paths::VRRP_CONFIG)]
        config: PathBuf,
    },
    /// Run the reverse proxy and web server (nginx's job). SIGHUP reloads,
    /// SIGUSR1 reopens logs, SIGQUIT/SIGTERM drain and stop
    Proxy {
        #[arg(long, short, default_value = hadeploy_config::paths::PROXY_CONFIG)]
        config: PathBuf,
    },
    /// Ask the local daemons for their status (from their admin addresses)
    Status {
        /// Print the status document as JSON
        #[arg(long)]
        json: bool,
        /// Print one line; exit 0 only if every configured daemon answers
        /// and no VRRP instance is starting or in FAULT
        #[arg(long, conflicts_with = "json")]
        brief: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check::run(&config),
        Command::Vrrp { config } => {
            logging::init();
            vrrp::run(&config)
        }
        Command::Proxy { config } => {
            logging::init();
            proxy::run(&config)
        }
        Command::Status { json, brief } => status::run(json, brief),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hadeploy-runtime: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
