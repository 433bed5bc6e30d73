//! The proof that replaced the render-time load-back: a rendered runtime
//! config, read with the runtime's own loader, is exactly the typed value it
//! was serialized from, and passes the runtime's validation.

use std::path::Path;

use hadeploy_config::paths;
use hadeploy_inventory::render::NodeTree;

/// Asserts both runtime configs of `tree` load back equal. Messages never
/// print a config: the VRRP one holds `auth_pass`.
#[track_caller]
pub fn assert_loads_back(tree: &NodeTree) {
    let text = |path: &str| {
        let f = tree.files.iter().find(|f| f.path == path);
        f.map(|f| f.content.as_str())
    };
    let host = &tree.host;
    match (&tree.vrrp, text(paths::VRRP_CONFIG)) {
        (Some(cfg), Some(t)) => {
            let (back, _) = hadeploy_config::parse_vrrp(t, Path::new(paths::VRRP_CONFIG))
                .unwrap_or_else(|e| panic!("{host}: vrrp.yaml refused by the runtime: {e}"));
            assert!(back == *cfg, "{host}: vrrp.yaml loads back different");
        }
        (None, None) => {}
        _ => panic!("{host}: typed vrrp config and vrrp.yaml disagree on existing"),
    }
    match (&tree.proxy, text(paths::PROXY_CONFIG)) {
        (Some(cfg), Some(t)) => {
            let (back, _) = hadeploy_config::parse_proxy(t, Path::new(paths::PROXY_CONFIG))
                .unwrap_or_else(|e| panic!("{host}: proxy.yaml refused by the runtime: {e}"));
            assert_eq!(back, *cfg, "{host}: proxy.yaml loads back different");
        }
        (None, None) => {}
        _ => panic!("{host}: typed proxy config and proxy.yaml disagree on existing"),
    }
}
