//! The typed plan: what `apply` will do on each node, computed from the
//! rendered tree and the gathered facts before anything changes. `--check`
//! prints it; `apply` executes exactly it.

use std::collections::BTreeSet;

use hadeploy_config::{Unit, paths};
use hadeploy_inventory::model::Inventory;
use hadeploy_inventory::render::{Handler, NodeTree, RenderedFile};
use serde::Serialize;

use crate::artifact::Artifact;
use crate::facts::RemoteFacts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Create,
    Update,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct FilePlan {
    pub file: RenderedFile,
    pub change: Change,
    /// Validated on the node with `hadeploy-runtime check` before it
    /// replaces the old file.
    pub validate: bool,
}

/// As the plan prints it (`--json`): the file's fields, except that a
/// secret file's sha256 is left out. It hashes the whole file, whose other
/// lines follow from the inventory, so it would let anyone holding a CI log
/// test guesses of a short `auth_pass` offline.
impl Serialize for FilePlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let f = &self.file;
        let mut st = s.serialize_struct("FilePlan", 7)?;
        st.serialize_field("path", &f.path)?;
        st.serialize_field("mode", &f.mode)?;
        st.serialize_field("secret", &f.secret)?;
        st.serialize_field("sha256", &(!f.secret).then_some(&f.sha256))?;
        st.serialize_field("handler", &f.handler)?;
        st.serialize_field("change", &self.change)?;
        st.serialize_field("validate", &self.validate)?;
        st.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    pub host: String,
    pub binary: Change,
    pub binary_size: usize,
    pub files: Vec<FilePlan>,
    /// Files installed by an earlier apply that this one no longer renders.
    pub remove: Vec<String>,
    pub handlers: BTreeSet<Handler>,
    /// Services replaced by ours (`--replace-existing`): stopped, disabled.
    pub replace: Vec<String>,
    pub units: Vec<Unit>,
    /// Units that must be started because they are not running.
    pub start: Vec<Unit>,
    /// This node holds at least one of its VIPs now.
    pub holds_vip: bool,
    #[serde(skip)]
    pub tree: NodeTree,
}

impl NodePlan {
    pub fn changed(&self) -> bool {
        self.binary != Change::Unchanged
            || self.files.iter().any(|f| f.change != Change::Unchanged)
            || !self.remove.is_empty()
            || !self.start.is_empty()
            || !self.replace.is_empty()
    }

    pub fn changes(&self) -> usize {
        usize::from(self.binary != Change::Unchanged)
            + self
                .files
                .iter()
                .filter(|f| f.change != Change::Unchanged)
                .count()
            + self.remove.len()
    }

    /// Whether `unit` is one this node runs.
    pub fn runs(&self, unit: Unit) -> bool {
        self.units.contains(&unit)
    }
}

/// Paths whose hashes facts must report for planning: every file a render
/// of `host` can write whatever the facts turn out to be, read from the
/// model, so facts are gathered before the one render that uses them.
pub fn watched_paths(inv: &Inventory, host: &str) -> Vec<String> {
    let lb = inv.lb_clusters(host).next().is_some();
    let backends: Vec<_> = inv
        .backend_clusters(host)
        .filter_map(|c| c.backends.as_ref())
        .collect();
    let units: &[Unit] = if lb {
        &Unit::ALL
    } else if backends.is_empty() {
        &[]
    } else {
        &[Unit::Proxy]
    };
    let mut v: BTreeSet<String> = units
        .iter()
        .flat_map(|u| u.files().iter().map(ToString::to_string))
        .collect();
    v.extend(
        backends
            .iter()
            .filter(|b| b.index_page)
            .map(|b| format!("{}/index.html", b.root.display())),
    );
    v.insert(paths::FIREWALLD_SERVICE.to_string());
    v.insert(paths::RUNTIME_BIN.to_string());
    v.into_iter().collect()
}

pub fn plan(
    tree: NodeTree,
    facts: &RemoteFacts,
    artifact: &Artifact,
    replace_existing: bool,
) -> NodePlan {
    let remote_hash = |p: &str| facts.hashes.get(p).cloned().flatten();
    let change_of = |p: &str, sha: &str| match remote_hash(p) {
        None => Change::Create,
        Some(h) if h == sha => Change::Unchanged,
        Some(_) => Change::Update,
    };
    let binary = change_of(paths::RUNTIME_BIN, &artifact.sha256);
    let mut handlers = BTreeSet::new();
    let files: Vec<FilePlan> = tree
        .files
        .iter()
        .map(|f| {
            let change = change_of(&f.path, &f.sha256);
            if change != Change::Unchanged {
                handlers.insert(f.handler);
            }
            FilePlan {
                validate: Unit::ALL.iter().any(|u| f.path == u.config()),
                file: f.clone(),
                change,
            }
        })
        .collect();
    if binary != Change::Unchanged {
        for &u in &tree.units {
            handlers.insert(Handler::restart(u));
        }
    }
    handlers.remove(&Handler::None);
    // A restart re-reads the config: a reload on top would be redundant.
    for u in Unit::ALL {
        if handlers.contains(&Handler::restart(u)) {
            handlers.remove(&Handler::reload(u));
        }
    }
    let rendered: BTreeSet<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    let remove: Vec<String> = facts
        .managed
        .iter()
        .filter(|p| {
            !rendered.contains(p.as_str())
                && p.as_str() != paths::RUNTIME_BIN
                && p.as_str() != paths::MANIFEST
        })
        .cloned()
        .collect();
    let start: Vec<Unit> = tree
        .units
        .iter()
        .copied()
        .filter(|u| !facts.unit_active(u.name()))
        .collect();
    let mut replace = Vec::new();
    if replace_existing {
        for &u in &tree.units {
            if facts.unit_active(u.replaces()) {
                replace.push(u.replaces().to_string());
            }
        }
    }
    let holds_vip = tree.vrrp.as_ref().is_some_and(|v| {
        v.instances
            .iter()
            .flat_map(|i| &i.virtual_ipaddress)
            .any(|vip| facts.has_addr(vip.address.addr()).is_some())
    });
    NodePlan {
        host: tree.host.clone(),
        binary,
        binary_size: artifact.bytes.len(),
        files,
        remove,
        handlers,
        replace,
        units: tree.units.clone(),
        start,
        holds_vip,
        tree,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadeploy_inventory::facts::Facts;
    use hadeploy_inventory::render;

    /// Facts are gathered with the hashes of `watched_paths`, before the
    /// render: whatever the facts, the render must write nothing else.
    #[test]
    fn watched_paths_cover_every_render() {
        for name in ["lab.yaml", "seed.yaml", "reference.yaml"] {
            let path = format!("{}/../../inventory/{name}", env!("CARGO_MANIFEST_DIR"));
            let (inv, _) = hadeploy_inventory::load(std::path::Path::new(&path)).expect(&path);
            for host in inv.hosts.keys() {
                let watched = watched_paths(&inv, host);
                assert!(watched.iter().any(|p| p == paths::RUNTIME_BIN));
                for (os, systemd_version) in [("centos:7", 219), ("debian:12", 252)] {
                    for firewalld in [false, true] {
                        let facts = Facts {
                            os: os.into(),
                            systemd_version,
                            firewalld,
                        };
                        let tree = render::render(&inv, host, &facts).expect("render");
                        for f in &tree.files {
                            assert!(
                                watched.contains(&f.path),
                                "{name}: {host}: {} is rendered but not watched",
                                f.path
                            );
                        }
                    }
                }
            }
        }
    }

    fn file(secret: bool) -> FilePlan {
        FilePlan {
            file: RenderedFile {
                path: "/etc/hadeploy/vrrp.yaml".into(),
                mode: 0o600,
                secret,
                content: "auth_pass: \"pw\"\n".into(),
                sha256: "ab12".into(),
                handler: Handler::ReloadVrrp,
            },
            change: Change::Update,
            validate: true,
        }
    }

    #[test]
    fn a_secret_file_has_no_hash_in_the_printed_plan() {
        let v = serde_json::to_value(file(true)).expect("json");
        assert_eq!(v["sha256"], serde_json::Value::Null, "{v}");
        assert_eq!(v["path"], "/etc/hadeploy/vrrp.yaml");
        assert_eq!(v["change"], "update");
        assert_eq!(v["secret"], true);
        assert!(!v.to_string().contains("pw"), "{v}");
        let v = serde_json::to_value(file(false)).expect("json");
        assert_eq!(v["sha256"], "ab12", "{v}");
        assert_eq!(v["handler"], "reload_vrrp");
    }
}
