//! `hadeploy apply`: connect and gather facts everywhere, render and plan
//! with the real facts, preflight every node, and only then change anything,
//! node by node in rolling order (backups first, the VIP holder last).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hadeploy_config::paths;
use hadeploy_inventory::model::{Host, Inventory};
use hadeploy_inventory::render;
use tokio::sync::Semaphore;

use crate::artifact::{self, Artifact};
use crate::diff;
use crate::error::{DeployError, RunError, Step};
use crate::execute::{self, Action};
use crate::facts::{self, RemoteFacts};
use crate::plan::{self, Change, NodePlan};
use crate::preflight;
use crate::recap::{HostOutcome, HostResult, Recap};
use crate::served;
use crate::ssh::{self, ConnectOptions, Remote};
use hadeploy_progress::HostProgress;

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub forks: usize,
    pub check: bool,
    pub diff: bool,
    pub limit: Vec<String>,
    pub trust_new_host_keys: bool,
    pub replace_existing: bool,
    pub runtime: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    /// Return once every node is changed and healthy, without waiting for
    /// the VIPs to be held and the sites to answer through them.
    pub no_wait: bool,
}

/// What `apply` found and did; printed by the CLI.
pub struct ApplyReport {
    pub recap: Recap,
    pub plans: Vec<NodePlan>,
    pub diffs: Vec<String>,
    pub preflight: Vec<String>,
}

struct Node {
    host: Host,
    remote: Remote,
    facts: RemoteFacts,
}

pub async fn apply(
    inv: &Inventory,
    opts: &ApplyOptions,
    progress: &HostProgress,
) -> Result<ApplyReport, RunError> {
    let started = Instant::now();
    let artifact = artifact::find(opts.runtime.as_deref())?;
    let hosts = RunError::select(inv, &opts.limit)?;
    let mut recap = Recap {
        runtime: Some(artifact.path.display().to_string()),
        runtime_bytes: artifact.bytes.len(),
        check_mode: opts.check,
        ..Recap::default()
    };
    // 1. Connect and gather facts, in parallel.
    let (nodes, mut results) = connect_all(inv, &hosts, opts, progress).await;
    // 2. Render with real facts, plan, preflight.
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for n in &nodes {
        progress.step(&n.host.name, &Step::Plan);
        let tree = match render::render(inv, &n.host.name, &n.facts.render_facts()) {
            Ok(t) => t,
            Err(e) => {
                problems.push(DeployError::new(&n.host.name, Step::Plan, e.to_string()));
                continue;
            }
        };
        let ctx = preflight::Context {
            tree: &tree,
            facts: &n.facts,
            artifact: &artifact,
            replace_existing: opts.replace_existing,
        };
        for p in preflight::check(&ctx) {
            problems.push(DeployError::new(
                &n.host.name,
                Step::Preflight,
                p.to_string(),
            ));
        }
        plans.push(plan::plan(tree, &n.facts, &artifact, opts.replace_existing));
    }
    for p in &problems {
        if let Some(r) = results.get_mut(&p.host) {
            r.outcome.fail(p.to_string());
        }
    }
    let mut diffs = Vec::new();
    if opts.diff {
        for (n, p) in nodes.iter().zip(&plans) {
            diffs.extend(file_diffs(&n.remote, p).await);
        }
    }
    let blocked = results
        .values()
        .any(|r| r.outcome.failed() || r.outcome.unreachable());
    if blocked || opts.check {
        for p in &plans {
            if let Some(r) = results.get_mut(&p.host) {
                r.ok += 3;
                if opts.check {
                    r.changed = p.changes();
                }
            }
        }
        if blocked {
            // Preflight failed somewhere: nothing changes anywhere.
            for r in results.values_mut() {
                if r.outcome == HostOutcome::Ok {
                    r.outcome = HostOutcome::Skipped;
                }
            }
        }
        finish(&mut recap, results, started, nodes).await;
        progress.clear();
        return Ok(ApplyReport {
            recap,
            preflight: problems.iter().map(ToString::to_string).collect(),
            plans,
            diffs,
        });
    }
    // 3. Execute in rolling lanes.
    let interrupted =
        execute_lanes(inv, &nodes, &plans, &artifact, opts, progress, &mut results).await;
    recap.interrupted = interrupted;
    // 4. Served: the VIPs held by the nodes VRRP elects, sites answering.
    let failed = results.values().any(|r| r.outcome.blocked());
    if opts.no_wait {
        recap.served_skipped = Some("--no-wait".into());
    } else if !interrupted && !failed {
        let wait = wait_served(inv, &nodes, opts, progress);
        tokio::pin!(wait);
        tokio::select! {
            checks = &mut wait => recap.served = checks,
            _ = tokio::signal::ctrl_c() => {
                recap.interrupted = true;
                recap.served_skipped = Some("interrupted (Ctrl-C) while waiting for the VIPs".into());
            }
        }
    }
    finish(&mut recap, results, started, nodes).await;
    progress.clear();
    Ok(ApplyReport {
        recap,
        plans,
        diffs,
        preflight: Vec::new(),
    })
}

/// Waits until every VIP group of the clusters this run touched is served.
/// Members outside `--limit` are asked too (read only): an election is
/// judged on all its members.
async fn wait_served(
    inv: &Inventory,
    nodes: &[Node],
    opts: &ApplyOptions,
    progress: &HostProgress,
) -> Vec<served::VipCheck> {
    let selected: Vec<String> = nodes.iter().map(|n| n.host.name.clone()).collect();
    let clusters = served::touched(inv, &selected);
    let copts = ConnectOptions {
        trust_new_host_keys: opts.trust_new_host_keys,
        timeout: opts.connect_timeout,
    };
    let others: Vec<&Host> = served::members_needed(&clusters)
        .iter()
        .filter(|h| !selected.contains(h))
        .filter_map(|h| inv.hosts.get(h))
        .collect();
    let connected = futures::future::join_all(others.iter().map(|h| ssh::connect(h, copts))).await;
    let mut extra = Vec::new();
    let mut sessions = served::Sessions::default();
    for (h, c) in others.iter().zip(connected) {
        match c {
            Ok(r) => extra.push(r),
            Err(e) => {
                sessions
                    .missing
                    .insert(h.name.clone(), format!("outside --limit, and {e}"));
            }
        }
    }
    for n in nodes {
        sessions.remotes.insert(n.host.name.clone(), &n.remote);
    }
    for r in &extra {
        sessions.remotes.insert(r.host.clone(), r);
    }
    let checks = served::wait(inv, &clusters, &sessions, progress).await;
    drop(sessions);
    for r in extra {
        r.close().await;
    }
    checks
}

async fn finish(
    recap: &mut Recap,
    results: BTreeMap<String, HostResult>,
    started: Instant,
    nodes: Vec<Node>,
) {
    for n in nodes {
        n.remote.close().await;
    }
    recap.hosts = results.into_values().collect();
    recap.elapsed_ms = started.elapsed().as_millis();
}

async fn connect_all(
    inv: &Inventory,
    hosts: &[Host],
    opts: &ApplyOptions,
    progress: &HostProgress,
) -> (Vec<Node>, BTreeMap<String, HostResult>) {
    let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
    let copts = ConnectOptions {
        trust_new_host_keys: opts.trust_new_host_keys,
        timeout: opts.connect_timeout,
    };
    let tasks = hosts.iter().map(|h| {
        let forks = forks.clone();
        async move {
            let _permit = forks.acquire().await;
            progress.step(&h.name, &Step::Connect);
            let remote = ssh::connect(h, copts).await?;
            progress.step(&h.name, &Step::Facts);
            // Watch every path any facts could make us render.
            let paths = plan::watched_paths(inv, &h.name);
            let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let facts = match facts::gather(&remote, &refs).await {
                Ok(f) => f,
                Err(e) => {
                    remote.close().await;
                    return Err(e);
                }
            };
            Ok::<_, DeployError>(Node {
                host: h.clone(),
                remote,
                facts,
            })
        }
    });
    let outcomes = futures::future::join_all(tasks).await;
    let mut nodes = Vec::new();
    let mut results = BTreeMap::new();
    for (h, o) in hosts.iter().zip(outcomes) {
        let mut r = HostResult::new(&h.name);
        match o {
            Ok(n) => {
                r.ok = 2;
                nodes.push(n);
            }
            Err(e) => {
                r.outcome = HostOutcome::from_error(&e);
                progress.done(&h.name, "unreachable");
            }
        }
        results.insert(h.name.clone(), r);
    }
    (nodes, results)
}

async fn file_diffs(remote: &Remote, p: &NodePlan) -> Vec<String> {
    let mut out = Vec::new();
    for f in p.files.iter().filter(|f| f.change != Change::Unchanged) {
        let old = if f.change == Change::Update {
            remote
                .sh(Step::Plan, r#"cat "$1""#, &[&f.file.path], None)
                .await
                .ok()
                .map(|o| o.stdout)
        } else {
            None
        };
        out.push(format!(
            "--- {}: {}\n{}",
            p.host,
            f.file.path,
            diff::unified(&f.file.path, old.as_deref(), &f.file.content, f.file.secret)
        ));
    }
    if p.binary != Change::Unchanged {
        out.push(format!(
            "--- {}: {} (binary, {} bytes)\n",
            p.host,
            paths::RUNTIME_BIN,
            p.binary_size
        ));
    }
    out
}

/// Lanes: per cluster, backends then load balancers, VIP holders last; lanes
/// run in parallel (bounded by forks), nodes within a lane one at a time,
/// each healthy before the next. A failure stops its lane.
fn lanes(inv: &Inventory, plans: &[NodePlan]) -> Vec<Vec<usize>> {
    let mut placed = vec![false; plans.len()];
    let idx = |name: &str| plans.iter().position(|p| p.host == name);
    let mut out = Vec::new();
    for c in &inv.clusters {
        let mut lane = Vec::new();
        let backends = c.backends.iter().flat_map(|b| b.hosts.iter());
        let mut lbs: Vec<usize> = c.load_balancers.iter().filter_map(|h| idx(h)).collect();
        // Backups first; among them the lowest priority first.
        lbs.sort_by_key(|&i| {
            let p = &plans[i];
            let prio = p
                .tree
                .vrrp
                .as_ref()
                .and_then(|v| v.instances.iter().map(|x| x.priority).max())
                .unwrap_or(0);
            (p.holds_vip, prio)
        });
        for i in backends.filter_map(|h| idx(h)).chain(lbs) {
            if !placed[i] {
                placed[i] = true;
                lane.push(i);
            }
        }
        if !lane.is_empty() {
            out.push(lane);
        }
    }
    out
}

async fn execute_lanes(
    inv: &Inventory,
    nodes: &[Node],
    plans: &[NodePlan],
    artifact: &Artifact,
    opts: &ApplyOptions,
    progress: &HostProgress,
    results: &mut BTreeMap<String, HostResult>,
) -> bool {
    let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
    let lane_list = lanes(inv, plans);
    // Hosts being changed right now: on Ctrl-C their recap says where.
    let running = std::sync::Mutex::new(std::collections::BTreeSet::<String>::new());
    let running = &running;
    let run = lane_list.iter().map(|lane| {
        let forks = forks.clone();
        async move {
            let mut out: Vec<(usize, Result<execute::Outcome, DeployError>)> = Vec::new();
            for &i in lane {
                if out.iter().any(|(_, r)| r.is_err()) {
                    break;
                }
                let _permit = forks.acquire().await;
                let p = &plans[i];
                let node = nodes.iter().find(|n| n.host.name == p.host);
                let Some(node) = node else { continue };
                if !p.changed() {
                    progress.done(&p.host, "ok (no changes)");
                    out.push((i, Ok(execute::Outcome { ok: 1, changed: 0 })));
                    continue;
                }
                progress.step(&p.host, &Action::Execute);
                let step = |a: Action<'_>| progress.step(&p.host, &a);
                if let Ok(mut r) = running.lock() {
                    r.insert(p.host.clone());
                }
                let r = execute::execute(
                    &node.remote,
                    p,
                    &artifact.bytes,
                    node.facts.selinux_enforcing,
                    &step,
                )
                .await;
                if let Ok(mut r) = running.lock() {
                    r.remove(&p.host);
                }
                progress.done(&p.host, if r.is_ok() { "changed" } else { "failed" });
                out.push((i, r));
            }
            out
        }
    });
    let all = futures::future::join_all(run);
    tokio::pin!(all);
    let finished = tokio::select! {
        r = &mut all => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(lane_results) = finished else {
        // Dropping the futures closes our end of the remote commands: a
        // write that did not receive all its bytes (size and sha256 are
        // checked on the node) is never renamed, and its temp file is
        // removed by the script's trap.
        let busy = running.lock().map(|r| r.clone()).unwrap_or_default();
        for (host, r) in results.iter_mut() {
            if r.outcome.error().is_some() {
                continue;
            }
            r.outcome = if busy.contains(host) {
                let step = progress
                    .current(host)
                    .unwrap_or_else(|| Action::Execute.to_string());
                HostOutcome::Failed(format!(
                    "{host}: {step}: interrupted (Ctrl-C); files are replaced atomically, rerun apply to finish"
                ))
            } else {
                HostOutcome::Skipped
            };
        }
        return true;
    };
    for (i, r) in lane_results.into_iter().flatten() {
        let res = results.entry(plans[i].host.clone()).or_default();
        match r {
            Ok(o) => {
                res.ok += o.ok + 3;
                res.changed += o.changed;
            }
            Err(e) => res.outcome = HostOutcome::Failed(e.to_string()),
        }
    }
    // Nodes never reached because their lane stopped.
    for lane in &lane_list {
        for &i in lane {
            let res = results.entry(plans[i].host.clone()).or_default();
            if res.ok <= 2 && !res.outcome.failed() {
                res.outcome = HostOutcome::Skipped;
            }
        }
    }
    false
}

/// For `--check` output: one line per change.
pub fn describe(p: &NodePlan) -> Vec<String> {
    let mut v = Vec::new();
    if p.binary != Change::Unchanged {
        v.push(format!(
            "{:?} {} ({} KiB)",
            p.binary,
            paths::RUNTIME_BIN,
            p.binary_size / 1024
        ));
    }
    for f in p.files.iter().filter(|f| f.change != Change::Unchanged) {
        v.push(format!(
            "{:?} {} ({:04o}{}{})",
            f.change,
            f.file.path,
            f.file.mode,
            if f.file.secret { ", secret" } else { "" },
            if f.validate {
                ", validated on the node"
            } else {
                ""
            }
        ));
    }
    for r in &p.remove {
        v.push(format!("Remove {r}"));
    }
    for s in &p.replace {
        v.push(format!("Stop and disable {s}"));
    }
    for h in &p.handlers {
        v.push(format!("Handler {h:?}"));
    }
    for u in &p.start {
        v.push(format!("Start {u}"));
    }
    v
}
