//! One integration-test binary (like ripgrep): modules per area. Tests that
//! need root and a lab fail with the fix in the message when they cannot run.

mod apply;
mod cli;
mod e2e;
mod runtime_check;
mod runtime_proxy;
mod vagrant;
mod vrrp_wire;
