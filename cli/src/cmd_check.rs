//! `hadeploy check INVENTORY`.

use std::process::ExitCode;

use hadeploy_inventory::{ConfigError, render};

use crate::cli::{CheckArgs, EXIT_FAILURE, Global};
use crate::output::print_diagnostics;

pub fn run(args: &CheckArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let (ok, diags, summary) = match hadeploy_inventory::load(&args.inventory) {
        Ok((inv, warnings)) => {
            // Rendering is part of checking: it proves every node's files
            // pass the runtime's own loader.
            let trees = render::render_all(&inv, |h| (&h.assumed).into());
            match trees {
                Ok(trees) => {
                    let summary = format!(
                        "{}: ok: {} hosts, {} clusters, {} VIP groups, {} nodes rendered",
                        args.inventory.display(),
                        inv.hosts.len(),
                        inv.clusters.len(),
                        inv.clusters.iter().map(|c| c.vips.len()).sum::<usize>(),
                        trees.len()
                    );
                    (true, warnings, summary)
                }
                Err(e) => {
                    eprintln!("{}: error: {e}", args.inventory.display());
                    (false, warnings, String::new())
                }
            }
        }
        Err(ConfigError::Invalid(diags)) => (false, diags, String::new()),
        Err(e) => return Err(e.into()),
    };
    if g.json {
        let v = serde_json::json!({
            "inventory": args.inventory.display().to_string(),
            "ok": ok,
            "diagnostics": render::diagnostics_json(&diags),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_diagnostics(&diags, g.quiet);
        if ok && !g.quiet {
            println!("{summary}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}
