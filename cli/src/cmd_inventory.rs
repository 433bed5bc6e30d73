//! `hadeploy inventory from-vagrant`.

use std::process::{Command, ExitCode};

use anyhow::Context;
use hadeploy_inventory::vagrant::{VagrantOptions, inventory_from_ssh_config};

use crate::cli::{Global, InventoryCommand};

pub fn run(c: InventoryCommand, _g: &Global) -> anyhow::Result<ExitCode> {
    match c {
        InventoryCommand::FromVagrant { dir } => {
            let out = Command::new("vagrant")
                .arg("ssh-config")
                .current_dir(&dir)
                .output()
                .with_context(|| format!("running `vagrant ssh-config` in {}", dir.display()))?;
            if !out.status.success() {
                anyhow::bail!(
                    "`vagrant ssh-config` in {} failed (are the machines up? `vagrant up`): {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = inventory_from_ssh_config(
                &String::from_utf8_lossy(&out.stdout),
                &VagrantOptions::default(),
            )?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
