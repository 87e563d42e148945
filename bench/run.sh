#!/usr/bin/env bash
# weft data-path benchmark: TCP throughput, 64-byte UDP packet rate and ping
# RTT between two network namespaces, through weft (TAP and veth endpoints),
# the Linux kernel bridge, Open vSwitch's userspace (netdev) datapath and a
# direct veth pair. TCP runs once per congestion control (--cc; cubic and
# the machine's default). Every path is measured --rounds times,
# interleaved, and the medians are reported. See bench/README.md.
#
#   sudo bench/run.sh [--only tap,veth,bridge,ovs,veth-direct,tap-spin]
#                     [--rounds N] [--duration N] [--cc LIST] [--out FILE] [--install]
#   WEFT_DAEMON_ARGS="--busy-poll-us 0" sudo -E bench/run.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

ALL_PATHS="tap,veth,bridge,ovs,veth-direct,tap-spin"
DEFAULT_PATHS="tap,veth,bridge,ovs,veth-direct"
ONLY=$DEFAULT_PATHS
ROUNDS=3            # every selected path is measured this many times, interleaved
DURATION=4          # seconds measured per iperf3 test (plus 1 s omitted warm-up)
OMIT=1
UDP_LEN=64
PING_COUNT=200
PING_INTERVAL=0.002 # < 10 ms needs root
SPIN_US=0           # --busy-poll-us of the tap-spin path (0: never spin; the default is 5000)
SETTLE=1            # seconds of quiet between two paths (netns teardown is asynchronous)
INSTALL=0
CC_LIST=            # TCP congestion controls; empty: cubic, then the machine's default
OUT="$SCRIPT_DIR/results/latest.json"
WEFT=${WEFT:-}
WEFT_DAEMON_ARGS=${WEFT_DAEMON_ARGS:-}

CC_PROC=/proc/sys/net/ipv4
# The machine's default congestion control (new namespaces inherit it).
CC_DEFAULT=$(cat "$CC_PROC/tcp_congestion_control" 2>/dev/null || echo unknown)
CC_DEFAULT_LIST=cubic
[[ $CC_DEFAULT == cubic || $CC_DEFAULT == unknown ]] || CC_DEFAULT_LIST+=",$CC_DEFAULT"

# Everything this run creates is named with this prefix.
P="wb$$"
ADDR_A=10.231.0.11
ADDR_B=10.231.0.12
SUBNET=10.231.0.0/24
PORT=5201

usage() {
    cat <<EOF
usage: $0 [--only LIST] [--rounds N] [--duration N] [--cc LIST] [--out FILE] [--install]

Measures TCP throughput (iperf3, 1 stream, once per congestion control),
64-byte UDP packet rate (iperf3 -u -l 64 -b 0, packets received by the
server) and ping RTT between two network namespaces, through each
selected path:

  tap          weft, TAP endpoints
  veth         weft, veth endpoints
  bridge       Linux bridge in its own namespace
  ovs          Open vSwitch, userspace datapath (datapath_type=netdev)
  veth-direct  a bare veth pair (ceiling)
  tap-spin     weft, TAP endpoints, daemon with --busy-poll-us $SPIN_US (sleeps at once)
               (not in the default list)

The whole list is run N times in the same order (round 1: every path,
round 2: every path, ...); each path gets a fresh topology every round.
The report gives per path the median over the rounds (min/max in the JSON)
and the ratios of the medians.

  --only LIST     comma-separated paths (default: $DEFAULT_PATHS)
  --rounds N      rounds (default: $ROUNDS)
  --duration N    seconds per iperf3 test after a ${OMIT} s omitted warm-up (default: $DURATION)
  --cc LIST       comma-separated TCP congestion controls; the TCP test runs
                  once per entry (iperf3 -C). Default: cubic (Linux's stock
                  default), then this machine's default if it differs
                  (here: $CC_DEFAULT_LIST). Entries the kernel doesn't offer
                  ($CC_PROC/tcp_available_congestion_control) are skipped;
                  no module is loaded.
  --out FILE      JSON results (default: bench/results/latest.json)
  --install       apt-get install the tools first (otherwise nothing is installed)

Environment:
  WEFT=path              the weft binary (default: target/release/weft, built
                         with 'cargo build --release -p weft-control' if missing)
  WEFT_DAEMON_ARGS=ARGS  extra arguments appended to every 'weft daemon'
                         command line, split on whitespace (default: none)
Must run as root. Addresses used: $SUBNET, only inside the namespaces.
EOF
}

die() { echo "run.sh: error: $*" >&2; exit 1; }
log() { echo "== $*"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --only) [[ $# -ge 2 ]] || die "--only needs a value"; ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --duration) [[ $# -ge 2 ]] || die "--duration needs a value"; DURATION=$2; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --cc) [[ $# -ge 2 ]] || die "--cc needs a value"; CC_LIST=$2; shift 2 ;;
        --cc=*) CC_LIST=${1#*=}; shift ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --install) INSTALL=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 1 && DURATION <= 60)) ||
    die "--duration must be a whole number of seconds in 1..60, got '$DURATION'"
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 50)) ||
    die "--rounds must be a whole number in 1..50, got '$ROUNDS'"

PATHS=()
IFS=, read -r -a _sel <<<"$ONLY"
for p in "${_sel[@]}"; do
    case $p in
        tap | veth | bridge | ovs | veth-direct | tap-spin) ;;
        "") continue ;;
        *) die "unknown path '$p' in --only (choose from $ALL_PATHS)" ;;
    esac
    [[ " ${PATHS[*]:-} " == *" $p "* ]] || PATHS+=("$p")
done
((${#PATHS[@]} > 0)) || die "--only selects no path"

# Congestion controls: only those the kernel has (available, i.e. built in
# or loaded). Asking iperf3 for another one would make the kernel try to
# load its module (root may), which this script must not do.
CC_AVAILABLE=$(cat "$CC_PROC/tcp_available_congestion_control" 2>/dev/null || true)
CCS=()
CC_SKIPPED=()
IFS=, read -r -a _sel <<<"${CC_LIST:-$CC_DEFAULT_LIST}"
for c in "${_sel[@]}"; do
    [[ -n $c ]] || continue
    [[ $c =~ ^[a-z0-9_]+$ ]] || die "bad congestion control name '$c' in --cc"
    [[ " ${CCS[*]:-} ${CC_SKIPPED[*]:-} " == *" $c "* ]] && continue
    if [[ " $CC_AVAILABLE " == *" $c "* ]]; then
        CCS+=("$c")
    else
        CC_SKIPPED+=("$c")
        echo "run.sh: warning: TCP congestion control '$c' is not available" \
            "(have: ${CC_AVAILABLE:-none}); skipping it" >&2
    fi
done
((${#CCS[@]} > 0)) || die "--cc selects no available congestion control (available: ${CC_AVAILABLE:-none})"

wants() { [[ " ${PATHS[*]} " == *" $1 "* ]]; }
wants_weft() { wants tap || wants veth || wants tap-spin; }

# Extra daemon arguments. tap-spin sets --busy-poll-us itself (the daemon
# rejects the option twice), so it drops any --busy-poll-us given here.
read -r -a DAEMON_EXTRA <<<"$WEFT_DAEMON_ARGS"
SPIN_EXTRA=()
for ((i = 0; i < ${#DAEMON_EXTRA[@]}; i++)); do
    case ${DAEMON_EXTRA[$i]} in
        --busy-poll-us) i=$((i + 1)) ;;
        --busy-poll-us=*) ;;
        *) SPIN_EXTRA+=("${DAEMON_EXTRA[$i]}") ;;
    esac
done
if wants tap-spin && ((${#SPIN_EXTRA[@]} != ${#DAEMON_EXTRA[@]})); then
    echo "run.sh: warning: tap-spin uses --busy-poll-us $SPIN_US instead of the one in WEFT_DAEMON_ARGS" >&2
fi

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, ping -i $PING_INTERVAL)"

if ((INSTALL)); then
    log "installing iperf3 iputils-ping openvswitch-switch iproute2 jq"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y iperf3 iputils-ping openvswitch-switch iproute2 jq
fi

need ip iproute2
need ss iproute2
need iperf3 iperf3
need ping iputils-ping
need python3 python3
need timeout coreutils
if wants ovs; then
    need ovs-vsctl openvswitch-switch
    need ovs-appctl openvswitch-switch
    OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
    [[ -x $OVS_CTL ]] || die "$OVS_CTL not found (package openvswitch-switch)"
fi

if wants_weft; then
    # (grep without -q reads all input: no SIGPIPE to weft under pipefail)
    has_daemon() { [[ -x $1 ]] && "$1" --help 2>&1 | grep -w daemon >/dev/null; }
    if [[ -z $WEFT ]]; then
        WEFT="$REPO_ROOT/target/release/weft"
        if ! has_daemon "$WEFT"; then
            need cargo "rustup/cargo"
            log "building weft (cargo build --release -p weft-control)"
            (cd "$REPO_ROOT" && cargo build --release -p weft-control) ||
                die "building weft failed; pass WEFT=path or leave out tap,veth,tap-spin with --only"
        fi
    fi
    [[ -x $WEFT ]] || die "weft binary '$WEFT' is not executable"
    has_daemon "$WEFT" ||
        die "$WEFT has no 'daemon' command; rebuild it (cargo build --release -p weft-control)"
fi

WORK=$(mktemp -d "/tmp/weft-bench.$P.XXXXXX")
REGISTRY="$WORK/created"
: >"$REGISTRY"
FAILED=0
RDIR="$WORK" # per-round output directory, set in main

# Measure a private copy of weft, so that a rebuild of target/ while the
# rounds run can't mix two binaries in one report.
WEFT_ORIG=$WEFT
if wants_weft; then
    cp -p "$WEFT" "$WORK/weft"
    WEFT="$WORK/weft"
fi

# Every process this script starts (directly or through ip netns exec,
# ovs-ctl, ...) inherits this variable; that is how leftovers are found.
export WEFT_BENCH_RUN="$P.$(date +%s%N)"

# ---------------------------------------------------------------- cleanup --
# Every resource is recorded in $REGISTRY as it is created (also from the
# per-path subshells) and released in reverse order, so cleanup works after
# a failure or a signal at any point.

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    echo "run.sh: pid $pid ignored SIGTERM, killing" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

release() {
    local kind=$1 arg=${2:-} arg2=${3:-}
    case $kind in
        pid) stop_pid "$arg" ;;
        netns)
            ip netns del "$arg" 2>/dev/null || true
            # weft writes /etc/netns/NS/resolv.conf for the namespaces it connects.
            rm -rf "/etc/netns/$arg"
            ;;
        link) ip link del "$arg" 2>/dev/null || true ;;
        ovs-br) ovs-vsctl --timeout=10 --if-exists del-br "$arg" 2>/dev/null || true ;;
        ovs-tso)
            # Put userspace-tso-enable back the way we found it.
            if [[ $arg == unset ]]; then
                ovs-vsctl --timeout=5 --no-wait remove Open_vSwitch . other_config userspace-tso-enable 2>/dev/null || true
            else
                ovs-vsctl --timeout=5 --no-wait set Open_vSwitch . "other_config:userspace-tso-enable=$arg" 2>/dev/null || true
            fi
            ;;
        ovs-stop-all) "$OVS_CTL" stop >/dev/null 2>&1 || true ;;
        ovs-stop-vswitchd) ovs-appctl -t ovs-vswitchd exit >/dev/null 2>&1 || true ;;
        *) echo "run.sh: unknown registry entry '$kind $arg $arg2'" >&2 ;;
    esac
}

# quiesce: make sure nothing from this script is left before the next path
# is measured (and at exit): release the registry, stop stray processes of
# this run, delete stray namespaces with our prefix.
quiesce() {
    local strays pid ns
    release_all
    strays=$(list_strays) || strays=
    for pid in $strays; do
        echo "run.sh: warning: stopping leftover process of this run: $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >&2
        echo "process $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >>"$WORK/leftovers"
        stop_pid "$pid"
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
        echo "run.sh: warning: deleting leftover namespace $ns" >&2
        echo "netns $ns" >>"$WORK/leftovers"
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    quiesce
    if ((rc != 0 || FAILED)); then
        echo "run.sh: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
# The per-path subshell runs in the background (see main) so that a signal
# interrupts the wait at once; stop it and its children before cleaning up.
CHILD=
on_signal() {
    echo "run.sh: $1, cleaning up" >&2
    if [[ -n $CHILD ]]; then
        pkill -TERM -P "$CHILD" 2>/dev/null || true
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$2"
}
trap cleanup EXIT
trap 'on_signal interrupted 130' INT
trap 'on_signal terminated 143' TERM

# ------------------------------------------------------------ primitives --

# addr_up NS IFNAME ADDR: address and bring up an endpoint interface.
addr_up() {
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$1" link set "$2" up
}

# ------------------------------------------------------------- measuring --

# measure PATH NS_A NS_B: ping RTT, TCP (once per congestion control) and
# UDP from NS_A to NS_B ($ADDR_B); raw outputs land in
# $RDIR/PATH.{ping,tcp-CC.json,udp.json}.
measure() {
    local path=$1 nsa=$2 nsb=$3 out="$RDIR/$1"
    local spid
    spid=$(start_bg "$out.iperf3-server.log" ip netns exec "$nsb" iperf3 -s -B "$ADDR_B" -p "$PORT")
    wait_for 5 "iperf3 server" bash -c "ip netns exec '$nsb' ss -Hltn 'sport = :$PORT' | grep -q ."

    # Connectivity (also resolves ARP and fills the switch's FDB).
    wait_for 10 "$ADDR_B to answer ping from $nsa" \
        ip netns exec "$nsa" ping -c 1 -W 1 "$ADDR_B"

    ip netns exec "$nsa" ping -q -c "$PING_COUNT" -i "$PING_INTERVAL" -W 1 "$ADDR_B" >"$out.ping"

    local t=$((DURATION + OMIT + 15)) cc
    for cc in "${CCS[@]}"; do
        # -C sets the congestion control of the sending (client) socket.
        timeout "$t" ip netns exec "$nsa" iperf3 -c "$ADDR_B" -p "$PORT" --connect-timeout 3000 \
            -C "$cc" -t "$DURATION" -O "$OMIT" -J >"$out.tcp-$cc.json"
        sleep 0.3
    done
    timeout "$t" ip netns exec "$nsa" iperf3 -c "$ADDR_B" -p "$PORT" --connect-timeout 3000 \
        -u -l "$UDP_LEN" -b 0 -t "$DURATION" -O "$OMIT" -J >"$out.udp.json"
    stop_pid "$spid"
}

# ----------------------------------------------------------------- paths --

path_veth_direct() {
    local a="$P-vd-a" b="$P-vd-b"
    mk_ns "$a"
    mk_ns "$b"
    ip -n "$a" link add eth0 type veth peer name eth0 netns "$b"
    addr_up "$a" eth0 "$ADDR_A"
    addr_up "$b" eth0 "$ADDR_B"
    measure veth-direct "$a" "$b"
}

path_bridge() {
    local a="$P-br-a" b="$P-br-b" sw="$P-br-sw"
    mk_ns "$sw"
    mk_ns "$a"
    mk_ns "$b"
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    ip -n "$sw" link add p0 type veth peer name eth0 netns "$a"
    ip -n "$sw" link add p1 type veth peer name eth0 netns "$b"
    ip -n "$sw" link set p0 master br0 up
    ip -n "$sw" link set p1 master br0 up
    addr_up "$a" eth0 "$ADDR_A"
    addr_up "$b" eth0 "$ADDR_B"
    measure bridge "$a" "$b"
}

ovs_running() { ovs-vsctl --timeout=2 show >/dev/null 2>&1; }
vswitchd_running() { ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; }

# Make sure ovsdb-server and ovs-vswitchd run with userspace TSO enabled.
# userspace-tso-enable is read once when ovs-vswitchd starts, so it is set
# before starting ovs-vswitchd whenever this script starts it. Daemons this
# script starts are stopped again when the path is done (every round), so
# they don't run while the other paths are measured.
ovs_up() {
    local vlog=/var/log/openvswitch/ovs-vswitchd.log logpos=0 prev
    if ! ovs_running; then
        echo "   ovs: starting ovsdb-server"
        "$OVS_CTL" start --system-id=random --no-ovs-vswitchd >>"$WORK/ovs-ctl.log" 2>&1
        register ovs-stop-all
    fi
    prev=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . other_config:userspace-tso-enable | tr -d '"')
    if [[ $prev != true ]]; then
        ovs-vsctl --timeout=5 --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
        register ovs-tso "${prev:-unset}"
    fi
    if ! vswitchd_running; then
        echo "   ovs: starting ovs-vswitchd (userspace-tso-enable=true)"
        [[ -f $vlog ]] && logpos=$(wc -c <"$vlog")
        "$OVS_CTL" start --system-id=random --no-ovsdb-server >>"$WORK/ovs-ctl.log" 2>&1
        grep -q '^ovs-stop-all' "$REGISTRY" || register ovs-stop-vswitchd
        if [[ -f $vlog ]] && tail -c +"$((logpos + 1))" "$vlog" | grep -q 'Segmentation Offloading support enabled'; then
            echo "tso=enabled" >"$RDIR/ovs.tso"
        else
            echo "tso=unknown" >"$RDIR/ovs.tso"
        fi
    elif [[ $prev == true ]]; then
        echo "tso=configured" >"$RDIR/ovs.tso"
    else
        echo "run.sh: warning: ovs-vswitchd was already running without userspace-tso-enable;" \
            "it only reads that setting at startup, so OVS runs without TSO here" >&2
        echo "tso=disabled (ovs-vswitchd already running; needs restart)" >"$RDIR/ovs.tso"
    fi
}

path_ovs() {
    local a="$P-ovs-a" b="$P-ovs-b" br="${P}ovs" i
    ovs_up
    ovs-vsctl --timeout=10 add-br "$br" -- set bridge "$br" datapath_type=netdev
    register ovs-br "$br"
    mk_ns "$a"
    mk_ns "$b"
    # OVS opens its ports in its own (the root) namespace: the veth host
    # ends ${P}o0/${P}o1 and the bridge's internal port live there, unaddressed.
    local -a nss=("$a" "$b") addrs=("$ADDR_A" "$ADDR_B")
    for i in 0 1; do
        ip link add "${P}o$i" type veth peer name eth0 netns "${nss[$i]}"
        register link "${P}o$i"
        ip link set "${P}o$i" up
        ovs-vsctl --timeout=10 add-port "$br" "${P}o$i"
        addr_up "${nss[$i]}" eth0 "${addrs[$i]}"
    done
    measure ovs "$a" "$b"
    ovs-ofctl dump-ports "$br" >"$RDIR/ovs.ports" 2>&1 || true
}

sock_or_dead() { [[ -S $1 ]] || ! alive "$2"; }

# path_weft NAME KIND SHORT [DAEMON ARGS...]: a weft daemon (started with the
# given arguments, then $WEFT_DAEMON_ARGS) with one network and two KIND
# endpoints, in namespaces $P-SHORT-a and $P-SHORT-b.
path_weft() {
    local name=$1 kind=$2 short=$3
    shift 3
    local a="$P-$short-a" b="$P-$short-b" dir="$RDIR/weft-$name"
    local sock="$dir/weft.sock" pid
    local -a args=("$@")
    mkdir -p "$dir/state"
    printf '%s\n' "${args[@]}" >"$RDIR/$name.daemon-args"
    pid=$(start_bg "$dir/daemon.log" "$WEFT" daemon --socket "$sock" --state-dir "$dir/state" "${args[@]}")
    if ! wait_for 15 "weft daemon socket $sock" sock_or_dead "$sock" "$pid" || ! alive "$pid"; then
        echo "weft daemon did not come up; its log:" >&2
        tail -n 20 "$dir/daemon.log" >&2
        return 1
    fi
    mk_ns "$a"
    mk_ns "$b"
    # (the CLI's confirmations go to the path log, with the shell trace)
    "$WEFT" --socket "$sock" network create bench --subnet "$SUBNET" >&2
    local ep host
    for ep in a b; do
        local ns=$a addr=$ADDR_A
        [[ $ep == b ]] && ns=$b addr=$ADDR_B
        "$WEFT" --socket "$sock" --json connect bench --netns "$ns" --kind "$kind" --ip "$addr" \
            --name "$ep" >"$RDIR/$name.endpoint-$ep.json"
        cat "$RDIR/$name.endpoint-$ep.json" >&2
        # veth endpoints have their host end (wv…) in the root namespace.
        host=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("host_ifname") or "")' \
            "$RDIR/$name.endpoint-$ep.json" 2>/dev/null) || host=
        [[ -z $host ]] || register link "$host"
    done
    measure "$name" "$a" "$b"
    "$WEFT" --socket "$sock" --json ports >"$RDIR/$name.ports.json" || true
    alive "$pid" || { echo "weft daemon died during the run" >&2; tail -n 20 "$dir/daemon.log" >&2; return 1; }
}

run_path() {
    case $1 in
        tap) path_weft tap tap tap "${DAEMON_EXTRA[@]}" ;;
        veth) path_weft veth veth veth "${DAEMON_EXTRA[@]}" ;;
        tap-spin) path_weft tap-spin tap tsp --busy-poll-us "$SPIN_US" "${SPIN_EXTRA[@]}" ;;
        bridge) path_bridge ;;
        ovs) path_ovs ;;
        veth-direct) path_veth_direct ;;
    esac
}

# ------------------------------------------------------------- reporting --
# One Python program for the per-round line ("line RDIR PATH") and the final
# report and JSON ("report WORK OUT ELAPSED ROUNDS PATH...").
REPORT_PY=$(
    cat <<'PY'
import json, os, platform, re, statistics, subprocess, sys, datetime

E = os.environ
SPIN_MS = int(E["B_SPIN_US"]) / 1000
NAMES = {"tap": "weft-tap", "veth": "weft-veth", "bridge": "kernel-bridge",
         "ovs": "ovs-netdev", "veth-direct": "veth-direct", "tap-spin": "weft-tap-spin"}
LABELS = dict(NAMES, **{"tap-spin": f"weft-tap (busy-poll {SPIN_MS:g} ms)"})
WEFT_PATHS = ("tap", "veth", "tap-spin")
BASES = (("bridge", "kernel bridge"), ("ovs", "OVS"))
UDP_LEN = int(E["B_UDP_LEN"])
# TCP congestion controls measured (one TCP test each, in this order).
CCS = E["B_CCS"].split()
# Per-round figures summarised over the rounds (median, min, max, values);
# TCP's, per congestion control, are under "tcp".
STAT_KEYS = ("udp_kpps", "udp_sent_kpps", "rtt_us", "rtt_min_us",
             "udp_loss_pct", "ping_loss_pct")
TCP_KEYS = ("gbps", "retransmits")

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None

def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None

def parse_round(rdir, p):
    f = lambda ext: os.path.join(rdir, p + ext)
    r = {"ok": False}
    load = read(f(".load"))
    if load:
        r["loadavg_1min"] = float(load.split()[0])
    err = read(f(".error"))
    if err is not None:
        r["error"] = err.strip()
        return r
    try:
        ping = read(f(".ping")) or ""
        m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", ping)
        loss = re.search(r"([\d.]+)% packet loss", ping)
        r["tcp"] = {}
        for cc in CCS:
            raw = read(f(f".tcp-{cc}.json"))
            if not raw:
                raise ValueError(f"no TCP ({cc}) results")
            tcp = json.loads(raw)
            if "error" in tcp:
                raise ValueError(f"iperf3 tcp ({cc}): {tcp['error']}")
            end = tcp["end"]
            # What the sender really used (iperf3 -C fails if the kernel
            # refuses, but check: the figure is labelled with it).
            used = end.get("sender_tcp_congestion")
            if used is not None and used != cc:
                raise ValueError(f"iperf3 tcp: asked for {cc}, the sender used {used}")
            r["tcp"][cc] = {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
                            "retransmits": end["sum_sent"].get("retransmits"),
                            "sender_cc": used,
                            "receiver_cc": end.get("receiver_tcp_congestion")}
        raw = read(f(".udp.json"))
        if not raw:
            raise ValueError("no UDP results")
        udp = json.loads(raw)
        if "error" in udp:
            raise ValueError(f"iperf3 udp: {udp['error']}")
        # Server side: what actually arrived. iperf3's own "packets" and
        # "lost_packets" don't add up with -O (the server's omit window is
        # not the client's; lost can exceed packets), so count the payload
        # bytes the server read in its measured interval.
        u, s = udp["end"]["sum_received"], udp["end"]["sum_sent"]
        r["udp_kpps"] = u["bytes"] / UDP_LEN / u["seconds"] / 1e3
        r["udp_sent_kpps"] = s["bytes"] / UDP_LEN / s["seconds"] / 1e3
        r["udp_loss_pct"] = max(0.0, 100 * (1 - r["udp_kpps"] / r["udp_sent_kpps"]))
        if not m:
            raise ValueError("no RTT in ping output: " + ping.strip()[-200:])
        mn, avg, mx, md = (float(x) * 1000 for x in m.groups())
        r.update(rtt_us=avg, rtt_min_us=mn, rtt_max_us=mx, rtt_mdev_us=md,
                 ping_loss_pct=float(loss.group(1)) if loss else None)
        r["ok"] = True
    except Exception as e:  # noqa: BLE001 - report, don't crash the summary
        r["error"] = f"could not parse results: {e}"
    return r

def line(rdir, p):
    r = parse_round(rdir, p)
    if r["ok"]:
        tcp = ", ".join(f"{cc} {r['tcp'][cc]['gbps']:.2f}" for cc in CCS)
        print(f"   TCP {tcp} Gbit/s, UDP {r['udp_kpps']:.1f} kpps "
              f"(sent {r['udp_sent_kpps']:.1f}), RTT {r['rtt_us']:.1f} µs")
    else:
        print(f"   FAILED: {r.get('error', '?')[:200]}")

def aggregate(work, rounds, p):
    per_round = []
    for i in range(1, rounds + 1):
        r = parse_round(os.path.join(work, f"r{i}"), p)
        per_round.append(dict(round=i, **r))
    ok = [r for r in per_round if r["ok"]]
    res = {"path": NAMES[p], "label": LABELS[p], "ok": bool(ok),
           "rounds_ok": len(ok), "rounds_total": rounds}
    def summary(vals):
        vals = [v for v in vals if v is not None]
        if vals:
            m = statistics.median(vals)
            return m, {"median": m, "min": min(vals), "max": max(vals), "values": vals}
        return None, None
    # tcp[cc] = {gbps, retransmits (medians), stats: {gbps, retransmits}}
    res["tcp"] = {}
    for cc in CCS:
        t, st = {}, {}
        res["tcp"][cc] = t
        for k in TCP_KEYS:
            med, s = summary([r["tcp"][cc].get(k) for r in ok])
            if s:
                t[k], st[k] = med, s
        t["stats"] = st
    stats = {}
    for k in STAT_KEYS:
        med, st = summary([r.get(k) for r in ok])
        if st:
            res[k], stats[k] = med, st
    res["stats"] = stats
    errors = [f"round {r['round']}: {r['error']}" for r in per_round if not r["ok"]]
    if errors:
        res["errors"] = errors
    if p in WEFT_PATHS:
        for i in range(1, rounds + 1):
            args = read(os.path.join(work, f"r{i}", p + ".daemon-args"))
            if args is not None:
                res["daemon_args"] = [a for a in args.split("\n") if a]
                break
        # Port counters of the last round that has them.
        for i in range(rounds, 0, -1):
            ports = read(os.path.join(work, f"r{i}", p + ".ports.json"))
            if ports:
                try:
                    res["weft_ports"] = {"round": i, "ports": json.loads(ports)}
                    break
                except ValueError:
                    pass
    if p == "ovs":
        tso = sorted({t.strip().removeprefix("tso=") for i in range(1, rounds + 1)
                      if (t := read(os.path.join(work, f"r{i}", "ovs.tso")))})
        if tso:
            res["ovs_userspace_tso"] = ", ".join(tso)
    res["per_round"] = per_round
    return res

def weft_info(orig, copy):
    """The measured binary: its path, and sha256 and mtime of the copy that ran."""
    import hashlib
    info = {"path": orig}
    try:
        with open(copy, "rb") as f:
            info["sha256"] = hashlib.sha256(f.read()).hexdigest()
        info["mtime"] = datetime.datetime.fromtimestamp(
            os.stat(copy).st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
        info["version"] = cmd(copy, "--version")
    except OSError:
        pass
    return info

def loadavg(s):
    v = [float(x) for x in s.split()[:3]]
    return {"1min": v[0], "5min": v[1], "15min": v[2]}

def report(work, out, elapsed, rounds, paths):
    results = {p: aggregate(work, rounds, p) for p in paths}
    ratios = {}
    for w in WEFT_PATHS:
        x = results.get(w)
        if not x or not x["ok"]:
            continue
        for base, _ in BASES:
            b = results.get(base)
            if not b or not b["ok"]:
                continue
            def ratio(xv, bv):
                return xv / bv if xv is not None and bv else None
            ratios.setdefault(NAMES[w], {})[NAMES[base]] = {
                "tcp": {cc: ratio(x["tcp"][cc].get("gbps"), b["tcp"][cc].get("gbps")) for cc in CCS},
                "udp": ratio(x.get("udp_kpps"), b.get("udp_kpps")),
                "rtt": ratio(x.get("rtt_us"), b.get("rtt_us")),
            }  # rtt > 1 means weft's RTT is longer (worse)

    cpu = None
    for l in (read("/proc/cpuinfo") or "").splitlines():
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    before, after = loadavg(E["B_LOAD_BEFORE"]), loadavg(E["B_LOAD_AFTER"])
    leftovers = [l for l in (read(os.path.join(work, "leftovers")) or "").splitlines() if l]
    doc = {
        "schema": 3,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": elapsed,
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
                 "loadavg_before": before, "loadavg_after": after,
                 "loadavg_1min_before": before["1min"], "loadavg_1min_after": after["1min"],
                 # CPU busy over 1 s with the script idle, just before and after the run
                 "cpu_busy_pct_before": int(E["B_BUSY_BEFORE"]),
                 "cpu_busy_pct_after": int(E["B_BUSY_AFTER"])},
        "tools": {"iperf3": (cmd("iperf3", "--version") or "").split("\n")[0] or None,
                  "ovs": (cmd("ovs-vsctl", "--version") or "").split("\n")[0] or None,
                  "weft": weft_info(E["B_WEFT"], E["B_WEFT_COPY"]) if any(p in WEFT_PATHS for p in paths) else None,
                  "weft_git": cmd("git", "-C", E["B_REPO"], "describe", "--always", "--dirty") or None},
        "params": {"rounds": rounds, "order": [NAMES[p] for p in paths],
                   "duration_s": int(E["B_DURATION"]), "omit_s": int(E["B_OMIT"]),
                   "tcp_congestion_controls": CCS,
                   "udp_payload_bytes": UDP_LEN, "ping_count": int(E["B_PING_COUNT"]),
                   "ping_interval_s": float(E["B_PING_INTERVAL"]), "subnet": E["B_SUBNET"],
                   "weft_daemon_args_env": E["B_DAEMON_ARGS"],
                   "tap_spin_busy_poll_us": int(E["B_SPIN_US"])},
        # The machine's default congestion control is what TCP uses here
        # unless told otherwise; the TCP figures are per congestion control.
        "tcp_congestion_control": {"machine_default": E["B_CC_DEFAULT"],
                                   "available": E["B_CC_AVAILABLE"].split(),
                                   "measured": CCS,
                                   "skipped": E["B_CC_SKIPPED"].split()},
        "results": list(results.values()),
        "ratios": ratios,
        "leftovers_stopped": leftovers,
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, out)

    # Table: label, then per metric "median [min-max]" (medians right-aligned);
    # one TCP column per congestion control.
    def tcp_stat(cc):
        return lambda r: r["tcp"][cc]["stats"].get("gbps")
    cols = [(f"TCP {cc}", tcp_stat(cc), ".2f") for cc in CCS] + [
        ("UDP kpps", lambda r: r["stats"].get("udp_kpps"), ".1f"),
        ("(sent)", lambda r: r.get("udp_sent_kpps"), ".1f"),  # single value
        ("RTT avg µs", lambda r: r["stats"].get("rtt_us"), ".1f")]
    rows = []
    for p in paths:
        r = results[p]
        if not r["ok"]:
            rows.append((LABELS[p], "FAILED: " + r.get("errors", ["?"])[0][:100]))
            continue
        cells = []
        for _, get, spec in cols:
            s = get(r)
            if isinstance(s, dict):
                cells.append((format(s["median"], spec), f"[{format(s['min'], spec)}-{format(s['max'], spec)}]"))
            elif s is not None:
                cells.append((format(s, spec),))
            else:
                cells.append(("-", ""))
        rows.append((LABELS[p], cells + [(f"{r['rounds_ok']}/{rounds}",)]))
    ok_rows = [c for _, c in rows if isinstance(c, list)]
    titles = [t for t, _, _ in cols] + ["rounds"]
    # widths: per column, of the median and of the range
    wm = [max([len(c[i][0]) for c in ok_rows] or [0]) for i in range(len(titles))]
    wr = [max([len(c[i][1]) if len(c[i]) > 1 else 0 for c in ok_rows] or [0]) for i in range(len(titles))]
    single = [all(len(c[i]) == 1 for c in ok_rows) and bool(ok_rows) for i in range(len(titles))]
    single[-1] = True
    colw = [max(wm[i] if single[i] else wm[i] + 1 + wr[i], len(titles[i])) for i in range(len(titles))]
    def fmt(i, cell):
        if single[i]:
            return f"{cell[0]:>{colw[i]}}" if i < len(titles) - 1 else cell[0]
        return f"{cell[0]:>{wm[i]}} {(cell[1] if len(cell) > 1 else ''):<{wr[i]}}".ljust(colw[i])
    w0 = max(len("path"), *(len(l) for l, _ in rows))
    head = "  ".join([f"{'path':<{w0}}"] + [
        (f"{t:>{colw[i]}}" if single[i] and i < len(titles) - 1 else f"{t:<{colw[i]}}" if i < len(titles) - 1 else t)
        for i, t in enumerate(titles)])
    print()
    print(f"median of {rounds} round{'s' if rounds != 1 else ''}, [min-max] over the rounds; "
          f"TCP in Gbit/s, per congestion control (machine default: {E['B_CC_DEFAULT']})")
    print(head)
    for label, c in rows:
        if not isinstance(c, list):
            print(f"{label:<{w0}}  {c}")
            continue
        print("  ".join([f"{label:<{w0}}"] + [fmt(i, cell) for i, cell in enumerate(c)]).rstrip())
    if ratios:
        print()
        print("weft vs. baselines, ratio of the medians (TCP, UDP: higher is better; RTT: lower is better)")
        x2 = lambda v: "-" if v is None else f"{v:.2f}"
        for w in WEFT_PATHS:
            if NAMES[w] not in ratios:
                continue
            by_base = ratios[NAMES[w]]
            tcp, udp, rtt = [], [], []
            for base, label in BASES:
                v = by_base.get(NAMES[base])
                if not v:
                    continue
                tcp += [f"{x2(v['tcp'][cc])}x {label} ({cc})" if i == 0 else f"{x2(v['tcp'][cc])}x ({cc})"
                        for i, cc in enumerate(CCS)]
                udp.append(f"{x2(v['udp'])}x {label}")
                rtt.append(f"{x2(v['rtt'])}x {label}")
            print(f"  {LABELS[w]}: TCP " + ", ".join(tcp) + "; UDP " + ", ".join(udp)
                  + "; RTT " + ", ".join(rtt))
    print()
    print(f"load average (1 min): {before['1min']:.2f} before, {after['1min']:.2f} after "
          f"({os.cpu_count()} CPUs); CPU busy with the script idle: "
          f"{E['B_BUSY_BEFORE']}% before, {E['B_BUSY_AFTER']}% after")
    if leftovers:
        print(f"leftovers stopped between paths: {len(leftovers)} (see the JSON)")
    print(f"results: {out} ({elapsed} s)")

if sys.argv[1] == "line":
    line(sys.argv[2], sys.argv[3])
else:
    report(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])
PY
)
export B_DURATION=$DURATION B_OMIT=$OMIT B_UDP_LEN=$UDP_LEN B_PING_COUNT=$PING_COUNT \
    B_PING_INTERVAL=$PING_INTERVAL B_SUBNET=$SUBNET B_WEFT=$WEFT_ORIG B_WEFT_COPY=$WEFT B_REPO=$REPO_ROOT \
    B_SPIN_US=$SPIN_US B_DAEMON_ARGS=$WEFT_DAEMON_ARGS \
    B_CCS="${CCS[*]}" B_CC_DEFAULT=$CC_DEFAULT B_CC_AVAILABLE=$CC_AVAILABLE B_CC_SKIPPED="${CC_SKIPPED[*]:-}"

# cpu_busy_pct: how busy all CPUs are over one second (percent), sampled
# while this script runs nothing: a direct reading of other users' load,
# unlike the load average, which lags and after a run mostly shows our own.
cpu_busy_pct() {
    python3 - <<'PY'
import time
def snap():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]  # user..steal; idle + iowait
(t0, i0), _ = snap(), time.sleep(1)
t1, i1 = snap()
print(round(100 * (1 - (i1 - i0) / (t1 - t0))) if t1 > t0 else 0)
PY
}

# ------------------------------------------------------------------ main --

# Rough time per path and round: setup, ping, TCP and UDP, teardown.
EST=$((((${#CCS[@]} + 1) * (DURATION + OMIT) + 3 + SETTLE) * ${#PATHS[@]} * ROUNDS))
log "weft benchmark: ${ROUNDS} round(s) of: ${PATHS[*]}; ${DURATION}s per test; TCP with ${CCS[*]}" \
    "(machine default: $CC_DEFAULT); about $((EST / 60)) min $((EST % 60)) s"
if [[ -n $WEFT_DAEMON_ARGS ]] && wants_weft; then log "weft daemon extra arguments: $WEFT_DAEMON_ARGS"; fi
log "work dir $WORK"
LOAD_BEFORE=$(cat /proc/loadavg)
BUSY_BEFORE=$(cpu_busy_pct)
if python3 -c "import os,sys; sys.exit(0 if os.getloadavg()[0] > os.cpu_count() / 2 else 1)" ||
    ((BUSY_BEFORE > 20)); then
    echo "run.sh: warning: load average ${LOAD_BEFORE%% *} on $(nproc) CPUs, ${BUSY_BEFORE}% CPU busy" \
        "before the start; other work will skew the figures" >&2
fi
START=$(date +%s)
first=1
for ((round = 1; round <= ROUNDS; round++)); do
    RDIR="$WORK/r$round"
    mkdir -p "$RDIR"
    for p in "${PATHS[@]}"; do
        # Nothing from the previous path may still run or be half torn down.
        quiesce
        ((first)) || sleep "$SETTLE"
        first=0
        log "round $round/$ROUNDS: $p"
        cat /proc/loadavg >"$RDIR/$p.load"
        plog="$RDIR/$p.log"
        # Each path runs in a subshell with errexit so that one broken path is
        # reported and the others still run; its shell trace and stderr go to
        # $plog. Resources are in $REGISTRY and released right after.
        set +e
        (
            set -e
            exec 3>>"$plog"
            BASH_XTRACEFD=3
            exec 2>&3
            set -x
            run_path "$p"
        ) &
        CHILD=$!
        wait "$CHILD"
        rc=$?
        CHILD=
        set -e
        release_all
        if ((rc != 0)); then
            FAILED=1
            echo "run.sh: path '$p' failed in round $round (exit $rc); last lines of $plog:" >&2
            tail -n 12 "$plog" | sed 's/^/   | /' >&2
            echo "failed (exit $rc): $(grep -v -e '^+' -e '^[[:space:]]*$' "$plog" | tail -n 3 | tr '\n' ' ')" >"$RDIR/$p.error"
        fi
        python3 -c "$REPORT_PY" line "$RDIR" "$p" || true
    done
done
quiesce
ELAPSED=$(($(date +%s) - START))
LOAD_AFTER=$(cat /proc/loadavg)
BUSY_AFTER=$(cpu_busy_pct)

mkdir -p "$(dirname "$OUT")"
B_LOAD_BEFORE=$LOAD_BEFORE B_LOAD_AFTER=$LOAD_AFTER B_BUSY_BEFORE=$BUSY_BEFORE B_BUSY_AFTER=$BUSY_AFTER \
    python3 -c "$REPORT_PY" report "$WORK" "$OUT" "$ELAPSED" "$ROUNDS" "${PATHS[@]}"

((FAILED == 0)) || exit 1
