//! `vrrp-failover`: VIP failover time, memory and CPU of `hadeploy-runtime
//! vrrp` beside Debian's keepalived, in private network namespaces.
//! A benchmark, not a test: it reports PASS/MISS per target and exits 0
//! unless it could not measure. See bench/README.md.

mod bench;
mod daemon;
mod monitor;
mod netns;
mod report;
mod resources;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;

use bench::Stop;
use daemon::{Binaries, Impl, Proto};
use report::{Report, Series};

#[derive(Debug, Parser)]
#[command(
    name = "vrrp-failover",
    about = "VRRP failover benchmark: hadeploy-runtime vs keepalived (root)"
)]
struct Args {
    /// The static `hadeploy-runtime` binary to measure
    #[arg(long)]
    runtime: PathBuf,
    #[arg(long, default_value = "/usr/sbin/keepalived")]
    keepalived: PathBuf,
    /// Failovers per daemon, setting and stop kind
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Only this VRRP setting (2 = v2 advert 1 s, 3 = v3 advert 0.1 s)
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    only: Option<u8>,
    /// Seconds as master before reading RSS
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Seconds over which CPU use is sampled
    #[arg(long, default_value_t = 20)]
    cpu_secs: u64,
    /// Print the results as JSON instead of the table (progress goes to stderr)
    #[arg(long)]
    json: bool,
}

const V2: Proto = Proto {
    version: 2,
    advert_ms: 1000,
};
const V3: Proto = Proto {
    version: 3,
    advert_ms: 100,
};

fn environment(args: &Args) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let ka = std::process::Command::new(&args.keepalived)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stderr).into_owned()
                + &String::from_utf8_lossy(&o.stdout);
            text.lines().next().unwrap_or_default().to_string()
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "VRRP failover benchmark: {} reps; {} vs {ka}; Linux {}, {cpus} CPUs",
        args.reps,
        args.runtime.display(),
        kernel.trim()
    )
}

fn run(args: &Args) -> Result<Report> {
    daemon::check_binary(&args.runtime)?;
    daemon::check_binary(&args.keepalived)?;
    let bin = Binaries {
        runtime: args.runtime.clone(),
        keepalived: args.keepalived.clone(),
    };
    let lab = netns::Lab::new()?;
    let mon = monitor::Monitor::start(&lab)?;
    let protos: Vec<Proto> = [V2, V3]
        .into_iter()
        .filter(|p| args.only.is_none_or(|v| v == p.version))
        .collect();
    let mut failover = Vec::new();
    for &proto in &protos {
        for stop in [Stop::Kill, Stop::Term] {
            let mut series = [Impl::Ours, Impl::Keepalived].map(|daemon| Series {
                daemon,
                proto,
                stop,
                samples: Vec::new(),
                failed: 0,
            });
            for rep in 0..args.reps {
                // Alternate who goes first so drift (other load on the
                // machine) hits both daemons alike.
                let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
                let phase = Duration::from_millis(proto.advert_ms * rep as u64 / args.reps as u64);
                for i in order {
                    let s = &mut series[i];
                    match bench::failover(&lab, &mon, s.daemon, proto, stop, &bin, phase) {
                        Ok(sample) => {
                            eprintln!(
                                "{} {:?} {} rep {}: {:.1} ms from signal, {:.1} ms from wire",
                                report::setting(proto),
                                stop,
                                s.daemon.name(),
                                rep + 1,
                                sample.from_signal,
                                sample.from_wire.unwrap_or(f64::NAN)
                            );
                            s.samples.push(sample);
                        }
                        Err(e) => {
                            eprintln!(
                                "{} {:?} {} rep {} FAILED: {e:#}",
                                report::setting(proto),
                                stop,
                                s.daemon.name(),
                                rep + 1
                            );
                            s.failed += 1;
                        }
                    }
                }
            }
            failover.extend(series);
        }
    }
    let mut usage = Vec::new();
    for imp in [Impl::Ours, Impl::Keepalived] {
        eprintln!(
            "{}: resources ({} s idle, {} s CPU window)",
            imp.name(),
            args.idle_secs,
            args.cpu_secs
        );
        let u = bench::usage(
            &lab,
            &mon,
            imp,
            V3,
            Duration::from_secs(args.idle_secs),
            Duration::from_secs(args.cpu_secs),
            &bin,
        )?;
        usage.push((imp, u));
    }
    drop(mon);
    drop(lab);
    Ok(Report {
        environment: environment(args),
        reps: args.reps,
        failover,
        usage,
        usage_idle_secs: args.idle_secs,
        usage_window_secs: args.cpu_secs,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let go = || -> Result<Report> {
        if !hadeploy_testkit::is_root() {
            bail!("needs root (network namespaces); run bench/vrrp-failover.sh");
        }
        netns::install_signal_cleanup()?;
        run(&args)
    };
    let result = go();
    // Lab's Drop already ran; this also covers an error before Lab existed.
    netns::cleanup();
    match result {
        Ok(r) if args.json => match serde_json::to_string_pretty(&r) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(r) => {
            report::print(&r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
