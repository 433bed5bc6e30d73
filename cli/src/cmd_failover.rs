//! `hadeploy test-failover INVENTORY`.

use std::process::ExitCode;

use hadeploy_failover::Options;

use crate::cli::{EXIT_FAILURE, FailoverArgs, Global};
use crate::cmd_apply::{load, runtime};

pub fn run(a: &FailoverArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let Some(inv) = load(&a.inventory, g)? else {
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let opts = Options {
        cluster: a.cluster.clone(),
        slack_ms: a.slack_ms,
        only: a.only.clone(),
        trust_new_host_keys: a.trust_new_host_keys,
        rate: a.rate,
        vrrp_unit: a.vrrp_unit.clone(),
        backend_unit: a.backend_unit.clone(),
    };
    let report = runtime()?
        .block_on(hadeploy_failover::run(&inv, &opts))
        .map_err(anyhow::Error::msg)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}
