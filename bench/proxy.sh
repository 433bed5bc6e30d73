#!/usr/bin/env bash
# Reverse proxy benchmark: hadeploy-runtime proxy vs nginx as a reverse
# proxy, both in front of the same backend (nginx serving a 512-byte file),
# measured alternately in one run on loopback. See bench/README.md "## Proxy".
#
#   bench/proxy.sh [--rounds N] [--lat-rounds N] [--secs S] [--conns C] [--idle-conns N]
#   (env: RUNTIME=binary skips the build; SRV_CPU / GEN_CPU change pinning)
#
# Run as root (ulimit -n for 10k connections). Builds the static runtime and
# installs oha (crates.io; fixed-rate load with latency correction, i.e. no
# coordinated omission - wrk2 is not packaged) under $CARGO_TARGET_DIR.
# CPU pinning on this 2-core box: every server (backend, our proxy, nginx
# proxy) on core $SRV_CPU, every load generator on core $GEN_CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
# Latency percentiles on this 2-core box vary ~2x between runs of the same
# server (scheduling): more rounds for them than for throughput.
ROUNDS=5 LAT_ROUNDS=9 SECS=10 CONNS=32 IDLE_CONNS=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --lat-rounds) LAT_ROUNDS=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --idle-conns) IDLE_CONNS=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
SRV_CPU=${SRV_CPU:-0} GEN_CPU=${GEN_CPU:-1}
WORKERS=1 # one server core: 1 tokio worker thread, 1 nginx worker process
P_BACKEND=18080 P_OURS=18081 P_NGINX=18082

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/targets/perf}"
if [ -z "${RUNTIME:-}" ]; then # RUNTIME=path: benchmark that binary instead
    cargo build --release --target x86_64-unknown-linux-musl -p hadeploy-runtime
    RUNTIME="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/hadeploy-runtime"
fi
OHA="$CARGO_TARGET_DIR/tools/bin/oha"
[ -x "$OHA" ] || cargo install oha --locked --root "$CARGO_TARGET_DIR/tools"
[ "$(id -u)" -eq 0 ] || { echo "run as root (ulimit -n, pinning)" >&2; exit 1; }
# 10k client sockets: raise the soft fd limit as far as the hard one allows.
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=65536
ulimit -n "$NOFILE"
[ "$NOFILE" -gt $((IDLE_CONNS + 200)) ] || { echo "fd hard limit $NOFILE too low for --idle-conns $IDLE_CONNS" >&2; exit 1; }

WORK=$(mktemp -d /tmp/proxybench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the servers: backend, nginx as a proxy, ours (bench/proxy/configs.sh) --
. bench/proxy/configs.sh
mkdir -p "$WORK"/{backend,nginx,ours,www}
head -c 512 /dev/zero | tr '\0' x >"$WORK/www/index.html"
backend_conf "$WORK/backend" "$P_BACKEND" "$WORK/www"
nginx_proxy_conf "$WORK/nginx" "$P_NGINX" "$P_BACKEND" "$WORKERS" "$NOFILE"
ours_conf "$WORK/ours" "$P_OURS" "$P_BACKEND" "$WORKERS"

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "port $1 did not open" >&2
    exit 1
}
start_nginx() { # dir -> pid of the master
    taskset -c "$SRV_CPU" nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" &
    PIDS+=($!)
}
start_nginx "$WORK/backend"
wait_port $P_BACKEND
start_nginx "$WORK/nginx"
NGINX_PID=$!
wait_port $P_NGINX
RUST_LOG=warn taskset -c "$SRV_CPU" "$RUNTIME" proxy --config "$WORK/ours/proxy.yaml" \
    >"$WORK/ours/stderr.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")
wait_port $P_OURS

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
tree_rss_kb() { # a process and its children (nginx master + workers)
    local total=0 p
    for p in $1 $(pgrep -P "$1"); do total=$((total + $(rss_kb "$p"))); done
    echo $total
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

for p in $P_BACKEND $P_OURS $P_NGINX; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/")
    [ "$code" = 200 ] || { echo "port $p answered $code" >&2; exit 1; }
done
sleep 1
IDLE_OURS=$(rss_kb "$OURS_PID") IDLE_NGINX=$(tree_rss_kb "$NGINX_PID")

declare -A PORT=([direct]=$P_BACKEND [ours]=$P_OURS [nginx]=$P_NGINX)
BACKEND_PID=${PIDS[0]}
declare -A SRV_PID=([direct]=$BACKEND_PID [ours]=$OURS_PID [nginx]=$NGINX_PID)
declare -A RPS P50 P99 CPU
# CPU time (utime + stime, clock ticks) of a process and its children
# (nginx: master + worker).
ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo $total
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== throughput: wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS alternating rounds (generator on cpu $GEN_CPU, servers on cpu $SRV_CPU)"
for t in direct ours nginx; do # warm up pools and caches
    taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$t]}/" >/dev/null
done
HZ=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
    for t in direct ours nginx; do
        before=$(ticks "${SRV_PID[$t]}")
        out=$(taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:${PORT[$t]}/")
        after=$(ticks "${SRV_PID[$t]}")
        echo "$out" | grep -E "Non-2xx|Socket errors" >&2 || true
        v=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        # CPU per request of the server under test (the backend's own CPU
        # is the same for both proxies and is not counted here).
        us=$(awk -v d=$((after - before)) -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
        echo "  round $r $t: $v req/s, $us us CPU/request"
        RPS[$t]="${RPS[$t]:-} $v"
        CPU[$t]="${CPU[$t]:-} $us"
    done
done
for t in direct ours nginx; do
    RPS[$t]=$(echo "${RPS[$t]}" | tr ' ' '\n' | grep . | median)
    CPU[$t]=$(echo "${CPU[$t]}" | tr ' ' '\n' | grep . | median)
done

RATE=$(awk -v n="${RPS[nginx]}" 'BEGIN { printf "%d", n / 2 }')
echo "== latency: oha -q $RATE (50% of nginx's peak) -c$CONNS -z${SECS}s --latency-correction, $LAT_ROUNDS alternating rounds"
for t in direct ours nginx; do # warm up at the rate
    taskset -c "$GEN_CPU" "$OHA" --no-tui -q "$RATE" -c "$CONNS" -z 3s "http://127.0.0.1:${PORT[$t]}/" >/dev/null
done
declare -A P99R
for r in $(seq "$LAT_ROUNDS"); do
    for t in direct ours nginx; do
        taskset -c "$GEN_CPU" "$OHA" --no-tui --output-format json --latency-correction \
            -q "$RATE" -c "$CONNS" -z "${SECS}s" "http://127.0.0.1:${PORT[$t]}/" >"$WORK/oha.json"
        read -r p50 p99 ok < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
print(p["p50"] * 1000, p["p99"] * 1000, "ok" if set(codes) <= {"200"} else "ERR:%s" % codes)
' "$WORK/oha.json")
        echo "  round $r $t: p50 $p50 ms, p99 $p99 ms ($ok)"
        P50[$t]="${P50[$t]:-} $p50" P99[$t]="${P99[$t]:-} $p99"
        [ "$t" = ours ] && ours_p99=$p99
        [ "$t" = nginx ] && P99R[all]="${P99R[all]:-} $(awk -v a="$ours_p99" -v b="$p99" 'BEGIN { printf "%.3f", a / b }')"
    done
done
P99_RATIO=$(echo "${P99R[all]}" | tr ' ' '\n' | grep . | median)
for t in direct ours nginx; do
    P50[$t]=$(echo "${P50[$t]}" | tr ' ' '\n' | grep . | median)
    P99[$t]=$(echo "${P99[$t]}" | tr ' ' '\n' | grep . | median)
done
sleep 2
LOADED_OURS=$(rss_kb "$OURS_PID") LOADED_NGINX=$(tree_rss_kb "$NGINX_PID")

echo "== memory with $IDLE_CONNS idle keep-alive client connections"
declare -A CONN_RSS
for t in ours nginx; do
    taskset -c "$GEN_CPU" python3 bench/proxy/idle_conns.py "${PORT[$t]}" "$IDLE_CONNS" >"$WORK/idle.out" &
    IDLE_PID=$!
    PIDS+=("$IDLE_PID")
    for _ in $(seq 600); do grep -q ready "$WORK/idle.out" && break; sleep 0.1; done
    grep -q "ready $IDLE_CONNS" "$WORK/idle.out" || { echo "$t: $(cat "$WORK/idle.out")" >&2; exit 1; }
    sleep 1
    if [ "$t" = ours ]; then CONN_RSS[$t]=$(rss_kb "$OURS_PID"); else CONN_RSS[$t]=$(tree_rss_kb "$NGINX_PID"); fi
    kill "$IDLE_PID"
    wait "$IDLE_PID" 2>/dev/null || true
    sleep 1
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "== results (medians of $ROUNDS throughput / $LAT_ROUNDS latency rounds; ratio = ours / nginx)"
printf '%-26s %12s %12s %12s %8s\n' "" "backend" "ours" "nginx" "ratio"
printf '%-26s %12.0f %12.0f %12.0f %8s\n' "req/s (wrk -c$CONNS)" "${RPS[direct]}" "${RPS[ours]}" "${RPS[nginx]}" "$(ratio "${RPS[ours]}" "${RPS[nginx]}")"
printf '%-26s %12.2f %12.2f %12.2f %8s\n' "CPU us/request (server)" "${CPU[direct]}" "${CPU[ours]}" "${CPU[nginx]}" "$(ratio "${CPU[ours]}" "${CPU[nginx]}")"
printf '%-26s %12.3f %12.3f %12.3f %8s\n' "p50 ms @ $RATE req/s" "${P50[direct]}" "${P50[ours]}" "${P50[nginx]}" "$(ratio "${P50[ours]}" "${P50[nginx]}")"
printf '%-26s %12.3f %12.3f %12.3f %8s\n' "p99 ms @ $RATE req/s" "${P99[direct]}" "${P99[ours]}" "${P99[nginx]}" "$(ratio "${P99[ours]}" "${P99[nginx]}")"
printf '%-26s %12s %12s %12s %8s\n' "p99 ratio, median of rounds" "-" "-" "-" "$P99_RATIO"
printf '%-26s %12s %12s %12s %8s\n' "RSS MB idle (fresh)" "-" "$(mb "$IDLE_OURS")" "$(mb "$IDLE_NGINX")" "$(ratio "$IDLE_OURS" "$IDLE_NGINX")"
printf '%-26s %12s %12s %12s %8s\n' "RSS MB idle after load" "-" "$(mb "$LOADED_OURS")" "$(mb "$LOADED_NGINX")" "$(ratio "$LOADED_OURS" "$LOADED_NGINX")"
printf '%-26s %12s %12s %12s %8s\n' "RSS MB, $IDLE_CONNS idle conns" "-" "$(mb "${CONN_RSS[ours]}")" "$(mb "${CONN_RSS[nginx]}")" "$(ratio "${CONN_RSS[ours]}" "${CONN_RSS[nginx]}")"
echo "(nginx RSS = master + $WORKERS worker(s); ours = one process, $WORKERS worker thread(s); both log combined to a 64 KiB buffer flushed every second)"
