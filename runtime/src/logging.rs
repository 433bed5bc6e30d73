//! Logs for journald: no timestamps or colours (journald adds its own),
//! level and target kept short. `HADEPLOY_LOG` overrides the filter.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HADEPLOY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!under_systemd);
    if under_systemd {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
