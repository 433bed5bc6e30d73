//! `hadeploy lab up | down | status`.

use std::process::ExitCode;

use anyhow::Context;
use hadeploy_lab::inventory::{INVENTORY_YAML, LabVrrp, inventory_yaml};
use hadeploy_lab::{LabSpec, Progress, default_state_dir};

use crate::cli::{EXIT_FAILURE, Global, LabCommand};

pub fn run(c: LabCommand, g: &Global) -> anyhow::Result<ExitCode> {
    match c {
        LabCommand::Up(a) => {
            let mut spec = LabSpec::new(&a.name.name);
            spec.lbs = a.lbs;
            spec.backends = a.backends;
            spec.cache_dir = std::path::absolute(&a.cache_dir)
                .with_context(|| format!("cache dir {}", a.cache_dir.display()))?;
            spec.validate()?;
            // stdout is the result only; the steps are reported on stderr.
            let progress = if g.quiet {
                Progress::hidden()
            } else {
                Progress::stderr()
            };
            let lab = hadeploy_lab::up_with(&spec, &progress)?;
            let vrrp = LabVrrp {
                version: a.vrrp_version,
                advert_interval: a.advert_interval.clone(),
            };
            let text = inventory_yaml(&lab, &vrrp).context("serializing the lab inventory")?;
            let path = lab.state_dir.join(INVENTORY_YAML);
            std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
            // The inventory must be valid: check it now, not at apply time.
            hadeploy_inventory::parse(&text, &path)
                .map_err(|e| anyhow::anyhow!("generated inventory is invalid: {e}"))?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&lab)?);
            } else {
                if g.quiet {
                    // The inventory path is the command's output, also with -q.
                    println!("{}", path.display());
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!(
                    "lab {} is up on bridge {} ({}):",
                    lab.name, lab.bridge, lab.subnet
                );
                for n in &lab.nodes {
                    eprintln!("  {:10} {:?} {}", n.name, n.role, n.address);
                }
                eprintln!(
                    "  ssh: ssh -F {} {}",
                    lab.ssh_config.display(),
                    lab.nodes.first().map_or("", |n| n.name.as_str())
                );
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down(n) => {
            let spec = LabSpec::new(&n.name);
            hadeploy_lab::down(&spec)?;
            if !g.quiet {
                eprintln!("lab {} is down", n.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status(n) => {
            let dir = default_state_dir(&n.name);
            match hadeploy_lab::status(&dir) {
                None => {
                    eprintln!("lab {} is not up", n.name);
                    Ok(ExitCode::from(EXIT_FAILURE))
                }
                Some(st) => {
                    if g.json {
                        println!("{}", serde_json::to_string_pretty(&st)?);
                    } else {
                        println!(
                            "lab {} bridge {} {}",
                            st.name,
                            st.bridge,
                            if st.bridge_present { "up" } else { "MISSING" }
                        );
                        for n in &st.nodes {
                            println!(
                                "  {:10} {:?} {} running={} link={} ssh={}",
                                n.name, n.role, n.address, n.running, n.link_up, n.ssh_reachable
                            );
                        }
                    }
                    Ok(if st.healthy() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_FAILURE)
                    })
                }
            }
        }
    }
}
