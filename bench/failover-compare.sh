#!/usr/bin/env bash
# Failover side by side: hadeploy vs the seed's stack (nginx + keepalived),
# in the same local lab (2 load balancers, 2 backends), in one run:
#   VRRPv2 advert 1 s:   hadeploy, then nginx + keepalived
#   VRRPv3 advert 0.1 s: hadeploy, then nginx + keepalived
# Each measurement is `hadeploy test-failover --json` on the same inventory
# (holders and load do not depend on the stack; for keepalived it breaks
# keepalived.service). The backends keep hadeploy's static site on :8080 in
# every run. Prints one combined table per setting. The lab is torn down at
# the end, also on failure and Ctrl-C. Run as root. See bench/README.md.
#
# Environment: LAB (lab name, default cmp), HADEPLOY (the CLI, default
# $CARGO_TARGET_DIR/debug/hadeploy or target/debug/hadeploy; it finds the
# static runtime itself), OUT (where the JSON reports go, default a new
# directory under /tmp), RATE (requests/s of the load, default 200).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD/bench/failover
LAB=${LAB:-cmp}
HADEPLOY=${HADEPLOY:-${CARGO_TARGET_DIR:-$PWD/target}/debug/hadeploy}
RATE=${RATE:-200}
OUT=${OUT:-$(mktemp -d /tmp/failover-compare.XXXXXX)}
mkdir -p "$OUT"

[ "$(id -u)" -eq 0 ] || { echo "run as root (the lab needs it)" >&2; exit 2; }
[ -x "$HADEPLOY" ] || { echo "no hadeploy CLI at $HADEPLOY (set HADEPLOY)" >&2; exit 2; }
command -v jq >/dev/null || { echo "needs jq" >&2; exit 2; }

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
state_dir=/var/lib/hadeploy/lab/$LAB
sshn() { ssh -F "$state_dir/ssh_config" "$@"; }

INV=""
LBS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    log "restoring: uninstall both stacks, lab down"
    if [ -n "$INV" ] && [ -f "$state_dir/ssh_config" ]; then
        seed_remove || true
        "$HADEPLOY" -q uninstall "$INV" >&2 || true
    fi
    "$HADEPLOY" -q lab down --name "$LAB" >&2 || true
    log "JSON reports in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- what the lab's inventory resolves to ---------------------------------
# Read from `hadeploy render --json` (the CLI's resolved model, per node a
# non-secret summary), not from the inventory YAML: LBs by priority of their
# first VRRP instance (highest first, the seed's MASTER), that instance's
# first VIP (with prefix) and VRID, and the upstream servers with weights as
# the highest-priority LB proxies to them. hadeploy never prints auth_pass:
# keepalived gets a password of this run's own (only the two keepalived
# nodes need to agree on it).
read_inventory() {
    local json
    json=$("$HADEPLOY" -q --json render "$INV")
    LBS=()
    PRIOS=()
    while read -r h p; do LBS+=("$h"); PRIOS+=("$p"); done < <(jq -r '
        map(select(.summary.instances | length > 0)) | sort_by(-.summary.instances[0].priority) |
        .[] | "\(.host) \(.summary.instances[0].priority)"' <<<"$json")
    local first='map(select(.summary.instances | length > 0)) | max_by(.summary.instances[0].priority) // empty'
    VIP=$(jq -r "$first | .summary.instances[0].addresses[0] // empty" <<<"$json")
    VRID=$(jq -r "$first | .summary.instances[0].virtual_router_id // empty" <<<"$json")
    SERVERS=$(jq -r "$first"' | .summary.upstreams[].servers[] |
        "        server \(.address) weight=\(.weight)\(if .backup then " backup" else "" end);"' <<<"$json")
    AUTH_PASS=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
    [ "${#LBS[@]}" -ge 2 ] && [ -n "$VIP" ] && [ -n "$VRID" ] && [ -n "$SERVERS" ] || {
        echo "could not read LBs/VIP/VRID/upstream from hadeploy render --json $INV" >&2
        exit 1
    }
}

# --- the seed's stack on the load balancers ------------------------------
# $1: VRRP version (2|3), $2: keepalived advert_int (1 or 0.1)
seed_install() {
    local version=$1 advert=$2 i h state keep drop
    if [ "$version" = 3 ]; then keep='#v3'; drop='#v2'; else keep='#v2'; drop='#v3'; fi
    for i in "${!LBS[@]}"; do
        h=${LBS[$i]}
        state=BACKUP
        [ "$i" -eq 0 ] && state=MASTER # the seed: MASTER on the highest priority
        sed -e "/$drop\$/d" -e "s/ *$keep\$//" \
            -e "s|@ROUTER_ID@|$h|" -e "s|@STATE@|$state|" -e "s|@VRID@|$VRID|" \
            -e "s|@PRIORITY@|${PRIOS[$i]}|" -e "s|@ADVERT@|$advert|" \
            -e "s|@AUTH_PASS@|$AUTH_PASS|" -e "s|@VIP@|$VIP|" \
            "$here/keepalived.conf" >"$OUT/keepalived-v$version-$h.conf"
        awk -v s="$SERVERS" '$0 == "@SERVERS@" { print s; next } { print }' \
            "$here/nginx.conf" >"$OUT/nginx-v$version.conf"
        sshn "$h" 'umask 077; cat > /etc/keepalived/keepalived.conf' <"$OUT/keepalived-v$version-$h.conf"
        sshn "$h" 'cat > /etc/keepalived/notify.sh; chmod 0755 /etc/keepalived/notify.sh' <"$here/notify.sh"
        sshn "$h" 'cat > /etc/nginx/nginx.conf.failover-compare' <"$OUT/nginx-v$version.conf"
        # Enabled, so they come back after the power cut step, as in the seed.
        sshn "$h" 'set -e
            [ -f /etc/nginx/nginx.conf.orig ] || cp /etc/nginx/nginx.conf /etc/nginx/nginx.conf.orig
            mv /etc/nginx/nginx.conf.failover-compare /etc/nginx/nginx.conf
            nginx -t -q
            systemctl enable -q nginx keepalived
            systemctl restart nginx keepalived'
    done
}

seed_remove() {
    local h
    for h in "${LBS[@]}"; do
        sshn "$h" 'systemctl disable -q --now keepalived nginx 2>/dev/null || true
            rm -f /etc/keepalived/keepalived.conf /etc/keepalived/notify.sh
            [ -f /etc/nginx/nginx.conf.orig ] && mv /etc/nginx/nginx.conf.orig /etc/nginx/nginx.conf
            true' || true
    done
}

# --- one setting: both stacks --------------------------------------------
# $1: VRRP version, $2: hadeploy advert interval, $3: keepalived advert_int
run_setting() {
    local version=$1 adv=$2 kadv=$3
    log "VRRPv$version advert $adv: lab $LAB, hadeploy apply"
    INV=$("$HADEPLOY" lab up --name "$LAB" --vrrp-version "$version" --advert-interval "$adv" | tail -n1)
    read_inventory
    seed_remove # from the previous setting, if any
    "$HADEPLOY" -q apply "$INV" >&2
    log "VRRPv$version: hadeploy test-failover"
    "$HADEPLOY" -q test-failover "$INV" --json --rate "$RATE" >"$OUT/hadeploy-v$version.json" ||
        log "hadeploy test-failover exit $? (a step failed, see the table)"
    log "VRRPv$version: switching the load balancers to nginx + keepalived"
    "$HADEPLOY" -q uninstall "$INV" --limit "${LAB}_lbs" >&2
    seed_install "$version" "$kadv"
    log "VRRPv$version: nginx + keepalived test-failover"
    "$HADEPLOY" -q test-failover "$INV" --json --rate "$RATE" --vrrp-unit keepalived.service \
        >"$OUT/seed-v$version.json" ||
        log "seed test-failover exit $? (a step failed, see the table)"
}

# --- the combined table ----------------------------------------------------
table() {
    local version=$1
    jq -r -n --slurpfile a "$OUT/hadeploy-v$version.json" --slurpfile b "$OUT/seed-v$version.json" '
        def cell(r): if r == null then "-" else
            (if r.outage_ms == null then "-" else "\(r.outage_ms) ms" end)
            + " | \(r.failed)/\(r.total) | \(r.verdict)" end;
        $a[0] as $h | $b[0] as $s |
        "VRRPv\($h.version), advert \($h.advert_interval_ms) ms, Master_Down_Interval \($h.master_down_interval_ms) ms, Skew_Time \($h.skew_time_ms) ms, load \(env.RATE) req/s",
        "",
        "| step | expectation | hadeploy outage | failed/total | verdict | nginx+keepalived outage | failed/total | verdict |",
        "|---|---|---|---|---|---|---|---|",
        ( ([$h.rows[].step] + [$s.rows[].step]) | reduce .[] as $x ([]; if index([$x]) then . else . + [$x] end) | .[] as $step |
          ($h.rows | map(select(.step == $step)) | first) as $x |
          ($s.rows | map(select(.step == $step)) | first) as $y |
          "| \($step) | \(($x // $y).expectation) | \(cell($x)) | \(cell($y)) |" ),
        "",
        "Notes:",
        ( $h.rows[] | select(.note != "") | "- hadeploy, \(.step): \(.note)" ),
        ( $s.rows[] | select(.note != "") | "- nginx+keepalived, \(.step): \(.note)" ),
        ( ($h.restore_errors[]? | "- hadeploy restore error: \(.)"), ($s.restore_errors[]? | "- nginx+keepalived restore error: \(.)") )
    '
}

export RATE
"$HADEPLOY" -q lab down --name "$LAB" >&2 || true # leftovers of an earlier run
run_setting 2 1s 1
run_setting 3 100ms 0.1
{
    echo "## hadeploy vs nginx + keepalived: test-failover in lab $LAB ($(date -u +%FT%TZ))"
    echo
    table 2
    echo
    table 3
} | tee "$OUT/tables.md"
