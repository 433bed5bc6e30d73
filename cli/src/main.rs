//! `hadeploy`: a thin binary over the library crates. Each subcommand
//! parses its arguments and calls one library function; exit codes are
//! documented in `cli.rs`.

mod cli;
mod cmd_check;
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
