#!/usr/bin/env bash
# weft overlay benchmark: TCP throughput, 64-byte UDP packet rate and ping
# RTT between two containers on two "hosts" joined by VXLAN, through weft's
# overlay (two daemons with static peers, and optionally two daemons in a
# gossip cluster) and through the Linux kernel's vxlan device with a kernel
# bridge, in the same run. Hosts and containers are network namespaces; the
# underlay is a veth pair between the two host namespaces. TCP runs once per
# congestion control (--cc; cubic and the machine's default). Every path is
# measured --rounds times, interleaved, and the medians and the ratios
# weft/kernel are reported. See bench/README.md ("Overlay benchmark").
#
#   sudo bench/overlay.sh [--only weft,kernel,weft-gossip] [--rounds N]
#                         [--duration N] [--cc LIST] [--out FILE] [--install]
#   WEFT=/path/to/weft WEFT_DAEMON_ARGS="--workers 2" sudo -E bench/overlay.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

ALL_PATHS="weft,kernel,weft-gossip"
DEFAULT_PATHS="weft,kernel,weft-gossip"
ONLY=$DEFAULT_PATHS
ROUNDS=3            # every selected path is measured this many times, interleaved
DURATION=4          # seconds measured per iperf3 test (plus OMIT s left out at the start)
OMIT=1
UDP_LEN=64
PING_COUNT=200
PING_INTERVAL=0.002 # < 10 ms needs root
SETTLE=1            # seconds of quiet between two paths (netns teardown is asynchronous)
INSTALL=0
CC_LIST=            # TCP congestion controls; empty: cubic, then the machine's default
OUT="$SCRIPT_DIR/results/overlay-latest.json"
WEFT=${WEFT:-}
WEFT_DAEMON_ARGS=${WEFT_DAEMON_ARGS:-}

CC_PROC=/proc/sys/net/ipv4
# The machine's default congestion control (new namespaces inherit it).
CC_DEFAULT=$(cat "$CC_PROC/tcp_congestion_control" 2>/dev/null || echo unknown)
CC_DEFAULT_LIST=cubic
[[ $CC_DEFAULT == cubic || $CC_DEFAULT == unknown ]] || CC_DEFAULT_LIST+=",$CC_DEFAULT"

# Everything this run creates is named with this prefix.
P="wo$$"
# Underlay (between the host namespaces) and overlay (between the containers).
# Both exist only inside the namespaces this script creates.
UL_NET=10.234.0.0/24
UL_ADDR=(10.234.0.1 10.234.0.2)  # host 1, host 2 (the VTEPs)
OV_NET=10.235.0.0/24
OV_ADDR=(10.235.0.11 10.235.0.12) # container 1 (client), container 2 (server)
VNI=42
VXLAN_PORT=4789
OV_MTU=1450                       # 1500 - 50 bytes of VXLAN over IPv4; weft's overlay default
NET=ov                            # weft's network name
PORT=5201

usage() {
    cat <<EOF
usage: $0 [--only LIST] [--rounds N] [--duration N] [--cc LIST] [--out FILE] [--install]

Measures TCP throughput (iperf3, 1 stream, once per congestion control),
64-byte UDP packet rate (iperf3 -u -l 64 -b 0, packets received by the
server) and ping RTT from container c1 on host h1 to container c2 on host
h2, across a VXLAN overlay (VNI $VNI, UDP $VXLAN_PORT), through each selected path:

  weft         a weft daemon in each host namespace, overlay network with
               static peers (weft peer add)
  kernel       Linux vxlan device + bridge in each host namespace
  weft-gossip  weft daemons in a gossip cluster (--cluster-key-file, --join);
               the network is created on h1 only and reaches h2 by gossip

Hosts and containers are network namespaces; the underlay is a veth pair
between h1 and h2 ($UL_NET: ${UL_ADDR[0]} and ${UL_ADDR[1]}). Containers:
$OV_NET (c1 ${OV_ADDR[0]}, c2 ${OV_ADDR[1]}), MTU $OV_MTU.
The whole list is run N times in the same order; each path gets a fresh
topology every round. The report gives per path the median over the
rounds and the ratios weft/kernel.

  --only LIST     comma-separated paths (default: $DEFAULT_PATHS)
  --rounds N      rounds (default: $ROUNDS)
  --duration N    seconds per iperf3 test after a ${OMIT} s omitted warm-up (default: $DURATION)
  --cc LIST       comma-separated TCP congestion controls; the TCP test runs
                  once per entry (iperf3 -C). Default: cubic, then this
                  machine's default if it differs (here: $CC_DEFAULT_LIST).
                  Entries the kernel doesn't offer are skipped; no module is loaded.
  --out FILE      JSON results (default: bench/results/overlay-latest.json)
  --install       apt-get install iperf3 iputils-ping iproute2 first (otherwise nothing is installed)

Environment:
  WEFT=path              the weft binary (default: target/release/weft; not built here)
  WEFT_DAEMON_ARGS=ARGS  extra arguments for every 'weft daemon', split on whitespace
Must run as root. Nothing is created in the host's own namespace.
EOF
}

die() { echo "overlay.sh: error: $*" >&2; exit 1; }
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

if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 60)); then
    die "--duration must be a whole number of seconds in 1..60, got '$DURATION'"
fi
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 50)); then
    die "--rounds must be a whole number in 1..50, got '$ROUNDS'"
fi

PATHS=()
IFS=, read -r -a _sel <<<"$ONLY"
for p in "${_sel[@]}"; do
    [[ -n $p ]] || continue
    case ",$ALL_PATHS," in
        *",$p,"*) ;;
        *) die "unknown path '$p' in --only (choose from $ALL_PATHS)" ;;
    esac
    [[ " ${PATHS[*]:-} " == *" $p "* ]] || PATHS+=("$p")
done
((${#PATHS[@]} > 0)) || die "--only selects no path"

# Congestion controls: only those the kernel has (built in or loaded).
# Asking iperf3 for another one would make the kernel try to load its
# module (root may), which this script must not do.
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
        echo "overlay.sh: warning: TCP congestion control '$c' is not available" \
            "(have: ${CC_AVAILABLE:-none}); skipping it" >&2
    fi
done
((${#CCS[@]} > 0)) || die "--cc selects no available congestion control (available: ${CC_AVAILABLE:-none})"

wants() { [[ " ${PATHS[*]} " == *" $1 "* ]]; }
wants_weft() { wants weft || wants weft-gossip; }

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, weft daemons, ping -i $PING_INTERVAL)"

if ((INSTALL)); then
    log "installing iperf3 iputils-ping iproute2"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y iperf3 iputils-ping iproute2
fi

need ip iproute2
need ss iproute2
need bridge iproute2
need iperf3 iperf3
need ping iputils-ping
need python3 python3
need timeout coreutils

if wants_weft; then
    # (grep without -q reads all input: no SIGPIPE to weft under pipefail)
    has_cmds() {
        local h
        [[ -x $1 ]] || return 1
        h=$("$1" --help 2>&1) || return 1
        grep -w daemon <<<"$h" >/dev/null && grep -w peer <<<"$h" >/dev/null &&
            { ! wants weft-gossip || grep -w keygen <<<"$h" >/dev/null; }
    }
    [[ -n $WEFT ]] || WEFT="$REPO_ROOT/target/release/weft"
    [[ -x $WEFT ]] || die "weft binary '$WEFT' not found; build it (cargo build --release -p weft-control)," \
        "pass WEFT=path, or measure only the kernel path with --only kernel"
    has_cmds "$WEFT" || die "$WEFT lacks the 'daemon', 'peer' or 'keygen' command (no overlay support);" \
        "rebuild it (cargo build --release -p weft-control)"
fi

WORK=$(mktemp -d "/tmp/weft-overlay.$P.XXXXXX")
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
read -r -a DAEMON_EXTRA <<<"$WEFT_DAEMON_ARGS"

# Every process this script starts (directly or through ip netns exec)
# inherits this variable; that is how leftovers are found.
WEFT_BENCH_RUN="$P.$(date +%s%N)"
export WEFT_BENCH_RUN

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
    echo "overlay.sh: pid $pid ignored SIGTERM, killing" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

release() {
    local kind=$1 arg=${2:-}
    case $kind in
        pid) stop_pid "$arg" ;;
        netns)
            ip netns del "$arg" 2>/dev/null || true
            # weft writes /etc/netns/NS/resolv.conf for the namespaces it connects.
            rm -rf "/etc/netns/$arg"
            ;;
        dir) rm -rf "$arg" ;;
        *) echo "overlay.sh: unknown registry entry '$kind $arg'" >&2 ;;
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
        echo "overlay.sh: warning: stopping leftover process of this run: $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >&2
        echo "process $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >>"$WORK/leftovers"
        stop_pid "$pid"
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
        echo "overlay.sh: warning: deleting leftover namespace $ns" >&2
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
        echo "overlay.sh: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
# The per-path subshell runs in the background (see main) so that a signal
# interrupts the wait at once; stop it and its children before cleaning up.
CHILD=
on_signal() {
    echo "overlay.sh: $1, cleaning up" >&2
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

# listening NS PORT: something listens on TCP PORT in NS.
listening() { [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2") ]]; }

# record PATH WORDS...: a command line of the path's setup (for the JSON).
record() {
    local p=$1
    shift
    echo "$*" >>"$RDIR/$p.cmd"
}

# hosts SHORT: the four namespaces $P-SHORT-{h1,h2,c1,c2} and the underlay:
# a veth pair 'ul0' between h1 and h2 (${UL_ADDR[0]}, ${UL_ADDR[1]}), created
# directly inside the two namespaces. Sets H1 H2 C1 C2.
H1='' H2='' C1='' C2=''
hosts() {
    local s=$1
    H1="$P-$s-h1" H2="$P-$s-h2" C1="$P-$s-c1" C2="$P-$s-c2"
    mk_ns "$H1"
    mk_ns "$H2"
    mk_ns "$C1"
    mk_ns "$C2"
    ip link add ul0 netns "$H1" type veth peer name ul0 netns "$H2"
    ip -n "$H1" addr add "${UL_ADDR[0]}/24" dev ul0
    ip -n "$H2" addr add "${UL_ADDR[1]}/24" dev ul0
    ip -n "$H1" link set ul0 up
    ip -n "$H2" link set ul0 up
    wait_for 5 "the underlay" ip netns exec "$H1" ping -c 1 -W 1 "${UL_ADDR[1]}"
}

# ------------------------------------------------------------- measuring --

# snap PATH TAG: UDP counters (/proc/net/snmp) and the underlay veth's
# counters of both host namespaces, so that each test's share can be
# computed (the VXLAN socket's receive-buffer drops, the bytes on the wire).
snap() {
    local p=$1 tag=$2 h
    for h in 1 2; do
        local ns=$H1
        ((h == 1)) || ns=$H2
        ip netns exec "$ns" cat /proc/net/snmp >"$RDIR/$p.snap-$tag.h$h.snmp"
        ip -n "$ns" -j -s link show dev ul0 >"$RDIR/$p.snap-$tag.h$h.ul0.json"
    done
}

# measure PATH: ping RTT, TCP (once per congestion control) and UDP from C1
# to C2 (${OV_ADDR[1]}); raw outputs land in $RDIR/PATH.{ping,tcp-CC.json,udp.json}.
measure() {
    local p=$1 out="$RDIR/$1" dst=${OV_ADDR[1]}
    ip -n "$C1" -j link show dev eth0 >"$out.c1-link.json"
    local spid
    spid=$(start_bg "$out.iperf3-server.log" ip netns exec "$C2" iperf3 -s -B "$dst" -p "$PORT")
    wait_for 5 "iperf3 server" listening "$C2" "$PORT"

    # Connectivity (also resolves ARP and fills the FDBs on the way). An
    # overlay learns the remote MAC from the first flooded frames, or for
    # weft-gossip from the cluster, so give it time.
    wait_for 20 "$dst to answer ping from $C1" ip netns exec "$C1" ping -c 1 -W 1 "$dst"

    snap "$p" 0
    # Not -q: the per-packet times give the median.
    ip netns exec "$C1" ping -c "$PING_COUNT" -i "$PING_INTERVAL" -W 1 "$dst" >"$out.ping"
    snap "$p" ping

    local t=$((DURATION + OMIT + 15)) cc
    for cc in "${CCS[@]}"; do
        sleep 0.3
        # -C sets the congestion control of the sending (client) socket.
        timeout -k 3 "$t" ip netns exec "$C1" iperf3 -c "$dst" -p "$PORT" --connect-timeout 3000 \
            -C "$cc" -t "$DURATION" -O "$OMIT" -J >"$out.tcp-$cc.json"
        snap "$p" "tcp-$cc"
    done
    sleep 0.3
    timeout -k 3 "$t" ip netns exec "$C1" iperf3 -c "$dst" -p "$PORT" --connect-timeout 3000 \
        -u -l "$UDP_LEN" -b 0 -t "$DURATION" -O "$OMIT" -J >"$out.udp.json"
    snap "$p" udp
    stop_pid "$spid"
}

# ----------------------------------------------------------------- paths --

# path_kernel: in each host namespace a bridge br0 with the vxlan device vx
# (VNI $VNI, local = the host's underlay address, flooding to the other
# host: an all-zero FDB entry) and the host end of a veth pair to the
# container. MTU $OV_MTU on the container's eth0, its host end and vx.
path_kernel() {
    local p=kernel i
    hosts k
    local -a hs=("$H1" "$H2") cs=("$C1" "$C2")
    for i in 0 1; do
        local h=${hs[$i]} c=${cs[$i]} other=${UL_ADDR[$((1 - i))]}
        ip -n "$h" link add br0 type bridge
        ip -n "$h" link set br0 up
        ip -n "$h" link add vx type vxlan id "$VNI" dstport "$VXLAN_PORT" local "${UL_ADDR[$i]}"
        ip netns exec "$h" bridge fdb append 00:00:00:00:00:00 dev vx dst "$other"
        ip -n "$h" link set vx mtu "$OV_MTU"
        ip -n "$h" link set vx master br0 up
        ip -n "$h" link add c0 type veth peer name eth0 netns "$c"
        ip -n "$h" link set c0 mtu "$OV_MTU"
        ip -n "$h" link set c0 master br0 up
        ip -n "$c" link set eth0 mtu "$OV_MTU"
        ip -n "$c" addr add "${OV_ADDR[$i]}/24" dev eth0
        ip -n "$c" link set eth0 up
    done
    record "$p" "ip link add vx type vxlan id $VNI dstport $VXLAN_PORT local HOST_ADDR; ip link set vx mtu $OV_MTU"
    record "$p" "bridge fdb append 00:00:00:00:00:00 dev vx dst OTHER_HOST_ADDR"
    record "$p" "ip link add br0 type bridge; vx and the container's veth (MTU $OV_MTU) enslaved to br0"
    ip netns exec "$H1" ip -d link show dev vx >"$RDIR/$p.vx.txt" 2>&1 || true
    measure "$p"
    local h
    for h in 1 2; do
        local ns=$H1
        ((h == 1)) || ns=$H2
        ip netns exec "$ns" bridge fdb show dev vx >"$RDIR/$p.h$h.fdb" 2>&1 || true
    done
}

weft_sock_or_dead() { [[ -S $1 ]] || ! alive "$2"; }

# weft_daemon PATH N [EXTRA...]: a weft daemon in host namespace N (1 or 2)
# with its own socket and state directory (deleted with the path), VTEP on
# that host's underlay address. Sets WEFT_SOCK[N] and WEFT_PID[N].
WEFT_SOCK=()
WEFT_PID=()
KEYFILE='' # weft-gossip's cluster key (shown as KEYFILE in the recorded commands)
weft_daemon() {
    local p=$1 n=$2 dir pid ns=$H1
    shift 2
    ((n == 1)) || ns=$H2
    dir=$(mktemp -d "$RDIR/weft-$p-h$n.XXXX")
    register dir "$dir"
    mkdir -p "$dir/state"
    WEFT_SOCK[n]="$dir/weft.sock"
    local -a cmd=("$WEFT" --socket "${WEFT_SOCK[n]}" daemon --state-dir "$dir/state"
        --dns-upstream 127.0.0.1:9 --advertise "${UL_ADDR[$((n - 1))]}" "$@" "${DAEMON_EXTRA[@]}")
    local shown="$*"
    [[ -z $KEYFILE ]] || shown=${shown//$KEYFILE/KEYFILE}
    record "$p" "ip netns exec h$n weft --socket SOCK daemon --state-dir DIR --dns-upstream 127.0.0.1:9" \
        "--advertise ${UL_ADDR[$((n - 1))]}${shown:+ $shown}${WEFT_DAEMON_ARGS:+ $WEFT_DAEMON_ARGS}"
    pid=$(start_bg "$RDIR/$p.h$n.daemon.log" ip netns exec "$ns" "${cmd[@]}")
    WEFT_PID[n]=$pid
    if ! wait_for 15 "weft daemon socket ${WEFT_SOCK[n]}" weft_sock_or_dead "${WEFT_SOCK[n]}" "$pid" ||
        ! alive "$pid"; then
        echo "weft daemon on h$n did not come up; its log:" >&2
        tail -n 20 "$RDIR/$p.h$n.daemon.log" >&2
        return 1
    fi
}

wc_() { # wc_ N ARGS...: the weft CLI against daemon N
    local n=$1
    shift
    "$WEFT" --socket "${WEFT_SOCK[n]}" "$@"
}

# weft_connect PATH N: container N on the overlay network, explicit address.
weft_connect() {
    local p=$1 n=$2 c=$C1
    ((n == 1)) || c=$C2
    wc_ "$n" --json connect "$NET" --netns "$c" --name "c$n" --ip "${OV_ADDR[$((n - 1))]}" \
        >"$RDIR/$p.endpoint-c$n.json"
    record "$p" "h$n: weft connect $NET --netns c$n --name c$n --ip ${OV_ADDR[$((n - 1))]}"
    cat "$RDIR/$p.endpoint-c$n.json" >&2
}

# weft_done PATH: save the port, peer and FDB tables of both daemons (JSON)
# and check that both are still alive.
weft_done() {
    local p=$1 n
    for n in 1 2; do
        wc_ "$n" --json ports >"$RDIR/$p.h$n.ports.json" || true
        wc_ "$n" --json peers >"$RDIR/$p.h$n.peers.json" || true
    done
    for n in 1 2; do
        alive "${WEFT_PID[n]}" || {
            echo "weft daemon on h$n died during the run" >&2
            tail -n 20 "$RDIR/$p.h$n.daemon.log" >&2
            return 1
        }
    done
}

# path_weft: static peering. Each daemon creates the overlay network itself
# and is told the other VTEP with 'weft peer add'.
path_weft() {
    local p=weft n
    hosts w
    weft_daemon "$p" 1
    weft_daemon "$p" 2
    for n in 1 2; do
        wc_ "$n" network create "$NET" --driver overlay --vni "$VNI" --subnet "$OV_NET" >&2
        record "$p" "h$n: weft network create $NET --driver overlay --vni $VNI --subnet $OV_NET"
        weft_connect "$p" "$n"
        wc_ "$n" peer add "${UL_ADDR[$((2 - n))]}" --vni "$VNI" >&2
        record "$p" "h$n: weft peer add ${UL_ADDR[$((2 - n))]} --vni $VNI"
    done
    measure "$p"
    weft_done "$p"
}

# has_network N: daemon N knows the overlay network (created on the other
# node and received by gossip).
has_network() {
    wc_ "$1" --json network ls | python3 -c '
import json, sys
sys.exit(0 if any(n.get("name") == sys.argv[1] for n in json.load(sys.stdin)) else 1)' "$NET"
}

# path_weft_gossip: a two-node cluster. h2 joins h1; the network is created
# on h1 only and h2 learns it by gossip; each daemon connects its container
# once it has the network; FDB and flood lists come from the cluster (no
# static peers).
path_weft_gossip() {
    local p=weft-gossip n key
    hosts g
    key=$(mktemp -d "$RDIR/weft-gossip-key.XXXX")
    register dir "$key"
    KEYFILE="$key/cluster.key"
    (umask 077 && "$WEFT" keygen >"$KEYFILE")
    record "$p" "weft keygen > KEYFILE"
    weft_daemon "$p" 1 --cluster-key-file "$KEYFILE"
    weft_daemon "$p" 2 --cluster-key-file "$KEYFILE" --join "${UL_ADDR[0]}"
    wc_ 1 network create "$NET" --driver overlay --vni "$VNI" --subnet "$OV_NET" >&2
    record "$p" "h1: weft network create $NET --driver overlay --vni $VNI --subnet $OV_NET"
    wait_for 20 "the network to reach h2 by gossip" has_network 2
    for n in 1 2; do
        weft_connect "$p" "$n"
    done
    measure "$p"
    for n in 1 2; do
        wc_ "$n" --json cluster >"$RDIR/$p.h$n.cluster.json" || true
    done
    weft_done "$p"
}

run_path() {
    case $1 in
        weft) path_weft ;;
        kernel) path_kernel ;;
        weft-gossip) path_weft_gossip ;;
    esac
}

# ------------------------------------------------------------- reporting --
# One Python program for the per-round line ("line RDIR PATH") and the final
# report and JSON ("report WORK OUT ELAPSED ROUNDS PATH...").
REPORT_PY=$(
    cat <<'PY'
import json, os, platform, re, statistics, subprocess, sys, datetime

E = os.environ
LABELS = {"weft": "weft", "kernel": "kernel vxlan+bridge", "weft-gossip": "weft-gossip"}
WEFT_PATHS = ("weft", "weft-gossip")
BASE = "kernel"
UDP_LEN = int(E["B_UDP_LEN"])
CCS = E["B_CCS"].split()
TESTS = ["ping"] + [f"tcp-{cc}" for cc in CCS] + ["udp"]
STAT_KEYS = ("udp_kpps", "udp_sent_kpps", "rtt_us", "rtt_median_us", "rtt_min_us",
             "udp_loss_pct", "ping_loss_pct")
TCP_KEYS = ("gbps", "retransmits", "rcvbuf_drops")
# A TCP test's bytes (iperf3's measured interval) must have crossed the
# underlay: h1's ul0 sends at least this share of them (in practice well
# over 1: the omitted first second and the headers count too).
MIN_UNDERLAY_SHARE = 0.9

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

def snmp_udp(path):
    """The Udp: counters of /proc/net/snmp as a dict."""
    raw = read(path)
    if not raw:
        return None
    rows = [l.split() for l in raw.splitlines() if l.startswith("Udp:")]
    if len(rows) < 2:
        return None
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}

def ul0(path):
    raw = read(path)
    if not raw:
        return None
    v = json.loads(raw)[0]
    st = v.get("stats64", v.get("stats", {}))
    return {"rx_bytes": st["rx"]["bytes"], "tx_bytes": st["tx"]["bytes"],
            "rx_packets": st["rx"]["packets"], "tx_packets": st["tx"]["packets"]}

def deltas(rdir, p):
    """Per test: UDP receive-buffer drops and in-errors in h1 and h2, and the
    bytes/packets h1's and h2's underlay interface sent."""
    f = lambda tag, h, ext: os.path.join(rdir, f"{p}.snap-{tag}.h{h}.{ext}")
    out, prev = {}, "0"
    for t in TESTS:
        d = {}
        for h in (1, 2):
            a, b = snmp_udp(f(prev, h, "snmp")), snmp_udp(f(t, h, "snmp"))
            if a and b:
                d[f"h{h}_udp_rcvbuf_errors"] = b.get("RcvbufErrors", 0) - a.get("RcvbufErrors", 0)
                d[f"h{h}_udp_in_errors"] = b.get("InErrors", 0) - a.get("InErrors", 0)
            a, b = ul0(f(prev, h, "ul0.json")), ul0(f(t, h, "ul0.json"))
            if a and b:
                d[f"h{h}_ul0_tx_bytes"] = b["tx_bytes"] - a["tx_bytes"]
                d[f"h{h}_ul0_tx_packets"] = b["tx_packets"] - a["tx_packets"]
        if d:
            out[t] = d
        prev = t
    return out

def parse_round(rdir, p):
    f = lambda ext: os.path.join(rdir, p + ext)
    r = {"ok": False}
    load = read(f(".load"))
    if load:
        r["loadavg_1min"] = float(load.split()[0])
    link = read(f(".c1-link.json"))
    if link:
        try:
            r["mtu"] = json.loads(link)[0].get("mtu")
        except (ValueError, IndexError):
            pass
    err = read(f(".error"))
    if err is not None:
        r["error"] = err.strip()
        return r
    try:
        d = deltas(rdir, p)
        r["underlay"] = d
        ping = read(f(".ping")) or ""
        m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", ping)
        loss = re.search(r"([\d.]+)% packet loss", ping)
        times = [float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", ping)]
        r["tcp"] = {}
        for cc in CCS:
            raw = read(f(f".tcp-{cc}.json"))
            if not raw:
                raise ValueError(f"no TCP ({cc}) results")
            tcp = json.loads(raw)
            if "error" in tcp:
                raise ValueError(f"iperf3 tcp ({cc}): {tcp['error']}")
            end = tcp["end"]
            used = end.get("sender_tcp_congestion")
            if used is not None and used != cc:
                raise ValueError(f"iperf3 tcp: asked for {cc}, the sender used {used}")
            sent = end["sum_sent"]["bytes"]
            dd = d.get(f"tcp-{cc}", {})
            wire = dd.get("h1_ul0_tx_bytes")
            if wire is not None and sent and wire < MIN_UNDERLAY_SHARE * sent:
                raise ValueError(f"TCP ({cc}): only {wire / sent:.0%} of iperf3's {sent / 1e6:.0f} MB "
                                 "crossed the underlay: the traffic did not go through the overlay")
            r["tcp"][cc] = {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
                            "retransmits": end["sum_sent"].get("retransmits"),
                            # datagrams the receiving host's UDP sockets dropped
                            # (full receive buffer) during this test
                            "rcvbuf_drops": dd.get("h2_udp_rcvbuf_errors"),
                            "underlay_share": round(wire / sent, 3) if wire is not None and sent else None,
                            "sender_cc": used,
                            "receiver_cc": end.get("receiver_tcp_congestion")}
        raw = read(f(".udp.json"))
        if not raw:
            raise ValueError("no UDP results")
        udp = json.loads(raw)
        if "error" in udp:
            raise ValueError(f"iperf3 udp: {udp['error']}")
        # Server side: what actually arrived (iperf3's packets/lost_packets
        # don't add up with -O; see run.sh).
        u, s = udp["end"]["sum_received"], udp["end"]["sum_sent"]
        r["udp_kpps"] = u["bytes"] / UDP_LEN / u["seconds"] / 1e3
        r["udp_sent_kpps"] = s["bytes"] / UDP_LEN / s["seconds"] / 1e3
        r["udp_loss_pct"] = max(0.0, 100 * (1 - r["udp_kpps"] / r["udp_sent_kpps"]))
        r["udp_rcvbuf_drops"] = d.get("udp", {}).get("h2_udp_rcvbuf_errors")
        if not m:
            raise ValueError("no RTT in ping output: " + ping.strip()[-200:])
        mn, avg, mx, md = (float(x) * 1000 for x in m.groups())
        r.update(rtt_us=avg, rtt_min_us=mn, rtt_max_us=mx, rtt_mdev_us=md,
                 rtt_median_us=statistics.median(times) if times else None,
                 ping_loss_pct=float(loss.group(1)) if loss else None)
        r["ok"] = True
    except Exception as e:  # noqa: BLE001 - report, don't crash the summary
        r["error"] = f"could not parse results: {e}"
    return r

def line(rdir, p):
    r = parse_round(rdir, p)
    if r["ok"]:
        tcp = ", ".join(f"{cc} {r['tcp'][cc]['gbps']:.2f}" for cc in CCS)
        drops = ", ".join(f"{cc} {r['tcp'][cc]['rcvbuf_drops']}" for cc in CCS
                          if r["tcp"][cc].get("rcvbuf_drops"))
        print(f"   TCP {tcp} Gbit/s, UDP {r['udp_kpps']:.1f} kpps "
              f"(sent {r['udp_sent_kpps']:.1f}), RTT avg {r['rtt_us']:.1f} µs, "
              f"median {r['rtt_median_us']:.1f} µs"
              + (f"; underlay UDP receive-buffer drops during TCP: {drops}" if drops else ""))
    else:
        print(f"   FAILED: {r.get('error', '?')[:200]}")
        sys.exit(1)

def summary(vals):
    vals = [v for v in vals if v is not None]
    if vals:
        m = statistics.median(vals)
        return m, {"median": m, "min": min(vals), "max": max(vals), "values": vals}
    return None, None

def first(work, rounds, p, ext):
    for i in range(1, rounds + 1):
        c = read(os.path.join(work, f"r{i}", p + ext))
        if c:
            return c
    return None

def aggregate(work, rounds, p):
    per_round = []
    for i in range(1, rounds + 1):
        r = parse_round(os.path.join(work, f"r{i}"), p)
        per_round.append(dict(round=i, **r))
    ok = [r for r in per_round if r["ok"]]
    res = {"path": p, "label": LABELS[p], "ok": bool(ok),
           "rounds_ok": len(ok), "rounds_total": rounds}
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
    for k in STAT_KEYS + ("udp_rcvbuf_drops",):
        med, st = summary([r.get(k) for r in ok])
        if st:
            res[k], stats[k] = med, st
    res["stats"] = stats
    mtus = sorted({r["mtu"] for r in per_round if r.get("mtu")})
    if mtus:
        res["mtu"] = mtus[0] if len(mtus) == 1 else mtus
    errors = [f"round {r['round']}: {r['error']}" for r in per_round if not r["ok"]]
    if errors:
        res["errors"] = errors
    c = first(work, rounds, p, ".cmd")
    res["commands"] = [l for l in (c or "").splitlines() if l]
    if p in WEFT_PATHS:
        # Tables of both daemons after the last round that has them.
        for i in range(rounds, 0, -1):
            tables = {}
            for h in (1, 2):
                for what in ("ports", "peers", "cluster"):
                    raw = read(os.path.join(work, f"r{i}", f"{p}.h{h}.{what}.json"))
                    try:
                        if raw:
                            tables.setdefault(f"h{h}", {})[what] = json.loads(raw)
                    except ValueError:
                        pass
            if tables:
                res["weft_tables"] = dict(round=i, **tables)
                break
    res["per_round"] = per_round
    return res

def weft_info(orig, copy):
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
    ratio = lambda xv, bv: xv / bv if xv is not None and bv else None
    ratios = {}
    b = results.get(BASE)
    for w in WEFT_PATHS:
        x = results.get(w)
        if not x or not x["ok"] or not b or not b["ok"]:
            continue
        ratios[w] = {"tcp": {cc: ratio(x["tcp"][cc].get("gbps"), b["tcp"][cc].get("gbps")) for cc in CCS},
                     "udp": ratio(x.get("udp_kpps"), b.get("udp_kpps")),
                     "rtt": ratio(x.get("rtt_us"), b.get("rtt_us")),
                     "rtt_median": ratio(x.get("rtt_median_us"), b.get("rtt_median_us"))}
        # rtt > 1 means weft's RTT is longer (worse)

    cpu = None
    for l in (read("/proc/cpuinfo") or "").splitlines():
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    before, after = loadavg(E["B_LOAD_BEFORE"]), loadavg(E["B_LOAD_AFTER"])
    leftovers = [l for l in (read(os.path.join(work, "leftovers")) or "").splitlines() if l]
    doc = {
        "schema": 1,
        "benchmark": "overlay",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": elapsed,
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
                 "loadavg_before": before, "loadavg_after": after,
                 "cpu_busy_pct_before": int(E["B_BUSY_BEFORE"]),
                 "cpu_busy_pct_after": int(E["B_BUSY_AFTER"])},
        "tools": {"iperf3": (cmd("iperf3", "--version") or "").split("\n")[0] or None,
                  "iproute2": cmd("ip", "-V") or None,
                  "weft": weft_info(E["B_WEFT"], E["B_WEFT_COPY"]) if any(p in WEFT_PATHS for p in paths) else None,
                  "weft_git": cmd("git", "-C", E["B_REPO"], "describe", "--always", "--dirty") or None},
        "params": {"rounds": rounds, "order": paths,
                   "duration_s": int(E["B_DURATION"]), "omit_s": int(E["B_OMIT"]),
                   "tcp_congestion_controls": CCS,
                   "udp_payload_bytes": UDP_LEN, "ping_count": int(E["B_PING_COUNT"]),
                   "ping_interval_s": float(E["B_PING_INTERVAL"]),
                   "underlay": E["B_UL_NET"], "overlay": E["B_OV_NET"], "vni": int(E["B_VNI"]),
                   "vxlan_port": int(E["B_VXLAN_PORT"]), "container_mtu": int(E["B_OV_MTU"]),
                   "weft_daemon_args_env": E["B_DAEMON_ARGS"]},
        "tcp_congestion_control": {"machine_default": E["B_CC_DEFAULT"],
                                   "available": E["B_CC_AVAILABLE"].split(),
                                   "measured": CCS,
                                   "skipped": E["B_CC_SKIPPED"].split()},
        "results": list(results.values()),
        # ratios[weft path] = {tcp: {cc: x}, udp, rtt, rtt_median}: weft / kernel
        "ratios": ratios,
        "leftovers_stopped": leftovers,
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, out)

    # Table: label, then per metric "median [min-max]".
    def tcp_stat(cc):
        return lambda r: r["tcp"][cc]["stats"].get("gbps")
    cols = [(f"TCP {cc}", tcp_stat(cc), ".2f") for cc in CCS] + [
        ("UDP kpps", lambda r: r["stats"].get("udp_kpps"), ".1f"),
        ("(sent)", lambda r: r.get("udp_sent_kpps"), ".1f"),  # single value
        ("RTT avg µs", lambda r: r["stats"].get("rtt_us"), ".1f"),
        ("RTT median µs", lambda r: r["stats"].get("rtt_median_us"), ".1f"),
        ("MTU", lambda r: r.get("mtu"), "")]
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
                cells.append((format(s, spec) if not isinstance(s, list) else "/".join(map(str, s)),))
            else:
                cells.append(("-", ""))
        rows.append((LABELS[p], cells + [(f"{r['rounds_ok']}/{rounds}",)]))
    ok_rows = [c for _, c in rows if isinstance(c, list)]
    titles = [t for t, _, _ in cols] + ["rounds"]
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
          f"c1 -> c2 across VXLAN; TCP in Gbit/s, per congestion control (machine default: {E['B_CC_DEFAULT']})")
    print(head)
    for label, c in rows:
        if not isinstance(c, list):
            print(f"{label:<{w0}}  {c}")
            continue
        print("  ".join([f"{label:<{w0}}"] + [fmt(i, cell) for i, cell in enumerate(c)]).rstrip())
    if ratios:
        print()
        print("weft / kernel, ratio of the medians (TCP, UDP: higher is better; RTT: lower is better)")
        x2 = lambda v: "-" if v is None else f"{v:.2f}x"
        for w in WEFT_PATHS:
            if w not in ratios:
                continue
            v = ratios[w]
            tcp = ", ".join(f"{x2(v['tcp'][cc])} ({cc})" for cc in CCS)
            print(f"  {LABELS[w]}: TCP {tcp}; UDP {x2(v['udp'])}; "
                  f"RTT {x2(v['rtt'])} (avg), {x2(v['rtt_median'])} (median)")
    # Datagrams the receiving host's UDP sockets dropped during the TCP tests
    # (for weft: its VXLAN socket's receive buffer overflowed).
    drops = []
    for p in paths:
        r = results[p]
        if not r["ok"]:
            continue
        ds = [(cc, r["tcp"][cc].get("rcvbuf_drops")) for cc in CCS]
        if any(d for _, d in ds):
            drops.append(f"{LABELS[p]}: " + ", ".join(f"{cc} {d:.0f}" for cc, d in ds if d is not None))
    if drops:
        print()
        print("UDP receive-buffer drops on h2 per TCP test (median; the VXLAN socket's queue overflowed): "
              + "; ".join(drops))
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
    B_PING_INTERVAL=$PING_INTERVAL B_WEFT=$WEFT_ORIG B_WEFT_COPY=$WEFT B_REPO=$REPO_ROOT \
    B_DAEMON_ARGS=$WEFT_DAEMON_ARGS B_UL_NET=$UL_NET B_OV_NET=$OV_NET B_VNI=$VNI \
    B_VXLAN_PORT=$VXLAN_PORT B_OV_MTU=$OV_MTU \
    B_CCS="${CCS[*]}" B_CC_DEFAULT=$CC_DEFAULT B_CC_AVAILABLE=$CC_AVAILABLE B_CC_SKIPPED="${CC_SKIPPED[*]:-}"

# cpu_busy_pct: how busy all CPUs are over one second (percent), sampled
# while this script runs nothing.
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
EST=$((((${#CCS[@]} + 1) * (DURATION + OMIT + 1) + 4 + SETTLE) * ${#PATHS[@]} * ROUNDS))
log "weft overlay benchmark: ${ROUNDS} round(s) of: ${PATHS[*]}; ${DURATION}s per test; TCP with ${CCS[*]}" \
    "(machine default: $CC_DEFAULT); about $((EST / 60)) min $((EST % 60)) s"
if [[ -n $WEFT_DAEMON_ARGS ]] && wants_weft; then log "weft daemon extra arguments: $WEFT_DAEMON_ARGS"; fi
log "work dir $WORK"
LOAD_BEFORE=$(cat /proc/loadavg)
BUSY_BEFORE=$(cpu_busy_pct)
if python3 -c "import os,sys; sys.exit(0 if os.getloadavg()[0] > os.cpu_count() / 2 else 1)" ||
    ((BUSY_BEFORE > 20)); then
    echo "overlay.sh: warning: load average ${LOAD_BEFORE%% *} on $(nproc) CPUs, ${BUSY_BEFORE}% CPU busy" \
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
            echo "overlay.sh: path '$p' failed in round $round (exit $rc); last lines of $plog:" >&2
            tail -n 12 "$plog" | sed 's/^/   | /' >&2
            echo "failed (exit $rc): $(grep -v -e '^+' -e '^[[:space:]]*$' "$plog" | tail -n 3 | tr '\n' ' ')" >"$RDIR/$p.error"
        fi
        # (exit status 1 if the round failed, also a failed underlay check)
        python3 -c "$REPORT_PY" line "$RDIR" "$p" || FAILED=1
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
