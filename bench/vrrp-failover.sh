#!/usr/bin/env bash
# VRRP failover benchmark: builds the static hadeploy-runtime (what nodes run)
# and the benchmark, then runs it as root (network namespaces need it).
# Arguments go to the benchmark: --reps N, --only 2|3, --json, --keepalived PATH.
# See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target_dir"
# Build as the invoking user so no root-owned files land in the target dir.
cargo build --release --target x86_64-unknown-linux-musl -p hadeploy-runtime
cargo build --release -p hadeploy-bench --bin vrrp-failover
runtime="$target_dir/x86_64-unknown-linux-musl/release/hadeploy-runtime"
bench="$target_dir/release/vrrp-failover"
if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$bench" --runtime "$runtime" "$@"
fi
exec "$bench" --runtime "$runtime" "$@"
