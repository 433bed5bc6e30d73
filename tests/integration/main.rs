//! One integration-test binary (like ripgrep): modules per area. Tests that
//! need root and a lab skip themselves with a message when they can't run.

mod cli;
mod runtime_check;
