#!/usr/bin/env bash
# False takeovers under load (issue 10): VRRPv3 at 20 ms adverts
# (Master_Down_Interval 69 ms on the backup) while the master's proxy is
# saturated through the VIP (wrk from the lab's client namespace). The
# master stays healthy the whole time, so every transition of the backup to
# MASTER is a false takeover. Measured with the protocol thread's realtime
# scheduling off, then on (inventory key `vrrp_realtime.enabled`), in one
# lab, one after the other, same load.
#
# Usage: bench/vrrp-load-takeover.sh [MINUTES]    (per mode; default 10)
# Environment: LAB (lab name, default hdv), CONNS (wrk connections, 128),
#   THREADS (wrk threads, 2), MODES ("off on"), KEEP_LAB=1 (do not tear the
#   lab down), CARGO_TARGET_DIR.
# Needs root, wrk, systemd-nspawn (the local lab). Builds what it needs.
# Prints one line per mode and the ratio; exits 0 whenever it could measure.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
LAB=${LAB:-hdv}
CONNS=${CONNS:-128}
THREADS=${THREADS:-2}
MODES=${MODES:-off on}
target=${CARGO_TARGET_DIR:-$PWD/target}

[ "$(id -u)" -eq 0 ] || { echo "run as root (the lab needs it)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

log "building the CLI and the static runtime (release)"
cargo build --release --locked -q -p hadeploy
cargo build --release --locked -q --target x86_64-unknown-linux-musl -p hadeploy-runtime
hd="$target/release/hadeploy"

state_dir=/var/lib/hadeploy/lab/$LAB
if [ -e "$state_dir/lab.json" ]; then
    # Its VRRP daemons would be restarted and the lab taken down at the end:
    # not this script's call for a lab someone else brought up.
    echo "lab $LAB is up; take it down first or choose another: LAB=name $0" >&2
    exit 2
fi
sshn() { ssh -F "$state_dir/ssh_config" "$@"; }
work=$(mktemp -d /tmp/vrrp-load-takeover.XXXXXX)
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ "${KEEP_LAB:-0}" != 1 ]; then
        log "lab down"
        "$hd" -q lab down --name "$LAB" >&2 || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

log "lab up $LAB (VRRPv3, advert 20ms)"
inv=$("$hd" -q lab up --name "$LAB" --vrrp-version 3 --advert-interval 20ms)
lb1=$LAB-lb1
lb2=$LAB-lb2
vip=$(grep -m1 -oP '^\s+address: \K[0-9.]+(?=/[0-9]+$)' "$inv")
[ -n "$vip" ] || { echo "no VIP in $inv" >&2; exit 1; }

# The lab's client namespace (what `hadeploy test-failover` uses; `lab down`
# removes it): <lab>-client on the lab bridge, address .250.
client=$LAB-client
if ! ip netns list | grep -qw "$client"; then
    bridge=${LAB}br0 # cli/lab spec.rs bridge_name
    ip link show "$bridge" >/dev/null || { echo "no lab bridge $bridge" >&2; exit 1; }
    net=${vip%.*}
    ip netns add "$client"
    ip link add "vc-$LAB" type veth peer name eth0 netns "$client"
    ip link set "vc-$LAB" master "$bridge" up
    ip -n "$client" addr add "$net.250/24" dev eth0
    ip -n "$client" link set eth0 up
    ip -n "$client" link set lo up
fi

# One metric of a node's VRRP daemon (admin endpoint on the node's loopback).
metric() { # host, metric line prefix
    sshn "$1" "exec 3<>/dev/tcp/127.0.0.1/9101 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" |
        awk -v k="$2" 'index($0, k) == 1 { print $NF; found = 1 } END { if (!found) print "?" }'
}
to_master() { metric "$1" 'hadeploy_vrrp_transitions_total{instance="VI_1",to="MASTER"}'; }

results=()
for mode in $MODES; do
    case "$mode" in
        on) enabled=true ;;
        off) enabled=false ;;
        *) echo "MODES: off and/or on, not $mode" >&2; exit 2 ;;
    esac
    modeinv=$work/inventory-$mode.yaml
    # The cluster-level key, right under the cluster's load_balancers line.
    sed -E "s/^(\s+)load_balancers: (.*)$/\1load_balancers: \2\n\1vrrp_realtime: { enabled: $enabled }/" "$inv" >"$modeinv"
    grep -q "vrrp_realtime: { enabled: $enabled }" "$modeinv" || { echo "could not set vrrp_realtime in $modeinv" >&2; exit 1; }
    log "mode $mode: apply"
    "$hd" -q apply "$modeinv" >&2
    # A restart of the daemons takes effect only on a changed config: make sure.
    for h in "$lb1" "$lb2"; do sshn "$h" systemctl restart hadeploy-vrrp.service; done
    log "mode $mode: waiting for $lb1 to hold the VIP"
    for _ in $(seq 100); do
        [ "$(metric "$lb1" 'hadeploy_vrrp_state{instance="VI_1",state="MASTER"}')" = 1 ] &&
            [ "$(metric "$lb2" 'hadeploy_vrrp_state{instance="VI_1",state="BACKUP"}')" = 1 ] && break
        sleep 0.2
    done
    rt1=$(metric "$lb1" hadeploy_vrrp_realtime_priority)
    rt2=$(metric "$lb2" hadeploy_vrrp_realtime_priority)
    sleep 2
    before=$(to_master "$lb2")
    master_before=$(metric "$lb1" 'hadeploy_vrrp_transitions_total{instance="VI_1",to="BACKUP"}')
    log "mode $mode: wrk -t$THREADS -c$CONNS -d${minutes}m http://$vip/ (SCHED_RR priority: $lb1 $rt1, $lb2 $rt2)"
    out=$(ip netns exec "$client" wrk -t"$THREADS" -c"$CONNS" -d"${minutes}m" --timeout 2s "http://$vip/" 2>&1 || true)
    after=$(to_master "$lb2")
    master_after=$(metric "$lb1" 'hadeploy_vrrp_transitions_total{instance="VI_1",to="BACKUP"}')
    rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
    errs=$(printf '%s\n' "$out" | awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }')
    false_takeovers=$((after - before))
    stepdowns=$((master_after - master_before))
    per10=$(awk -v n="$false_takeovers" -v m="$minutes" 'BEGIN { printf "%.1f", n * 10 / m }')
    results+=("$(printf '%-4s %8s %10s %8s %13s %14s   rt prio %s/%s %s' \
        "$mode" "$minutes" "${rps:-?}" "$false_takeovers" "$stepdowns" "$per10" "$rt1" "$rt2" "$errs")")
    log "mode $mode: $false_takeovers false takeovers in $minutes min (${rps:-?} req/s)"
    sleep 2
done

echo "VRRPv3 advert 20 ms, wrk -t$THREADS -c$CONNS through the VIP $vip, $minutes min per mode (lab $LAB)"
echo "mode  minutes      req/s  backup->MASTER  master->BACKUP  per 10 min   (target: 0 with realtime on)"
printf '%s\n' "${results[@]}"
