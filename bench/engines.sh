#!/usr/bin/env bash
# Container start-up to a working network: wall time of `docker run --rm` /
# `podman run --rm` whose command pings a peer container (and of `true`: the
# start-up alone, also with --network none), weft (Docker driver, CNI plugin)
# beside each engine's own bridge driver, in one run, interleaved; median, p90
# and weft/bridge ratios. See bench/README.md ("Engines").
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a decimal point

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
ME=${0##*/}
P="wbench$$" # namespaces $P-dk and $P-pm, Docker plugin $P, CNI networks $P-w and $P-b
RUNS=20 ONLY=docker,podman OUT="$HERE/results/engines-latest.json"
CNI_DIR=${CNI_DIR:-/usr/lib/cni}
WEFT=${WEFT:-$HERE/../target/release/weft}
SUB_DW=10.236.0 SUB_DB=10.237.0 SUB_PW=10.238.0 SUB_PB=10.239.0 # /24s: docker/podman x weft/bridge
T=60 # seconds one `run` may take

die() { echo "$ME: error: $*" >&2; exit 1; }
log() { echo "== $*"; }
warn() { echo "$ME: warning: $*" >&2; }
usage() {
    cat <<EOF
usage: $0 [--runs N] [--only docker,podman] [--out FILE]
Times N (default $RUNS, after a warm-up), interleaved: \`docker run --rm --network NET
weftbox ping -c1 -W1 PEER\` and \`podman run --rm --network NET --rootfs ROOTFS ping ...\`,
the same with \`true\`, and \`true\` with --network none; NET: weft (Docker driver, CNI
plugin) or the engine's bridge (a second dockerd in namespace $P-dk; the CNI bridge
plugin of \$CNI_DIR, podman in namespace $P-pm). WEFT=path (default
target/release/weft). JSON in --out (default bench/results/engines-latest.json).
EOF
}
while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) RUNS=${2:?}; shift 2 ;;
        --only) ONLY=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1 || RUNS > 500)); then die "--runs must be 1..500"; fi
ENG=()
wants() { [[ " ${ENG[*]} " == *" $1 "* ]]; }
IFS=, read -r -a sel <<<"$ONLY"
for e in "${sel[@]}"; do
    case $e in docker | podman) wants "$e" || ENG+=("$e") ;; *) die "--only: docker and/or podman, not '$e'" ;; esac
done
((${#ENG[@]})) || die "--only selects nothing"

[[ $EUID -eq 0 ]] || die "must run as root (dockerd, podman, network namespaces)"
for t in python3 timeout nsenter setsid busybox ip iptables-save findmnt; do need "$t" "$t"; done
if wants docker; then need dockerd docker.io && need docker docker.io; fi
if wants podman; then need podman podman; fi
if wants podman && ! [[ -x $CNI_DIR/bridge && -x $CNI_DIR/host-local ]]; then
    die "no bridge and host-local in $CNI_DIR (containernetworking-plugins)"; fi
[[ -x $WEFT ]] || die "weft binary '$WEFT' not found; build it or pass WEFT=path"
"$WEFT" daemon --help 2>&1 | grep -q -- --docker-socket || die "$WEFT has no 'daemon --docker-socket'"
"$WEFT" cni install --help >/dev/null 2>&1 || die "$WEFT has no 'cni install'"

WORK=$(mktemp -d "/tmp/weft-engines.$P.XXXXXX")
REGISTRY="$WORK/created"
: >"$REGISTRY"
FAILED=0
WEFT_BENCH_RUN="$P.$(date +%s%N)"
export WEFT_BENCH_RUN
trap cleanup EXIT
trap 'on_signal interrupted 130' INT
trap 'on_signal terminated 143' TERM
register mounts "$WORK"    # released last: nothing may stay mounted under $WORK
cp -p "$WEFT" "$WORK/weft" # a rebuild during the run can't change what is measured
register dir "$WORK/weft"
WEFT_ORIG=$WEFT WEFT="$WORK/weft"

# Registry kinds of this script (lib.sh releases pid, netns and dir); the
# registry is released in reverse order: containers before their engine,
# engines before weft, namespaces after what runs in them.
release_more() {
    local ids
    case $1 in
        docker) # docker SOCK: remove every container and network (before dockerd stops)
            ids=$(timeout 30 docker -H "unix://$2" ps -aq 2>/dev/null) || true
            # shellcheck disable=SC2086
            [[ -z $ids ]] || timeout "$T" docker -H "unix://$2" rm -f $ids >/dev/null 2>&1 || true
            timeout 30 docker -H "unix://$2" network prune -f >/dev/null 2>&1 || true ;;
        podman) # podman DIR: remove every container; should that fail, kill what is left
            timeout "$T" "$2/pm" rm -a -f -t 0 >/dev/null 2>&1 || true
            find "$2/runroot" \( -name pidfile -o -name conmon.pid \) 2>/dev/null | while read -r f; do
                kill -KILL "$(cat "$f")" 2>/dev/null && echo "$ME: killed leftover pid $(cat "$f") ($f)" >&2
            done ;;
        cni) rm -f /var/lib/cni/results/"$2"-* ;; # podman's CNI cache for network $2
        mounts) findmnt -rn -o TARGET | grep "^$2/" | sort -r | xargs -r umount -l 2>/dev/null || true ;;
    esac
}

fw() { { iptables-save; ip6tables-save; } 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//' || true; }
FW_BEFORE=$(fw)
read -r LOAD_BEFORE _ </proc/loadavg
STAT0=$(head -1 /proc/stat) && sleep 1 && STAT1=$(head -1 /proc/stat) # other users' load, before we start

# ---------------------------------------------------------------- setup --
ROOTFS="$WORK/rootfs" # busybox: the podman rootfs and the Docker image weftbox
mkdir -p "$ROOTFS"/{bin,etc,tmp,proc,sys,dev}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for a in sh ping sleep true; do ln -s busybox "$ROOTFS/bin/$a"; done
tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .
echo '{}' >"$WORK/daemon.json" # instead of /etc/docker/daemon.json

dk() { local s=$1; shift; docker -H "unix://$s" "$@"; }
up_or_dead() { dk "$1" version || ! alive "$2"; }

# start_dockerd NAME NS ARGS...: dockerd (pid in DPID) with its own roots and
# socket $WORK/NAME/docker.sock, in namespace NS unless empty; imports weftbox.
# (nsenter --net, not ip netns exec: that remounts /sys, which hides the
# cgroup mounts, and dockerd fails with "Devices cgroup isn't mounted".)
DPID=
start_dockerd() {
    local d="$WORK/$1" ns=$2
    shift 2
    local -a pre=()
    [[ -z $ns ]] || pre=(nsenter "--net=/run/netns/$ns")
    mkdir -p "$d"
    register dir "$d/root"
    register dir "$d/x"
    DPID=$(start_bg "$d/dockerd.log" setsid "${pre[@]}" dockerd --config-file "$WORK/daemon.json" \
        --data-root "$d/root" --exec-root "$d/x" -H "unix://$d/docker.sock" --pidfile "$d/pid" "$@")
    register docker "$d/docker.sock"
    if ! wait_for 60 "dockerd $1" up_or_dead "$d/docker.sock" "$DPID" || ! alive "$DPID"; then
        tail -n 5 "$d/dockerd.log" >&2
        return 1
    fi
    dk "$d/docker.sock" import "$WORK/rootfs.tar" weftbox >/dev/null
}

# podman_setup DIR NS PLUGIN_DIR: containers.conf and DIR/pm, which runs
# podman with it and private storage (in namespace NS unless empty).
podman_setup() {
    local d=$1 ns=$2
    mkdir -p "$d"/{root,runroot,tmp,net.d}
    register dir "$d/root"
    register dir "$d/bin" # (weft's CNI plugin) only once the containers are gone
    printf '%s\n' '[containers]' 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' \
        '[network]' 'network_backend = "cni"' "cni_plugin_dirs = [\"$3\"]" "network_config_dir = \"$d/net.d\"" \
        '[engine]' 'enable_port_reservation = false' 'events_logger = "none"' >"$d/containers.conf"
    printf '#!/bin/sh\nexec env CONTAINERS_CONF=%s %s podman --root %s --runroot %s --tmpdir %s --storage-driver vfs "$@"\n' \
        "$d/containers.conf" "${ns:+nsenter --net=/run/netns/$ns}" "$d/root" "$d/runroot" "$d/tmp" >"$d/pm"
    chmod +x "$d/pm"
    register podman "$d"
}
pm_ip() { "$1/pm" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' peer; }

WS="$WORK/weft.sock" PLUG="/run/docker/plugins/$P.sock"
mkdir -p "$WORK/state" /run/docker/plugins
register dir "$PLUG"
register dir "$WORK/state"
WARGS=(daemon --socket "$WS" --state-dir "$WORK/state")
if wants docker; then WARGS+=(--docker --docker-socket "$PLUG" --docker-host "$WORK/dw/docker.sock"); fi
log "weft ${WARGS[*]} ($WEFT_ORIG)"
WPID=$(start_bg "$WORK/weft.log" setsid "$WEFT" "${WARGS[@]}")
weft_up() { [[ -S $WS ]] && { ! wants docker || [[ -S $PLUG ]]; } || ! alive "$WPID"; }
if ! wait_for 15 "weft daemon" weft_up || ! alive "$WPID"; then
    die "weft daemon did not start: $(tail -n 5 "$WORK/weft.log")"
fi
DW="$WORK/dw/docker.sock" DB="" DB_IPTABLES=""
if wants docker; then
    log "docker-weft: dockerd --bridge=none --iptables=false --ip-masq=false; network -d $P"
    start_dockerd dw "" --iptables=false --ip-masq=false --bridge=none || die "dockerd (weft) did not start"
    dk "$DW" network create -d "$P" --ipam-driver "$P" --subnet "$SUB_DW.0/24" wnet >/dev/null
    dk "$DW" run -d --network wnet --name peer weftbox sleep 3600 >/dev/null
    PEER_DW=$(dk "$DW" inspect -f '{{.NetworkSettings.Networks.wnet.IPAddress}}' peer)

    mk_ns "$P-dk"
    DB_IPTABLES=true
    ip netns exec "$P-dk" iptables -t nat -n -L >/dev/null 2>&1 || DB_IPTABLES=false
    log "docker-bridge: dockerd --iptables=$DB_IPTABLES in namespace $P-dk; network -d bridge"
    DB="$WORK/db-ipt$DB_IPTABLES/docker.sock"
    if ! start_dockerd "db-ipt$DB_IPTABLES" "$P-dk" "--iptables=$DB_IPTABLES"; then
        [[ $DB_IPTABLES == true ]] || die "dockerd (bridge) did not start"
        warn "dockerd with --iptables=true did not start in $P-dk; retrying with --iptables=false"
        stop_pid "$DPID"
        DB_IPTABLES=false DB="$WORK/db-iptfalse/docker.sock"
        start_dockerd db-iptfalse "$P-dk" --iptables=false || die "dockerd (bridge) did not start"
    fi
    [[ $DB_IPTABLES == true ]] || warn "docker-bridge runs with --iptables=false"
    dk "$DB" network create -d bridge --subnet "$SUB_DB.0/24" bnet >/dev/null
    dk "$DB" run -d --network bnet --name peer weftbox sleep 3600 >/dev/null
    PEER_DB=$(dk "$DB" inspect -f '{{.NetworkSettings.Networks.bnet.IPAddress}}' peer)
fi
PW="$WORK/pw" PB="$WORK/pb"
if wants podman; then
    log "podman-weft: weft cni install --network $P-w"
    podman_setup "$PW" "" "$PW/bin"
    register cni "$P-w"
    "$WEFT" --socket "$WS" cni install --bin-dir "$PW/bin" --conf-dir "$PW/net.d" --network "$P-w" \
        --subnet "$SUB_PW.0/24" >"$WORK/cni-install.out"
    "$PW/pm" run -d --name peer --network "$P-w" --rootfs "$ROOTFS" sleep 3600 >/dev/null
    PEER_PW=$(pm_ip "$PW")

    log "podman-bridge: CNI bridge + host-local (no firewall, no portmap), podman in namespace $P-pm"
    mk_ns "$P-pm"
    podman_setup "$PB" "$P-pm" "$CNI_DIR"
    register cni "$P-b"
    cat >"$PB/net.d/$P-b.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "$P-b", "plugins": [{
  "type": "bridge", "bridge": "wbr0", "isGateway": true, "ipMasq": false,
  "ipam": {"type": "host-local", "dataDir": "$PB/ipam", "routes": [{"dst": "0.0.0.0/0"}],
           "ranges": [[{"subnet": "$SUB_PB.0/24", "gateway": "$SUB_PB.1"}]]}}]}
EOF
    "$PB/pm" run -d --name peer --network "$P-b" --rootfs "$ROOTFS" sleep 3600 >/dev/null
    PEER_PB=$(pm_ip "$PB")
fi

# --------------------------------------------------------------- measure --
PATHS=()
for e in "${ENG[@]}"; do PATHS+=("$e"-{weft,bridge}-ping "$e"-{weft,bridge,none}-true); done
cmd_of() { # cmd_of ENGINE-NET-CMD: the command, in C
    local peer
    case ${1%-*} in
        docker-weft) peer=$PEER_DW C=(docker -H "unix://$DW" run --rm --network wnet weftbox) ;;
        docker-bridge) peer=$PEER_DB C=(docker -H "unix://$DB" run --rm --network bnet weftbox) ;;
        podman-weft) peer=$PEER_PW C=("$PW/pm" run --rm --network "$P-w" --rootfs "$ROOTFS") ;;
        podman-bridge) peer=$PEER_PB C=("$PB/pm" run --rm --network "$P-b" --rootfs "$ROOTFS") ;;
        docker-none) peer=- C=(docker -H "unix://$DW" run --rm --network none weftbox) ;;
        podman-none) peer=- C=("$PW/pm" run --rm --network none --rootfs "$ROOTFS") ;;
    esac
    if [[ $1 == *-ping ]]; then C+=(ping -c1 -W1 "$peer"); else C+=(true); fi
    [[ -n $peer ]] || die "no peer address for $1"
}
for p in "${PATHS[@]}"; do cmd_of "$p"; echo "$p: ${C[*]}" >>"$WORK/commands"; done
log "$RUNS runs (+1 warm-up) of ${PATHS[*]}, interleaved (every other run in reverse order)"
: >"$WORK/times"
for ((i = 0; i <= RUNS; i++)); do
    order=("${PATHS[@]}")
    if ((i % 2)); then mapfile -t order < <(printf '%s\n' "${PATHS[@]}" | tac); fi
    for p in "${order[@]}"; do
        cmd_of "$p"
        rc=0
        t0=$EPOCHREALTIME
        timeout -k 5 "$T" "${C[@]}" >>"$WORK/$p.out" 2>&1 </dev/null || rc=$?
        t1=$EPOCHREALTIME
        ((i == 0)) || echo "$p $i $rc $t0 $t1" >>"$WORK/times"
        ((rc == 0 || i == 0)) || FAILED=1
        ((rc == 0)) || warn "$p run $i failed (exit $rc); see $WORK/$p.out"
    done
    ((i == 0 || i % 5)) || log "run $i/$RUNS done"
done

FW_AFTER=$(fw)
[[ $FW_BEFORE == "$FW_AFTER" ]] || warn "the host's iptables rules changed during the run (this script or" \
    "someone else): $(diff <(echo "$FW_BEFORE") <(echo "$FW_AFTER"))"
for l in docker0 wbr0; do ! ip link show "$l" >/dev/null 2>&1 || warn "a link $l exists in the host namespace"; done

# ---------------------------------------------------------------- report --
read -r LOAD_AFTER _ </proc/loadavg
mkdir -p "$(dirname "$OUT")"
B_DOCKER=
if wants docker; then B_DOCKER="dockerd $(dk "$DB" info -f '{{.ServerVersion}}, storage {{.Driver}}' || true)"; fi
B_DOCKER=$B_DOCKER B_DB_IPTABLES=$DB_IPTABLES B_WEFT="$WEFT_ORIG" B_RUNS=$RUNS \
    B_LOAD="$LOAD_BEFORE $LOAD_AFTER" B_STAT="$STAT0 $STAT1" B_PODMAN="$(podman --version 2>/dev/null || true)" \
    python3 - "$WORK" "$OUT" <<'PY' || FAILED=1
import datetime, hashlib, json, math, os, platform, statistics, sys
work, out = sys.argv[1:3]
E = os.environ
cmds = dict(l.rstrip("\n").split(": ", 1) for l in open(os.path.join(work, "commands")))
runs = {p: [] for p in cmds}
for line in open(os.path.join(work, "times")):
    p, i, rc, t0, t1 = line.split()
    runs[p].append((int(rc), (float(t1) - float(t0)) * 1000))
res = {}
for p, rs in runs.items():
    ok = sorted(ms for rc, ms in rs if rc == 0)
    r = res[p] = {"command": cmds[p], "runs": len(rs), "failed": sum(1 for rc, _ in rs if rc),
                  "ms": [round(ms, 1) for rc, ms in rs if rc == 0]}
    if ok:  # p90: nearest rank
        r.update(median_ms=statistics.median(ok), p90_ms=ok[math.ceil(0.9 * len(ok)) - 1],
                 min_ms=ok[0], max_ms=ok[-1])
print(f"\n{E['B_RUNS']} runs per path after 1 warm-up, interleaved; wall time of `run --rm ...` in ms;"
      " ratio weft / the engine's bridge (below 1: weft is faster)")
hdr = ("engine", "command", "weft med", "p90", "bridge med", "p90", "ratio med", "p90", "failed w/b")
print("  ".join(f"{h:>10}" if k > 1 else f"{h:<7}" for k, h in enumerate(hdr)))
ratios = {}
ms = lambda r, k: f"{r[k]:10.0f}" if k in r else f"{'-':>10}"
for e in ("docker", "podman"):
    for c in ("ping", "true"):
        w, b = res.get(f"{e}-weft-{c}"), res.get(f"{e}-bridge-{c}")
        if not (w and b):
            continue
        row = [f"{e:<7}", f"{c:<7}", ms(w, "median_ms"), ms(w, "p90_ms"), ms(b, "median_ms"), ms(b, "p90_ms")]
        if "median_ms" in w and "median_ms" in b:
            ratios[f"{e}-{c}"] = {k: w[k + "_ms"] / b[k + "_ms"] for k in ("median", "p90")}
            row += [f"{ratios[f'{e}-{c}'][k]:9.2f}x" for k in ("median", "p90")]
        else:
            row += [f"{'-':>10}"] * 2
        print("  ".join(row + [f"{w['failed']:>4}/{b['failed']}"]))
net = {}
for e in ("docker", "podman"):
    n, w, b = (res.get(f"{e}-{k}-true", {}).get("median_ms") for k in ("none", "weft", "bridge"))
    if n and w and b:
        net[e] = {"none_ms": n, "weft_ms": w - n, "bridge_ms": b - n}
        print(f"  {e}: `run --network none ... true` {n:.0f} ms; the network adds {w - n:.0f} ms with weft,"
              f" {b - n:.0f} ms with the bridge (differences of medians)")
lb, la = E["B_LOAD"].split()
s0, s1 = ([int(x) for x in l.split()[1:9]] for l in E["B_STAT"].split("cpu ")[1:])  # user..steal
total, idle = sum(s1) - sum(s0), s1[3] + s1[4] - s0[3] - s0[4]  # idle + iowait
busy = round(100 * (1 - idle / total)) if total > 0 else None
print(f"load average (1 min): {lb} before, {la} after; CPU busy before the start: {busy}% ({os.cpu_count()} CPUs)")
with open(os.path.join(work, "weft"), "rb") as fb:
    sha = hashlib.sha256(fb.read()).hexdigest()
doc = {"schema": 1, "benchmark": "engines", "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
       "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "loadavg_1min": [float(lb), float(la)], "cpu_busy_pct_before": busy},
       "tools": {"weft": {"path": E["B_WEFT"], "sha256": sha}, "docker": E["B_DOCKER"], "podman": E["B_PODMAN"]},
       "params": {"runs": int(E["B_RUNS"]), "warmup": 1, "docker_bridge_iptables": E["B_DB_IPTABLES"] or None},
       "results": res, "ratios": ratios, "network_cost": net}
with open(out, "w") as fo:
    json.dump(doc, fo, indent=1)
print(f"results: {out}")
sys.exit(1 if any(r["failed"] or "median_ms" not in r for r in res.values()) else 0)
PY
((FAILED == 0)) || exit 1
