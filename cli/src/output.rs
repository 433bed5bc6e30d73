//! Logging setup and diagnostic printing shared by subcommands.

use hadeploy_config::Diagnostic;

pub fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HADEPLOY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Prints diagnostics to stderr, one per line, `file:line:col: severity: path: message`.
pub fn print_diagnostics(diags: &[Diagnostic], quiet: bool) {
    for d in diags {
        if quiet && !d.is_error() {
            continue;
        }
        eprintln!("{d}");
    }
}
