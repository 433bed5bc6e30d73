//! One integration-test binary (like ripgrep): modules per area. Tests that
//! need root and a lab skip themselves with a message when they can't run.

mod apply;
mod cli;
mod e2e;
mod runtime_check;
