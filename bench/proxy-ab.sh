#!/usr/bin/env bash
# A/B of several hadeploy-runtime binaries against nginx as a reverse proxy,
# in one run, alternating: req/s (wrk) and CPU time per request of each
# server. For comparing builds while working on the proxy; bench/proxy.sh
# is the full benchmark (latency, memory).
#
#   bench/proxy-ab.sh [--rounds N] [--secs S] BINARY [BINARY...]
#
# Same setup as bench/proxy.sh: one backend (nginx, 512-byte file), every
# server pinned to CPU $SRV_CPU with one worker, wrk -t1 -c32 on $GEN_CPU.
# Run as root. Loopback only; everything started is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=5 SECS=5 CONNS=32
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--rounds N] [--secs S] BINARY..." >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root (pinning)" >&2; exit 1; }
SRV_CPU=${SRV_CPU:-0} GEN_CPU=${GEN_CPU:-1}
P_BACKEND=18180 P_NGINX=18181 P_FIRST=18190

WORK=$(mktemp -d /tmp/proxyab.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. bench/proxy/configs.sh
mkdir -p "$WORK"/{backend,nginx,www}
head -c 512 /dev/zero | tr '\0' x >"$WORK/www/index.html"
backend_conf "$WORK/backend" "$P_BACKEND" "$WORK/www"
nginx_proxy_conf "$WORK/nginx" "$P_NGINX" "$P_BACKEND" 1 4196
taskset -c "$SRV_CPU" nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf" -e "$WORK/backend/error.log" &
PIDS+=($!)
taskset -c "$SRV_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NAMES=(nginx) PORTS=("$P_NGINX") SPID=("$NGINX_PID")
i=0
for b in "$@"; do
    port=$((P_FIRST + i))
    mkdir -p "$WORK/b$i"
    ours_conf "$WORK/b$i" "$port" "$P_BACKEND" 1
    RUST_LOG=warn taskset -c "$SRV_CPU" "$b" proxy --config "$WORK/b$i/proxy.yaml" >"$WORK/b$i/stderr.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("b$i") PORTS+=("$port") SPID+=($!)
    echo "b$i = $b"
    i=$((i + 1))
done
for p in "$P_BACKEND" "${PORTS[@]}"; do
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.05; done
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/")" = 200 ] || { echo "port $p not serving" >&2; exit 1; }
done

ticks() { local t=0 p; for p in $1 $(pgrep -P "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
HZ=$(getconf CLK_TCK)
declare -A RPS CPU
for k in "${!NAMES[@]}"; do taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${PORTS[$k]}/" >/dev/null; done
for r in $(seq "$ROUNDS"); do
    line="round $r:"
    for k in "${!NAMES[@]}"; do
        before=$(ticks "${SPID[$k]}")
        out=$(taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:${PORTS[$k]}/")
        after=$(ticks "${SPID[$k]}")
        echo "$out" | grep -E "Non-2xx|Socket errors" >&2 || true
        v=$(echo "$out" | awk '/^Requests\/sec/ {printf "%d", $2}')
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        us=$(awk -v d=$((after - before)) -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
        RPS[$k]="${RPS[$k]:-} $v" CPU[$k]="${CPU[$k]:-} $us"
        line="$line ${NAMES[$k]} $v req/s $us us;"
    done
    echo "$line"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mr=$(echo "${RPS[0]}" | median) mc=$(echo "${CPU[0]}" | median)
echo "== medians of $ROUNDS rounds (ratio to nginx)"
for k in "${!NAMES[@]}"; do
    r=$(echo "${RPS[$k]}" | median) c=$(echo "${CPU[$k]}" | median)
    printf '%-6s %8s req/s (%s)  %6s us CPU/request (%s)\n' "${NAMES[$k]}" "$r" \
        "$(awk -v a="$r" -v b="$mr" 'BEGIN { printf "%.3f", a / b }')" "$c" \
        "$(awk -v a="$c" -v b="$mc" 'BEGIN { printf "%.3f", a / b }')"
done
