//! `hadeploy render INVENTORY [--out DIR] [--host H]`.

use std::process::ExitCode;

use anyhow::Context;
use hadeploy_inventory::summary::ShownTree;
use hadeploy_inventory::{ConfigError, render};

use crate::cli::{EXIT_FAILURE, Global, RenderArgs};
use crate::output::print_diagnostics;

pub fn run(args: &RenderArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let (inv, warnings) = match hadeploy_inventory::load(&args.inventory) {
        Ok(v) => v,
        Err(ConfigError::Invalid(diags)) => {
            print_diagnostics(&diags, g.quiet);
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
        Err(e) => return Err(e.into()),
    };
    print_diagnostics(&warnings, g.quiet);
    for h in &args.hosts {
        if !inv.hosts.contains_key(h) {
            anyhow::bail!("--host {h}: no such host in {}", args.inventory.display());
        }
    }
    let trees = render::render_all(&inv, |h| (&h.assumed).into())?;
    let trees: Vec<_> = trees
        .into_iter()
        .filter(|t| args.hosts.is_empty() || args.hosts.contains(&t.host))
        .collect();
    if let Some(show) = &args.show {
        for t in &trees {
            let f = t
                .files
                .iter()
                .find(|f| &f.path == show)
                .with_context(|| format!("{}: renders no file {show}", t.host))?;
            if f.secret {
                print!("{}", hadeploy_inventory::secret::mask_rendered(&f.content));
            } else {
                print!("{}", f.content);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(out) = &args.out {
        render::write_trees(&trees, out)
            .with_context(|| format!("writing rendered trees to {}", out.display()))?;
    }
    if g.json {
        // Each tree with its non-secret summary (VRRP instances, upstream
        // servers): the typed configs themselves hold auth_pass.
        let shown: Vec<ShownTree> = trees.iter().map(ShownTree::from).collect();
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else if !g.quiet {
        for t in &trees {
            println!(
                "{} ({}, systemd {}):",
                t.host, t.facts.os, t.facts.systemd_version
            );
            for f in &t.files {
                println!(
                    "  {:04o} {:12} {}{}",
                    f.mode,
                    f.shown_sha256().map_or("", |h| &h[..12]),
                    f.path,
                    if f.secret { " (secret)" } else { "" }
                );
            }
        }
        if let Some(out) = &args.out {
            println!("written under {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
