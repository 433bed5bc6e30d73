//! `hadeploy`: a thin binary over the library crates. Each subcommand
//! parses its arguments and calls one library function; exit codes are
//! documented in `cli.rs`.

mod cli;
mod cmd_apply;
mod cmd_check;
mod cmd_failover;
mod cmd_inventory;
mod cmd_lab;
mod cmd_render;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    output::init_tracing(args.global.verbose, args.global.quiet);
    let result = match args.command {
        cli::Command::Check(a) => cmd_check::run(&a, &args.global),
        cli::Command::Render(a) => cmd_render::run(&a, &args.global),
        cli::Command::Apply(a) => cmd_apply::apply(&a, &args.global),
        cli::Command::Status(a) => cmd_apply::status(&a, &args.global),
        cli::Command::Uninstall(a) => cmd_apply::uninstall(&a, &args.global),
        cli::Command::TestFailover(a) => cmd_failover::run(&a, &args.global),
        cli::Command::Lab(c) => cmd_lab::run(c, &args.global),
        cli::Command::Inventory(c) => cmd_inventory::run(c, &args.global),
        cli::Command::Completions { shell } => cli::completions(shell),
        cli::Command::Man { out } => cli::man(out.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hadeploy: error: {e:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
