//! Group and host variable precedence, as Ansible users expect it:
//!
//! 1. `all.vars` (lowest)
//! 2. group `vars`, parents before children; groups at the same depth in
//!    name order
//! 3. host entries (`all.hosts.H`, then each group's `hosts.H` in the same
//!    order as 2), later entries winning key by key (highest).
//!
//! Cluster and VIP-group settings (`vips[].priorities`) override host
//! variables for that cluster only.

use std::collections::BTreeMap;

use hadeploy_config::Diagnostic;

use crate::raw::{HostVars, RawGroup};

/// A group flattened: its path in the file, depth and member hosts.
#[derive(Debug)]
pub struct FlatGroup<'a> {
    pub name: String,
    pub path: String,
    pub depth: usize,
    pub group: &'a RawGroup,
}

/// Walks `all` and its children; reports cycles and duplicate group names
/// with different contents.
pub fn flatten<'a>(all: &'a RawGroup, diags: &mut Vec<Diagnostic>) -> Vec<FlatGroup<'a>> {
    let mut out = Vec::new();
    walk("all", "all", 0, all, &mut out, diags);
    // Stable precedence order: depth, then name.
    out.sort_by(|a, b| a.depth.cmp(&b.depth).then(a.name.cmp(&b.name)));
    out
}

fn walk<'a>(
    name: &str,
    path: &str,
    depth: usize,
    group: &'a RawGroup,
    out: &mut Vec<FlatGroup<'a>>,
    diags: &mut Vec<Diagnostic>,
) {
    if out.iter().any(|g| g.name == name) {
        diags.push(Diagnostic::error(
            path,
            format!("group `{name}` is defined twice; define it once and list it under several parents only by reference"),
        ));
        return;
    }
    out.push(FlatGroup {
        name: name.to_string(),
        path: path.to_string(),
        depth,
        group,
    });
    for (child, g) in &group.children {
        if let Some(g) = g {
            walk(
                child,
                &format!("{path}.children.{child}"),
                depth + 1,
                g,
                out,
                diags,
            );
        }
    }
}

/// Members of a group, including those of its children.
pub fn members(groups: &[FlatGroup<'_>], name: &str) -> Option<Vec<String>> {
    let g = groups.iter().find(|g| g.name == name)?;
    let mut hosts: Vec<String> = g.group.hosts.keys().cloned().collect();
    for child in g.group.children.keys() {
        if let Some(m) = members(groups, child) {
            hosts.extend(m);
        }
    }
    hosts.sort();
    hosts.dedup();
    Some(hosts)
}

/// Merged variables of every host, with the path of the place that set each
/// host's `ssh_host` etc. kept coarse: the host entry path wins for errors.
pub struct Merged {
    pub vars: HostVars,
    /// Where the host is (first) declared, for diagnostics.
    pub path: String,
}

pub fn merge_hosts(groups: &[FlatGroup<'_>]) -> BTreeMap<String, Merged> {
    let mut hosts: BTreeMap<String, Merged> = BTreeMap::new();
    // Group vars apply to the group's members (including children's).
    let mut group_layers: BTreeMap<String, HostVars> = BTreeMap::new();
    for g in groups {
        let Some(members) = members(groups, &g.name) else {
            continue;
        };
        for h in members {
            let layer = group_layers.entry(h).or_default();
            overlay(layer, &g.group.vars);
        }
    }
    for g in groups {
        for (h, vars) in &g.group.hosts {
            let entry = hosts.entry(h.clone()).or_insert_with(|| Merged {
                vars: group_layers.get(h).cloned().unwrap_or_default(),
                path: format!("{}.hosts.{h}", g.path),
            });
            if let Some(v) = vars {
                overlay(&mut entry.vars, v);
            }
        }
    }
    hosts
}

/// `top` wins key by key.
fn overlay(base: &mut HostVars, top: &HostVars) {
    macro_rules! take {
        ($($f:ident),*) => { $( if top.$f.is_some() { base.$f = top.$f.clone(); } )* };
    }
    take!(
        ssh_host,
        ssh_port,
        ssh_user,
        ssh_key,
        ssh_jump,
        ssh_known_hosts,
        become_root,
        address,
        vrrp_interface,
        vrrp_priority,
        os,
        systemd_version,
        firewalld
    );
}
