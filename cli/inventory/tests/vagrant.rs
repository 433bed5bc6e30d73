//! `hadeploy inventory from-vagrant`: `vagrant ssh-config` output in, an
//! inventory that loads and renders out.

use std::path::{Path, PathBuf};

use hadeploy_inventory::model::Inventory;
use hadeploy_inventory::vagrant::{
    VagrantError, VagrantOptions, inventory_from_ssh_config, parse_ssh_config,
};

/// One host block as vagrant prints it (its template leaves a blank line
/// before each IdentityFile; the last two lines are from newer vagrants).
fn block(name: &str, host: &str, port: u16, key: &str) -> String {
    format!(
        "Host {name}
  HostName {host}
  User vagrant
  Port {port}
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no

  IdentityFile {key}
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

"
    )
}

const DIR: &str = "/home/alice/hadeploy/vagrant/.vagrant/machines";
const NAMES: [&str; 4] = ["lb1", "lb2", "web1", "web2"];

/// VirtualBox: sshd forwarded to 127.0.0.1:2222..2225.
fn virtualbox() -> String {
    NAMES
        .iter()
        .zip(2222u16..)
        .map(|(n, port)| {
            block(
                n,
                "127.0.0.1",
                port,
                &format!("{DIR}/{n}/virtualbox/private_key"),
            )
        })
        .collect()
}

/// libvirt: the management network's address, port 22.
fn libvirt() -> String {
    NAMES
        .iter()
        .zip([45, 112, 7, 201])
        .map(|(n, last)| {
            block(
                n,
                &format!("192.168.121.{last}"),
                22,
                &format!("{DIR}/{n}/libvirt/private_key"),
            )
        })
        .collect()
}

/// Generates, loads (no errors, no warnings) and renders every node.
#[track_caller]
fn load(ssh_config: &str) -> (String, Inventory) {
    let text = inventory_from_ssh_config(ssh_config, &VagrantOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (inv, diags) = hadeploy_inventory::parse(&text, Path::new("inventory/vagrant.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(diags.is_empty(), "warnings: {diags:?}\n{text}");
    let trees = hadeploy_inventory::render::render_all(&inv, |h| (&h.assumed).into())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut rendered: Vec<&str> = trees.iter().map(|t| t.host.as_str()).collect();
    rendered.sort_unstable();
    assert_eq!(rendered, NAMES);
    (text, inv)
}

#[track_caller]
fn assert_host(inv: &Inventory, name: &str, host: &str, port: u16, key: &str, address: &str) {
    let h = &inv.hosts[name];
    assert_eq!(h.ssh.host, host, "{name}");
    assert_eq!(h.ssh.port, port, "{name}");
    assert_eq!(h.ssh.user, "vagrant", "{name}");
    assert!(h.ssh.become_root, "{name}");
    assert_eq!(h.ssh.key.as_deref(), Some(Path::new(key)), "{name}");
    assert_eq!(h.address.map(|a| a.to_string()).as_deref(), Some(address));
    assert!(h.prefix_known, "{name}");
    assert_eq!(h.vrrp_interface, "eth1", "{name}");
}

#[track_caller]
fn assert_cluster(inv: &Inventory) {
    assert_eq!(inv.clusters.len(), 1);
    let c = &inv.clusters[0];
    assert_eq!(c.name, "vagrant");
    assert_eq!(c.load_balancers, ["lb1", "lb2"]);
    let b = c.backends.as_ref().expect("backends managed");
    assert_eq!(b.hosts, ["web1", "web2"]);
    assert_eq!(b.port, 8080);
    assert_eq!(c.vips.len(), 1);
    let vip = &c.vips[0];
    assert_eq!(vip.vrid, 66);
    assert_eq!(vip.addresses[0].to_string(), "192.168.56.100/24");
    assert_eq!(vip.label.as_deref(), Some("eth1:1"));
    assert_eq!(inv.hosts["lb1"].vrrp_priority, Some(150));
    assert_eq!(inv.hosts["lb2"].vrrp_priority, Some(100));
    assert_eq!(c.sites.len(), 1);
}

#[test]
fn virtualbox_ssh_config() {
    let (text, inv) = load(&virtualbox());
    assert_eq!(inv.hosts.len(), 4);
    for ((name, port), last) in NAMES.iter().zip(2222u16..).zip([11, 12, 21, 22]) {
        assert_host(
            &inv,
            name,
            "127.0.0.1",
            port,
            &format!("{DIR}/{name}/virtualbox/private_key"),
            &format!("192.168.56.{last}/24"),
        );
    }
    assert_cluster(&inv);
    assert!(text.contains("--trust-new-host-keys"), "{text}");
    let servers: Vec<_> = inv.clusters[0].upstreams["backend"]
        .servers
        .iter()
        .map(|s| (s.address.to_string(), s.weight))
        .collect();
    assert_eq!(
        servers,
        [
            ("192.168.56.21:8080".to_string(), 5),
            ("192.168.56.22:8080".to_string(), 1)
        ]
    );
    assert!(text.contains("listen: 80"), "{text}");
}

/// Regression: values were written into the YAML text unescaped, so a key
/// path or password with `: `, ` #` or a quote changed the document or
/// did not load. Now each one loads back as it was given.
#[test]
fn values_that_need_quoting_round_trip() {
    let odd = "/home/al'ice/My \"Projects\"/ha: deploy #1";
    let text = virtualbox().replace(
        &format!("IdentityFile {DIR}/lb2/"),
        &format!("IdentityFile {odd}/lb2/"),
    );
    let opts = VagrantOptions {
        auth_pass: "p: #'\"x".into(),
        ..VagrantOptions::default()
    };
    let out = inventory_from_ssh_config(&text, &opts).unwrap_or_else(|e| panic!("{e}"));
    let (inv, diags) = hadeploy_inventory::parse(&out, Path::new("v.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(diags.is_empty(), "{diags:?}\n{out}");
    assert_eq!(
        inv.hosts["lb2"].ssh.key,
        Some(PathBuf::from(format!("{odd}/lb2/virtualbox/private_key"))),
        "{out}"
    );
    let pass = inv.clusters[0].vips[0]
        .auth_pass
        .as_ref()
        .expect("auth_pass");
    assert_eq!(pass.expose(), "p: #'\"x", "{out}");
    hadeploy_inventory::render::render_all(&inv, |h| (&h.assumed).into())
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
}

#[test]
fn libvirt_ssh_config() {
    let (_, inv) = load(&libvirt());
    for ((name, last_mgmt), last) in NAMES.iter().zip([45, 112, 7, 201]).zip([11, 12, 21, 22]) {
        assert_host(
            &inv,
            name,
            &format!("192.168.121.{last_mgmt}"),
            22,
            &format!("{DIR}/{name}/libvirt/private_key"),
            &format!("192.168.56.{last}/24"),
        );
    }
    assert_cluster(&inv);
}

#[test]
fn identity_file_quoted_or_with_spaces() {
    let spaced = "/home/alice/My Projects/ha: deploy #1/vagrant/.vagrant/machines";
    let text = virtualbox()
        .replace(
            &format!("IdentityFile {DIR}/lb1/"),
            &format!("IdentityFile \"{spaced}/lb1/"),
        )
        .replace("lb1/virtualbox/private_key", "lb1/virtualbox/private_key\"")
        .replace(
            &format!("IdentityFile {DIR}/lb2/"),
            &format!("IdentityFile {spaced}/lb2/"),
        );
    assert!(text.contains("private_key\"\n"), "{text}");
    let (_, inv) = load(&text);
    assert_eq!(
        inv.hosts["lb1"].ssh.key,
        Some(PathBuf::from(format!(
            "{spaced}/lb1/virtualbox/private_key"
        )))
    );
    assert_eq!(
        inv.hosts["lb2"].ssh.key,
        Some(PathBuf::from(format!(
            "{spaced}/lb2/virtualbox/private_key"
        )))
    );
}

#[test]
fn ssh_config_syntax_variants() {
    // `Key=value`, lower-case keywords, CRLF, comments, noise before the
    // first Host, a second IdentityFile (the first wins).
    let text = "\
==> vagrant: some notice\r
# comment\r
host lb1\r
  hostname=127.0.0.1\r
  user = root\r
  port 2200\r
  identityfile \"/k/lb1\"\r
  IdentityFile /home/alice/.vagrant.d/insecure_private_key\r
";
    let hosts = parse_ssh_config(text).expect("parses");
    assert_eq!(hosts.len(), 1);
    let h = &hosts[0];
    assert_eq!(
        (
            h.name.as_str(),
            h.host_name.as_str(),
            h.port,
            h.user.as_str()
        ),
        ("lb1", "127.0.0.1", 2200, "root")
    );
    assert_eq!(h.identity_file.as_deref(), Some("/k/lb1"));
}

#[test]
fn root_user_needs_no_become() {
    let text = virtualbox().replace("User vagrant", "User root");
    let out = inventory_from_ssh_config(&text, &VagrantOptions::default()).expect("generates");
    assert!(!out.contains("become_root"), "{out}");
    let (inv, _) = hadeploy_inventory::parse(&out, Path::new("v.yaml")).expect("loads");
    assert!(
        inv.hosts
            .values()
            .all(|h| !h.ssh.become_root && h.ssh.user == "root")
    );
}

#[test]
fn options_change_interface_and_roles() {
    let opts = VagrantOptions {
        vrrp_interface: "enp0s8".into(),
        lb_prefix: "edge".into(),
        backend_prefix: "app".into(),
        addresses: [("edge-a", 11), ("edge-b", 12), ("app-a", 21)]
            .into_iter()
            .map(|(n, last)| {
                (
                    n.to_string(),
                    format!("192.168.56.{last}/24").parse().expect("net"),
                )
            })
            .collect(),
        ..VagrantOptions::default()
    };
    let text: String = ["edge-a", "edge-b", "app-a"]
        .iter()
        .zip(2222u16..)
        .map(|(n, p)| block(n, "127.0.0.1", p, &format!("/k/{n}")))
        .collect();
    let out = inventory_from_ssh_config(&text, &opts).expect("generates");
    let (inv, _) = hadeploy_inventory::parse(&out, Path::new("v.yaml")).expect("loads");
    assert_eq!(inv.clusters[0].load_balancers, ["edge-a", "edge-b"]);
    assert!(inv.hosts.values().all(|h| h.vrrp_interface == "enp0s8"));
    assert_eq!(inv.clusters[0].vips[0].label.as_deref(), Some("enp0s8:1"));
    hadeploy_inventory::render::render_all(&inv, |h| (&h.assumed).into()).expect("renders");
}

#[track_caller]
fn err(text: &str) -> VagrantError {
    match inventory_from_ssh_config(text, &VagrantOptions::default()) {
        Ok(out) => panic!("accepted:\n{out}"),
        Err(e) => e,
    }
}

#[test]
fn no_hosts() {
    assert!(matches!(err(""), VagrantError::NoHosts));
    assert!(matches!(err("\n# nothing\n"), VagrantError::NoHosts));
}

#[test]
fn missing_hostname_or_port() {
    let e = err(&virtualbox().replacen("  HostName 127.0.0.1\n", "", 2));
    assert!(
        matches!(&e, VagrantError::MissingField { host, field: "HostName", line: 1 } if host == "lb1"),
        "{e:?}"
    );
    let e = err(&virtualbox().replace("  Port 2224\n", ""));
    assert!(
        matches!(&e, VagrantError::MissingField { host, field: "Port", .. } if host == "web1"),
        "{e:?}"
    );
    assert!(e.to_string().contains("web1"), "{e}");
}

#[test]
fn bad_port() {
    for bad in ["0", "65536", "ssh", ""] {
        let e = err(&virtualbox().replace("Port 2223", &format!("Port {bad}")));
        assert!(
            matches!(e, VagrantError::InvalidValue { field: "Port", .. }),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn proxy_command_is_refused() {
    let text = libvirt().replace(
        "  LogLevel FATAL\n",
        "  LogLevel FATAL\n  ProxyCommand ssh 'kvm.example.com' -l 'me' -i '/k' nc %h %p\n",
    );
    assert!(matches!(err(&text), VagrantError::ProxyCommand { host, .. } if host == "lb1"));
}

#[test]
fn duplicate_host() {
    let text = format!("{}{}", virtualbox(), block("lb1", "127.0.0.1", 2226, "/k"));
    assert!(matches!(err(&text), VagrantError::DuplicateHost { host, .. } if host == "lb1"));
}

#[test]
fn roles_and_addresses() {
    // Only load balancers up.
    let vb = virtualbox();
    let web1 = vb.find("Host web1").expect("web1 block");
    let (lbs, webs) = vb.split_at(web1);
    assert!(matches!(err(lbs), VagrantError::NoBackends(p) if p == "web"));
    assert!(matches!(err(webs), VagrantError::NoLoadBalancers(p) if p == "lb"));
    // A single-machine Vagrantfile's `default`.
    let one = block("default", "127.0.0.1", 2222, "/k");
    assert!(matches!(err(&one), VagrantError::NoAddress(n) if n == "default"));
    // A machine with an address but no role.
    let mut opts = VagrantOptions::default();
    opts.addresses
        .push(("client".into(), "192.168.56.30/24".parse().expect("net")));
    let text = format!(
        "{}{}",
        virtualbox(),
        block("client", "127.0.0.1", 2226, "/k")
    );
    assert!(matches!(
        inventory_from_ssh_config(&text, &opts),
        Err(VagrantError::UnknownRole { host, .. }) if host == "client"
    ));
    // A name the inventory cannot hold.
    let text = virtualbox().replace("Host web2", "Host \"web 2\"");
    assert!(matches!(err(&text), VagrantError::InvalidHostName(n) if n == "web 2"));
}

#[test]
fn inconsistent_options_are_caught_before_returning() {
    let opts = VagrantOptions {
        vip: "10.9.9.100/24".parse().expect("net"),
        ..VagrantOptions::default()
    };
    match inventory_from_ssh_config(&virtualbox(), &opts) {
        Err(VagrantError::Generated(e)) => assert!(!e.diagnostics().is_empty()),
        other => panic!("{other:?}"),
    }
}

/// Every raw type serializes to what the loader reads back as the same
/// value: the repository's inventories (secrets by reference, notify
/// hooks, track scripts, unicast peers...) and a generated one are a fixed
/// point of parse -> serialize, and the serialized text resolves to the
/// same model.
#[test]
fn raw_inventories_round_trip_through_serde() {
    use hadeploy_inventory::generated;
    use hadeploy_inventory::raw::RawInventory;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory");
    let generated_text =
        inventory_from_ssh_config(&virtualbox(), &VagrantOptions::default()).expect("generates");
    let mut texts = vec![("vagrant".to_string(), generated_text)];
    for name in ["lab.yaml", "reference.yaml", "seed.yaml"] {
        let path = root.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        texts.push((name.to_string(), text));
    }
    for (name, text) in texts {
        let path = root.join("round-trip.yaml");
        let raw: RawInventory =
            hadeploy_config::parse_yaml(&text, &path).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let once = generated::to_yaml("", &raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back: RawInventory = hadeploy_config::parse_yaml(&once, &path)
            .unwrap_or_else(|d| panic!("{name}: {d:?}\n{once}"));
        let twice = generated::to_yaml("", &back).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(once, twice, "{name}");
        // The same model as the original text (the secret files and
        // variables it refers to resolve the same way from `path`).
        let model = |t: &str| {
            hadeploy_inventory::parse(t, &path)
                .map(|(inv, _)| format!("{inv:?}"))
                .map_err(|e| e.to_string())
        };
        let original = model(&text);
        assert!(original.is_ok(), "{name}: {original:?}");
        assert_eq!(original, model(&once), "{name}\n{once}");
    }
}
