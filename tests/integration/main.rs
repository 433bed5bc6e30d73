//! One integration-test binary (like ripgrep): modules per area. Tests that
//! need root are `#[ignore = "needs root: ..."]` (.ci/test runs them as root
//! with `-- --include-ignored`); the binaries they run come from the test kit,
//! which fails on a missing or stale build with the command that rebuilds it.

mod apply;
mod cli;
mod e2e;
mod runtime_check;
mod runtime_proxy;
mod vagrant;
mod vrrp_wire;
