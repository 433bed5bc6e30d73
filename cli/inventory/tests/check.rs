//! Bad inventories: each test breaks one thing in a valid inventory and
//! asserts both the message and the file:line:column it points at.

use std::path::Path;

use hadeploy_inventory::render;
use hadeploy_inventory::{ConfigError, Diagnostic};

mod loadback;

/// A valid inventory, one key per line so replacements keep line numbers.
const BASE: &str = "\
all:
  hosts:
    lb1:
      address: 10.0.0.11/24
      vrrp_priority: 150
    lb2:
      address: 10.0.0.12/24
      vrrp_priority: 100
clusters:
  c:
    load_balancers: [lb1, lb2]
    vrrp:
      version: 2
      advert_interval: 1s
    vips:
      - name: V
        address: 10.0.0.100/24
        virtual_router_id: 1
        auth_pass: secret
    upstreams:
      u:
        servers:
          - address: \"10.0.0.21:80\"
            weight: 1
    sites:
      - name: s
        listen: 80
        server_names: [a.example.com]
        locations:
          - path: /
            proxy:
              upstream: u
";

fn errors(text: &str) -> Vec<Diagnostic> {
    match hadeploy_inventory::parse(text, Path::new("inv.yaml")) {
        Ok(_) => panic!("inventory was accepted:\n{text}"),
        Err(ConfigError::Invalid(d)) => d.into_iter().filter(|d| d.is_error()).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Asserts some error is at `line:col` and its message contains `fragment`.
#[track_caller]
fn assert_error(text: &str, line: usize, col: usize, fragment: &str) {
    let errs = errors(text);
    let rendered: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        errs.iter().any(|d| d.line == Some(line)
            && d.column == Some(col)
            && d.message.contains(fragment)
            && d.file.as_deref() == Some(Path::new("inv.yaml"))),
        "expected an error at {line}:{col} containing {fragment:?}, got:\n{}",
        rendered.join("\n")
    );
}

#[track_caller]
fn replaced(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "base has no {old:?}");
    BASE.replacen(old, new, 1)
}

/// The valid fixtures of this file, and variants that reach the serializer's
/// less common forms (a fixed Host header, set headers, error pages, a
/// non-default keepalive_requests, unicast, VRRPv3), render to files that
/// load back equal.
#[test]
fn valid_fixtures_load_back_equal() {
    let fixtures = [
        BASE.to_string(),
        replaced(
            "              upstream: u\n",
            "              upstream: u\n              uri: /v1/\n              host: {fixed: api.example.com}\n              set_headers: {X-Env: prod}\n",
        ),
        replaced(
            "        server_names: [a.example.com]\n",
            "        server_names: [a.example.com]\n        root: /srv/www\n        error_pages: {404: /404.html}\n        access_log: {path: /var/log/hadeploy/a.log, format: main}\n",
        ),
        replaced(
            "    upstreams:\n",
            "    limits: {keepalive_requests: 7, max_body_bytes: 0}\n    upstreams:\n",
        ),
        replaced(
            "      advert_interval: 1s\n",
            "      advert_interval: 1s\n      unicast: true\n",
        ),
        replaced("      version: 2\n", "      version: 3\n")
            .replace("        auth_pass: secret\n", "        preempt_delay: 5s\n"),
    ];
    for text in &fixtures {
        let (inv, _) = hadeploy_inventory::parse(text, Path::new("inv.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        for t in render::render_all(&inv, |h| (&h.assumed).into()).expect("renders") {
            loadback::assert_loads_back(&t);
        }
    }
}

#[test]
fn base_is_valid() {
    let (inv, warnings) = hadeploy_inventory::parse(BASE, Path::new("inv.yaml")).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(inv.clusters[0].vips[0].members.len(), 2);
}

#[test]
fn vrid_zero() {
    assert_error(
        &replaced("virtual_router_id: 1", "virtual_router_id: 0"),
        18,
        9,
        "virtual_router_id must be 1..255",
    );
}

#[test]
fn vrid_too_large() {
    assert_error(
        &replaced("virtual_router_id: 1", "virtual_router_id: 256"),
        18,
        9,
        "virtual_router_id must be 1..255, not 256",
    );
}

#[test]
fn vrid_reused_on_same_interface() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n      - name: W\n        address: 10.0.0.101/24\n        virtual_router_id: 1\n",
    );
    assert_error(
        &t,
        22,
        9,
        "virtual_router_id 1 is already used on eth0 by c/V (host `lb1`)",
    );
}

#[test]
fn vip_address_reused() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n      - name: W\n        address: 10.0.0.100/24\n        virtual_router_id: 2\n",
    );
    assert_error(&t, 21, 9, "VIP 10.0.0.100 is already managed by c/V");
}

#[test]
fn host_priority_zero() {
    assert_error(
        &replaced("vrrp_priority: 150", "vrrp_priority: 0"),
        5,
        7,
        "vrrp_priority must be 1..255, not 0",
    );
}

#[test]
fn vip_priority_out_of_range() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n        priorities: {lb1: 300}\n",
    );
    assert_error(&t, 20, 22, "priority must be 1..255, not 300");
}

#[test]
fn priority_255_only_for_owner() {
    assert_error(
        &replaced("vrrp_priority: 150", "vrrp_priority: 255"),
        5,
        7,
        "priority 255 is reserved for the owner",
    );
}

#[test]
fn priorities_must_differ() {
    assert_error(
        &replaced("vrrp_priority: 100", "vrrp_priority: 150"),
        8,
        7,
        "priority 150 of `lb2` equals that of `lb1`",
    );
}

#[test]
fn priority_for_a_host_that_is_not_a_load_balancer() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n        priorities: {lb1: 150, lbx: 10}\n",
    );
    assert_error(&t, 20, 32, "`lbx` is not a load balancer of this cluster");
}

#[test]
fn vip_equal_to_node_address() {
    assert_error(
        &replaced("address: 10.0.0.100/24", "address: 10.0.0.11/24"),
        17,
        9,
        "VIP 10.0.0.11 is the address of host `lb1`",
    );
}

#[test]
fn vip_outside_node_subnet() {
    assert_error(
        &replaced("address: 10.0.0.100/24", "address: 10.0.1.100/24"),
        17,
        9,
        "outside the subnet 10.0.0.0/24 of load balancer `lb1`",
    );
}

#[test]
fn vip_not_an_address() {
    assert_error(
        &replaced("address: 10.0.0.100/24", "address: 10.0.0.300/24"),
        17,
        9,
        "is not an IPv4 address with prefix",
    );
}

#[test]
fn pass_longer_than_8_bytes() {
    assert_error(
        &replaced("auth_pass: secret", "auth_pass: secret123456"),
        19,
        9,
        "PASS password must be 1 to 8 bytes, this one is 12",
    );
}

#[test]
fn pass_error_never_shows_the_secret() {
    let errs = errors(&replaced("auth_pass: secret", "auth_pass: secret123456"));
    assert!(errs.iter().all(|d| !d.to_string().contains("secret123456")));
}

#[test]
fn auth_with_vrrp_v3() {
    let t = replaced("      version: 2", "      version: 3");
    assert_error(&t, 19, 9, "VRRPv3 has no authentication");
}

#[test]
fn vrrp_version_4() {
    assert_error(
        &replaced("      version: 2", "      version: 4"),
        13,
        7,
        "VRRP version must be 2 or 3, not 4",
    );
}

#[test]
fn v2_interval_not_whole_seconds() {
    assert_error(
        &replaced("advert_interval: 1s", "advert_interval: 1500ms"),
        14,
        7,
        "VRRPv2 advert interval must be whole seconds",
    );
}

#[test]
fn v3_interval_below_10ms() {
    let t = replaced("      version: 2", "      version: 3")
        .replacen("advert_interval: 1s", "advert_interval: 5ms", 1)
        .replacen("        auth_pass: secret\n", "", 1);
    assert_error(
        &t,
        14,
        7,
        "VRRPv3 advert interval must be a multiple of 10ms",
    );
}

#[test]
fn interval_not_a_duration() {
    assert_error(
        &replaced("advert_interval: 1s", "advert_interval: often"),
        14,
        7,
        "`often` is not a duration",
    );
}

#[test]
fn secret_from_unset_env() {
    let t = replaced(
        "auth_pass: secret",
        "auth_pass: {env: HADEPLOY_TEST_SURELY_UNSET}",
    );
    assert_error(
        &t,
        19,
        9,
        "environment variable `HADEPLOY_TEST_SURELY_UNSET` is not set",
    );
}

#[test]
fn secret_from_missing_file() {
    let t = replaced("auth_pass: secret", "auth_pass: {file: no/such/file}");
    assert_error(&t, 19, 9, "cannot read secret file");
}

#[test]
fn upstream_weight_zero() {
    assert_error(
        &replaced("weight: 1", "weight: 0"),
        24,
        13,
        "weight must be 1..4294967295, not 0",
    );
}

#[test]
fn upstream_port_zero() {
    assert_error(
        &replaced("10.0.0.21:80", "10.0.0.21:0"),
        23,
        13,
        "port must be 1..65535",
    );
}

#[test]
fn upstream_address_is_a_name() {
    assert_error(
        &replaced("10.0.0.21:80", "backend.local:80"),
        23,
        13,
        "is not ip:port",
    );
}

#[test]
fn listen_port_out_of_range() {
    assert_error(
        &replaced("listen: 80", "listen: 70000"),
        27,
        9,
        "port must be 1..65535, not 70000",
    );
}

#[test]
fn ssh_port_out_of_range() {
    let t = replaced(
        "      vrrp_priority: 150\n",
        "      vrrp_priority: 150\n      ssh_port: 0\n",
    );
    assert_error(&t, 6, 7, "ssh_port must be 1..65535, not 0");
}

#[test]
fn same_listen_and_server_name_twice() {
    let t = format!(
        "{BASE}      - name: s2\n        listen: 80\n        server_names: [A.example.com]\n        root: /srv\n"
    );
    assert_error(
        &t,
        35,
        9,
        "`A.example.com` on 0.0.0.0:80 is already served by sites[0]",
    );
}

#[test]
fn two_default_servers_on_one_listen() {
    let t = replaced(
        "        server_names: [a.example.com]\n",
        "        server_names: [a.example.com]\n        default_server: true\n",
    ) + "      - name: s2\n        listen: 80\n        default_server: true\n        root: /srv\n";
    assert_error(
        &t,
        36,
        9,
        "0.0.0.0:80 already has a default_server: sites[0]",
    );
}

#[test]
fn location_references_unknown_upstream() {
    assert_error(
        &replaced("upstream: u\n", "upstream: uu\n"),
        32,
        15,
        "no upstream named `uu` (did you mean `u`?)",
    );
}

#[test]
fn location_path_without_slash() {
    assert_error(
        &replaced("- path: /", "- path: api"),
        30,
        13,
        "location `api` must start with /",
    );
}

#[test]
fn error_page_status_out_of_range() {
    let t = replaced(
        "        locations:\n",
        "        root: /srv\n        error_pages: {200: /x.html}\n        locations:\n",
    );
    assert_error(&t, 30, 23, "error page status must be 300..599, not 200");
}

/// A status wider than u16 gets the status rule's wording too (the site is
/// the runtime's type, which reads statuses wide), at the map's position.
#[test]
fn error_page_status_beyond_u16() {
    let t = replaced(
        "        locations:\n",
        "        root: /srv\n        error_pages: {70000: /x.html}\n        locations:\n",
    );
    assert_error(&t, 30, 22, "error page status must be 300..599, not 70000");
}

/// Site keys are the runtime's: a typo gets the runtime's key names as
/// hints, with the position in the inventory.
#[test]
fn unknown_site_key_suggests_the_runtime_key() {
    let t = replaced(
        "        locations:\n",
        "        server_name: [a]\n        locations:\n",
    );
    let e = errors(&t);
    assert!(
        e.iter().any(|d| d.line.is_some()
            && d.message
                .contains("unknown key `server_name` (did you mean `server_names`?)")),
        "{e:?}"
    );
}

#[test]
fn hook_path_not_absolute() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n        notify: {master: notify.sh master}\n",
    );
    assert_error(&t, 20, 18, "`notify.sh` must be an absolute path");
}

#[test]
fn track_script_path_not_absolute() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n        track_script:\n          - name: chk\n            script: curl -f http://127.0.0.1/\n",
    );
    assert_error(&t, 22, 13, "`curl` must be an absolute path");
}

/// keepalived's rise/fall range, the runtime's rule (`rise_fall_problem`).
#[test]
fn track_script_fall_zero() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n        track_script:\n          - name: chk\n            script: /bin/true\n            fall: 0\n",
    );
    assert_error(&t, 23, 13, "fall must be 1..2147483647, not 0");
}

/// nginx takes any positive weight and so does the runtime; the inventory
/// no longer has a bound of its own.
#[test]
fn upstream_weight_above_a_thousand_is_accepted() {
    let t = replaced("weight: 1", "weight: 5000");
    let (inv, _) = hadeploy_inventory::parse(&t, Path::new("inv.yaml")).expect("valid");
    assert_eq!(inv.clusters[0].upstreams["u"].servers[0].weight, 5000);
}

#[test]
fn unknown_key_suggests_the_right_one() {
    assert_error(
        &replaced("virtual_router_id: 1", "virtual_routr_id: 1"),
        18,
        9,
        "unknown key `virtual_routr_id` (did you mean `virtual_router_id`?)",
    );
}

#[test]
fn unknown_top_level_key() {
    assert_error(
        &replaced("clusters:", "clusterz:"),
        9,
        1,
        "unknown key `clusterz` (did you mean `clusters`?)",
    );
}

#[test]
fn wrong_type() {
    assert_error(
        &replaced("vrrp_priority: 150", "vrrp_priority: high"),
        5,
        22,
        "invalid type: string \"high\"",
    );
}

#[test]
fn yaml_syntax_error() {
    let errs = errors(&replaced("vrrp_priority: 150", "vrrp_priority: [150"));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].line.is_some(), "{}", errs[0]);
}

#[test]
fn unknown_group_for_load_balancers() {
    assert_error(
        &replaced("load_balancers: [lb1, lb2]", "load_balancers: lbs"),
        11,
        5,
        "no group named `lbs`",
    );
}

#[test]
fn unknown_host_in_list() {
    assert_error(
        &replaced("load_balancers: [lb1, lb2]", "load_balancers: [lb1, lb3]"),
        11,
        27,
        "no host named `lb3` (did you mean `lb2`?)",
    );
}

#[test]
fn interface_name_too_long() {
    let t = replaced(
        "      vrrp_priority: 150\n",
        "      vrrp_priority: 150\n      vrrp_interface: averyveryverylongname\n",
    );
    assert_error(&t, 6, 7, "is not a valid interface name");
}

#[test]
fn multicast_group_not_multicast() {
    let t = replaced(
        "      advert_interval: 1s\n",
        "      advert_interval: 1s\n      multicast_group: 10.0.0.5\n",
    );
    assert_error(&t, 15, 7, "`10.0.0.5` is not a multicast address");
}

#[test]
fn unicast_needs_addresses() {
    let t = replaced(
        "      address: 10.0.0.12/24\n",
        "      ssh_host: lb2.example.com\n",
    )
    .replacen(
        "      advert_interval: 1s\n",
        "      advert_interval: 1s\n      unicast: true\n",
        1,
    );
    assert_error(&t, 15, 7, "unicast needs the address of `lb2`");
}

#[test]
fn host_without_any_address() {
    let t = replaced("      address: 10.0.0.12/24\n", "      ssh_port: 22\n");
    assert_error(&t, 6, 5, "host `lb2` has no ssh_host (or address)");
}

#[test]
fn host_both_lb_and_backend() {
    let t = replaced(
        "    vrrp:\n",
        "    backends:\n      hosts: [lb2]\n    vrrp:\n",
    );
    assert_error(
        &t,
        13,
        7,
        "host `lb2` cannot be both a load balancer and a backend",
    );
}

#[test]
fn warnings_do_not_fail() {
    let t = replaced("load_balancers: [lb1, lb2]", "load_balancers: [lb1]");
    let (_, warnings) =
        hadeploy_inventory::parse(&t, Path::new("inv.yaml")).expect("warnings only");
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("only one load balancer"))
    );
}

#[test]
fn ansible_aliases_are_accepted() {
    let t = replaced(
        "      address: 10.0.0.11/24\n",
        "      ansible_host: 10.0.0.11\n      ansible_port: 2222\n      address: 10.0.0.11/24\n",
    );
    let (inv, _) = hadeploy_inventory::parse(&t, Path::new("inv.yaml")).expect("valid");
    assert_eq!(inv.hosts["lb1"].ssh.port, 2222);
}

#[test]
fn host_vars_override_group_vars_override_all_vars() {
    let t = "\
all:
  vars: {ssh_user: alice, ssh_port: 2200, vrrp_interface: eth9}
  children:
    lbs:
      vars: {ssh_user: bob}
      hosts:
        lb1: {address: 10.0.0.11/24, vrrp_priority: 150, ssh_user: carol}
        lb2: {address: 10.0.0.12/24, vrrp_priority: 100}
clusters:
  c:
    load_balancers: lbs
    vips: [{name: V, address: 10.0.0.100/24, virtual_router_id: 9}]
    sites: [{listen: 80, root: /srv}]
";
    let (inv, _) = hadeploy_inventory::parse(t, Path::new("inv.yaml")).expect("valid");
    assert_eq!(inv.hosts["lb1"].ssh.user, "carol");
    assert_eq!(inv.hosts["lb2"].ssh.user, "bob");
    assert_eq!(inv.hosts["lb2"].ssh.port, 2200);
    assert_eq!(inv.hosts["lb2"].vrrp_interface, "eth9");
}

#[test]
fn set_headers_cannot_touch_framing_or_break_lines() {
    let with = |extra: &str| format!("{BASE}              set_headers:\n{extra}");
    assert_error(
        &with("                Content-Length: \"5\"\n"),
        34,
        17,
        "`Content-Length` is managed by the proxy",
    );
    assert_error(
        &with("                \"X Bad\": v\n"),
        34,
        17,
        "`X Bad` is not a valid header name",
    );
    assert_error(
        &with("                X-Evil: \"a\\r\\nHost: b\"\n"),
        34,
        17,
        "contains a control character",
    );
}

fn warnings(text: &str) -> Vec<String> {
    let (_, w) = hadeploy_inventory::parse(text, Path::new("inv.yaml")).expect("valid");
    w.iter().map(ToString::to_string).collect()
}

/// Issue 10: `v3_checksum: vrrp_only` gave two silent MASTERs against FRR;
/// `hadeploy check` now warns, with the rule the runtime's check uses.
#[test]
fn vrrp_only_checksum_warns() {
    let t = replaced(
        "      version: 2\n",
        "      version: 3\n      v3_checksum: vrrp_only\n",
    )
    .replace(
        "      advert_interval: 1s\n",
        "      advert_interval: 20ms\n",
    )
    .replace("        auth_pass: secret\n", "");
    let w = warnings(&t);
    assert!(
        w.iter().any(
            |w| w.starts_with("inv.yaml:14:7: warning: clusters.c.vrrp.v3_checksum: vrrp_only")
        ),
        "{w:?}"
    );
}

#[test]
fn accept_peers_must_be_addresses_and_not_members() {
    let t = replaced(
        "        virtual_router_id: 1\n",
        "        virtual_router_id: 1\n        accept_peers: [10.0.0.1, 10.0.0.12, nope]\n",
    );
    assert_error(&t, 19, 45, "`nope` is not an IPv4 address");
    let t = replaced(
        "        virtual_router_id: 1\n",
        "        virtual_router_id: 1\n        accept_peers: [10.0.0.1, 10.0.0.12]\n",
    );
    let (inv, w) = hadeploy_inventory::parse(&t, Path::new("inv.yaml")).expect("valid");
    assert!(
        w.iter().any(|w| w.message.contains("already a peer")),
        "{w:?}"
    );
    let v = &inv.clusters[0].vips[0];
    assert_eq!(
        v.accept_peers,
        ["10.0.0.1".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    assert!(!v.accept_any_peer);
}

#[test]
fn a_member_without_address_opens_the_peer_filter_with_a_warning() {
    let t = replaced(
        "      address: 10.0.0.12/24\n",
        "      ssh_host: lb2.example.com\n",
    );
    let (inv, w) = hadeploy_inventory::parse(&t, Path::new("inv.yaml")).expect("valid");
    assert!(
        w.iter()
            .any(|w| w.message.contains("address of lb2 is not known")),
        "{w:?}"
    );
    assert!(inv.clusters[0].vips[0].accept_any_peer);
    let t = t.replace(
        "        virtual_router_id: 1\n",
        "        virtual_router_id: 1\n        accept_any_peer: true\n",
    );
    let w = warnings(&t);
    assert!(!w.iter().any(|w| w.contains("not known")), "{w:?}");
}

/// Rules the runtime applies are the runtime's functions: an inventory
/// breaking one gets the runtime's message, placed in the inventory.
#[test]
fn health_check_rules_are_the_runtimes() {
    let t = replaced(
        "            weight: 1\n",
        "            weight: 1\n        health_check:\n          path: health\n",
    );
    assert_error(&t, 26, 11, "path must start with /");
}

#[test]
fn realtime_priority_out_of_range() {
    let t = replaced(
        "    load_balancers: [lb1, lb2]\n",
        "    load_balancers: [lb1, lb2]\n    vrrp_realtime:\n      priority: 0\n",
    );
    assert_error(&t, 13, 7, "SCHED_RR priority must be 1..99, not 0");
}

#[test]
fn pass_with_a_line_break_is_refused() {
    let t = replaced("auth_pass: secret", "auth_pass: \"a\\nb\"");
    assert_error(&t, 19, 9, "must not contain control characters");
}

/// `hadeploy check` and `hadeploy-runtime check` word a rule alike.
#[test]
fn inventory_and_runtime_say_the_same() {
    let t = replaced(
        "        auth_pass: secret\n",
        "        auth_pass: secret\n        notify: {master: notify.sh master}\n",
    );
    let inventory = errors(&t).remove(0).message;
    let runtime = hadeploy_config::parse_vrrp(
        "node: n\ninstances:\n  - name: V\n    interface: eth0\n    virtual_router_id: 1\n    \
         version: 2\n    priority: 100\n    advert_interval: 1s\n    peers: []\n    \
         virtual_ipaddress: [{address: 10.0.0.100/24}]\n    notify: {master: [notify.sh, master]}\n",
        Path::new("vrrp.yaml"),
    )
    .expect_err("relative hook")
    .diagnostics()[0]
        .message
        .clone();
    assert_eq!(inventory, runtime);
}
