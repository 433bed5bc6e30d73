//! `hadeploy apply | status | uninstall`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use hadeploy_deploy::ssh::ConnectOptions;
use hadeploy_deploy::{ApplyOptions, apply as run_apply};
use hadeploy_inventory::ConfigError;
use hadeploy_inventory::model::Inventory;
use hadeploy_progress::HostProgress;

use crate::cli::{ApplyArgs, EXIT_FAILURE, Global, StatusArgs};
use crate::output::print_diagnostics;

pub fn load(path: &Path, g: &Global) -> anyhow::Result<Option<Inventory>> {
    match hadeploy_inventory::load(path) {
        Ok((inv, warnings)) => {
            print_diagnostics(&warnings, g.quiet);
            Ok(Some(inv))
        }
        Err(ConfigError::Invalid(d)) => {
            print_diagnostics(&d, g.quiet);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn apply(a: &ApplyArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let Some(inv) = load(&a.inventory, g)? else {
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let opts = ApplyOptions {
        forks: a.conn.forks,
        check: a.check,
        diff: a.diff,
        limit: a.conn.limit.clone(),
        trust_new_host_keys: a.conn.trust_new_host_keys,
        replace_existing: a.replace_existing,
        runtime: a.runtime.clone(),
        connect_timeout: None,
        no_wait: a.no_wait,
    };
    let hosts: Vec<String> = inv
        .limit(&opts.limit)?
        .iter()
        .map(|h| h.name.clone())
        .collect();
    let progress = HostProgress::new(
        &hosts,
        !g.json && !g.quiet && std::io::stderr().is_terminal(),
    );
    let report = runtime()?
        .block_on(run_apply(&inv, &opts, &progress))
        .map_err(anyhow::Error::msg)?;
    if g.json {
        let v = serde_json::json!({
            "recap": report.recap,
            "plans": report.plans,
            "preflight": report.preflight,
            "diffs": report.diffs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if a.check {
            for p in &report.plans {
                let lines = hadeploy_deploy::apply::describe(p);
                println!(
                    "{}: {}",
                    p.host,
                    if lines.is_empty() {
                        "no changes".to_string()
                    } else {
                        format!("{} changes", lines.len())
                    }
                );
                for l in lines {
                    println!("  {l}");
                }
            }
        }
        for d in &report.diffs {
            print!("{d}");
        }
        if !report.preflight.is_empty() {
            eprintln!("preflight failed; nothing was changed on any node:");
            for p in &report.preflight {
                eprintln!("  {p}");
            }
        }
        if let (Some(path), false) = (&report.recap.runtime, g.quiet) {
            eprintln!(
                "runtime: {path} ({} KiB)",
                report.recap.runtime_bytes / 1024
            );
        }
        print!("{}", report.recap.render());
    }
    Ok(if report.recap.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

fn copts(a: &StatusArgs) -> ConnectOptions {
    ConnectOptions {
        trust_new_host_keys: a.conn.trust_new_host_keys,
        timeout: None,
    }
}

pub fn status(a: &StatusArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let Some(inv) = load(&a.inventory, g)? else {
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let nodes = runtime()?
        .block_on(hadeploy_deploy::status::status(
            &inv,
            &a.conn.limit,
            copts(a),
            a.conn.forks,
        ))
        .map_err(anyhow::Error::msg)?;
    let holders = hadeploy_deploy::status::vip_holders(&inv, &nodes);
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "nodes": nodes, "vips": holders }))?
        );
    } else {
        print!("{}", hadeploy_deploy::status::render(&nodes));
        for (vip, h) in &holders {
            let who = match h.len() {
                0 => "NOBODY".to_string(),
                1 => h[0].clone(),
                _ => format!("{} (SPLIT BRAIN)", h.join(", ")),
            };
            println!("VIP {vip}: {who}");
        }
    }
    let ok = nodes.iter().all(|n| n.reachable && n.error.is_none())
        && holders.iter().all(|(_, h)| h.len() == 1);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

pub fn uninstall(a: &StatusArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let Some(inv) = load(&a.inventory, g)? else {
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let recap = runtime()?
        .block_on(hadeploy_deploy::uninstall::uninstall(
            &inv,
            &a.conn.limit,
            copts(a),
            a.conn.forks,
        ))
        .map_err(anyhow::Error::msg)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&recap)?);
    } else {
        print!("{}", recap.render());
    }
    Ok(if recap.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}
