#!/usr/bin/env bash
# `hadeploy apply` timings on local labs (root): cold apply, and no-op
# re-apply ("0 changed") on a 3-node lab and a 20-node lab
# (2 load balancers + 18 backends).
# Usage: bench/apply.sh [REPS]   (builds what it needs; labs are torn down on exit)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p hadeploy
cargo build --release -q --target x86_64-unknown-linux-musl -p hadeploy-runtime
hd="$target/release/hadeploy"
labs=(bap3 bap20)
cleanup() { for l in "${labs[@]}"; do "$hd" -q lab down --name "$l" || true; done; }
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

run() { # name lbs backends
  local name=$1 lbs=$2 backends=$3 inv t0 t1 cold
  inv=$("$hd" -q lab up --name "$name" --lbs "$lbs" --backends "$backends")
  # --no-wait: the cold figure is the install itself, comparable with earlier runs; the
  # wait for the election (Master_Down_Interval, ~3.5 s at advert 1 s) is timed apart.
  t0=$(now); "$hd" -q apply --no-wait "$inv" >/dev/null; t1=$(now); cold=$(secs "$t0" "$t1")
  local noop=()
  for _ in $(seq "$reps"); do
    t0=$(now)
    out=$("$hd" apply "$inv" 2>/dev/null | tail -n 1)
    t1=$(now)
    case "$out" in *" 0 changed"*) ;; *) echo "re-apply changed something: $out" >&2; exit 1 ;; esac
    noop+=("$(secs "$t0" "$t1")")
  done
  local sorted median
  sorted=$(printf '%s\n' "${noop[@]}" | sort -n)
  median=$(printf '%s\n' "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-6s %5d %8s s %8s s   (%s)\n' "$((lbs + backends))" "$reps" "$cold" "$median" "$(echo "$sorted" | tr '\n' ' ')"
  "$hd" -q lab down --name "$name"
}

echo "nodes  reps     cold   no-op median   (no-op runs, s)   targets: 3 nodes < 1.5 s; 20 nodes < 5 s"
run bap3 2 1
run bap20 2 18
