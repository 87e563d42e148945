#!/usr/bin/env bash
# weft proxy-NAT benchmark: single-stream TCP throughput (iperf3) from a
# container to an outside server through weft's proxy NAT, and from the host
# into a container through a published port, in both directions, beside the
# same paths through slirp4netns and pasta and a direct veth (the kernel's
# ceiling). Every path is measured --rounds times, interleaved, and the
# medians and the ratios weft/slirp4netns and weft/pasta are reported. See
# bench/README.md ("NAT benchmark").
#
#   sudo bench/nat.sh [--only weft-out,weft-in,slirp4netns-out,slirp4netns-in,pasta-out,pasta-in,pasta-in-tap,direct]
#                     [--rounds N] [--duration N] [--out FILE] [--install]
#   WEFT=/path/to/weft WEFT_DAEMON_ARGS="--workers 2" sudo -E bench/nat.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

ALL_PATHS="weft-out,weft-in,slirp4netns-out,slirp4netns-in,pasta-out,pasta-in,pasta-in-tap,direct"
DEFAULT_PATHS=$ALL_PATHS
ONLY=$DEFAULT_PATHS
ROUNDS=3      # every selected path is measured this many times, interleaved
DURATION=4    # seconds measured per iperf3 test (plus OMIT s left out at the start)
OMIT=1
SETTLE=1      # seconds of quiet between two paths (netns teardown is asynchronous)
INSTALL=0
OUT="$SCRIPT_DIR/results/nat-latest.json"
WEFT=${WEFT:-}
WEFT_DAEMON_ARGS=${WEFT_DAEMON_ARGS:-}
WEFT_NETWORK_ARGS=${WEFT_NETWORK_ARGS:-}
USER_MTU=65520 # slirp4netns and pasta: the largest MTU both document (their fastest setting)

# Everything this run creates is named with this prefix.
P="wn$$"
# The outside: a namespace joined to the host by a veth pair.
HOST_ADDR=10.232.0.1     # host end
OUTSIDE_ADDR=10.232.0.2  # namespace end; iperf3 -s binds here
OUTSIDE_NET=10.232.0.0/29
# The container's network (inside the container namespace only).
C_SUBNET=10.233.0.0/24
C_GW=10.233.0.1          # weft's gateway (the network's first address), pasta's gateway
C_ADDR=10.233.0.2        # weft's first endpoint, pasta's address
SLIRP_ADDR=10.233.0.100  # slirp4netns --cidr 10.233.0.0/24: guest .100, gateway .2, DNS .3
PORT=5201                # iperf3 port in the outside and in the container

usage() {
    cat <<EOF
usage: $0 [--only LIST] [--rounds N] [--duration N] [--out FILE] [--install]

Measures single-stream TCP throughput (iperf3, Gbit/s received) through
user-mode networking, each path in both directions (NAME: the client sends,
NAME-rev: iperf3 -R, the server sends):

  weft-out         container -> outside server through weft's proxy NAT
  weft-in          host -> container through 'weft publish 127.0.0.1:H:$PORT'
  slirp4netns-out  container -> outside server through slirp4netns
  slirp4netns-in   host -> container through a slirp4netns hostfwd on 127.0.0.1:H
  pasta-out        container -> outside server through pasta
  pasta-in         host -> container through 'pasta -t 127.0.0.1/H:$PORT'
                   (pasta splices loopback connections: no tap, no TCP/IP stack)
  pasta-in-tap     the same forward on $HOST_ADDR/H, client connects to $HOST_ADDR:H:
                   not loopback, so pasta carries it through its tap
  direct           host -> outside server over the veth (the kernel's ceiling)

The outside is a namespace joined to the host by a veth pair ($HOST_ADDR and
$OUTSIDE_ADDR, /29) running iperf3 -s; the container is a namespace attached
by the tool under test. The whole list is run N times in the same order;
each path gets a fresh topology every round. The report gives per direction
the median over the rounds and the ratios weft/slirp4netns and weft/pasta.

  --only LIST     comma-separated paths (default: all of them); NAME-rev is
                  measured with NAME
  --rounds N      rounds (default: $ROUNDS)
  --duration N    seconds per iperf3 test after a ${OMIT} s omitted warm-up (default: $DURATION)
  --out FILE      JSON results (default: bench/results/nat-latest.json)
  --install       apt-get install iperf3 slirp4netns passt first (otherwise nothing is installed)

Environment:
  WEFT=path               the weft binary (default: target/release/weft; not built here)
  WEFT_DAEMON_ARGS=ARGS   extra arguments for 'weft daemon', split on whitespace
  WEFT_NETWORK_ARGS=ARGS  extra arguments for 'weft network create' (e.g. --mtu 9000)
Must run as root. Addresses used: $OUTSIDE_NET (host end of the veth and
the outside namespace), $C_SUBNET (inside the container namespace) and
loopback.
EOF
}

die() { echo "nat.sh: error: $*" >&2; exit 1; }
log() { echo "== $*"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --only) [[ $# -ge 2 ]] || die "--only needs a value"; ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --duration) [[ $# -ge 2 ]] || die "--duration needs a value"; DURATION=$2; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
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
    p=${p%-rev}
    case ",$ALL_PATHS," in
        *",$p,"*) ;;
        *) die "unknown path '$p' in --only (choose from $ALL_PATHS)" ;;
    esac
    [[ " ${PATHS[*]:-} " == *" $p "* ]] || PATHS+=("$p")
done
((${#PATHS[@]} > 0)) || die "--only selects no path"

wants() { [[ " ${PATHS[*]} " == *" $1"* ]]; } # wants PREFIX: a path starting with it

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, veth pairs, weft daemon)"

if ((INSTALL)); then
    log "installing iperf3 slirp4netns passt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y iperf3 slirp4netns passt
fi

need ip iproute2
need ss iproute2
need iperf3 iperf3
need python3 python3
need timeout coreutils
wants slirp4netns && need slirp4netns slirp4netns
wants pasta && need pasta passt

if wants weft; then
    # (grep without -q reads all input: no SIGPIPE to weft under pipefail)
    has_cmds() { [[ -x $1 ]] && "$1" --help 2>&1 | grep -w daemon >/dev/null && "$1" --help 2>&1 | grep -w publish >/dev/null; }
    [[ -n $WEFT ]] || WEFT="$REPO_ROOT/target/release/weft"
    [[ -x $WEFT ]] || die "weft binary '$WEFT' not found; build it (cargo build --release -p weft-control)," \
        "pass WEFT=path, or leave out weft-out,weft-in with --only"
    has_cmds "$WEFT" || die "$WEFT has no 'daemon' or 'publish' command; rebuild it (cargo build --release -p weft-control)"
fi

# The outside's addresses must be free in the host namespace (another run of
# this script, or anything else, would make the results meaningless).
if [[ -n $(ip -4 -o addr show to "$OUTSIDE_NET" 2>/dev/null) || -n $(ip -4 route show root "$OUTSIDE_NET" 2>/dev/null) ]]; then
    die "$OUTSIDE_NET is already in use in the host namespace (another nat.sh run?):" \
        "$(ip -4 -o addr show to "$OUTSIDE_NET" | awk '{print $2, $4}' | tr '\n' ' ')$(ip -4 route show root "$OUTSIDE_NET" | tr '\n' ' ')"
fi
if [[ -n $(ip -4 route show root "$C_SUBNET" 2>/dev/null) ]]; then
    echo "nat.sh: warning: the host namespace has a route into $C_SUBNET; the containers' addresses" \
        "don't leave their namespaces, but check: $(ip -4 route show root "$C_SUBNET" | tr '\n' ' ')" >&2
fi

WORK=$(mktemp -d "/tmp/weft-nat.$P.XXXXXX")
REGISTRY="$WORK/created"
: >"$REGISTRY"
FAILED=0
RDIR="$WORK" # per-round output directory, set in main

# Measure a private copy of weft, so that a rebuild of target/ while the
# rounds run can't mix two binaries in one report.
WEFT_ORIG=$WEFT
if wants weft; then
    cp -p "$WEFT" "$WORK/weft"
    WEFT="$WORK/weft"
fi
read -r -a DAEMON_EXTRA <<<"$WEFT_DAEMON_ARGS"
read -r -a NETWORK_EXTRA <<<"$WEFT_NETWORK_ARGS"

# Every process this script starts (directly, through ip netns exec, or
# slirp4netns/pasta/weft themselves) inherits this variable; that is how
# leftovers are found.
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
    echo "nat.sh: pid $pid ignored SIGTERM, killing" >&2
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
        link) ip link del "$arg" 2>/dev/null || true ;;
        dir) rm -rf "$arg" ;;
        *) echo "nat.sh: unknown registry entry '$kind $arg'" >&2 ;;
    esac
}

# quiesce: make sure nothing from this script is left before the next path
# is measured (and at exit): release the registry, stop stray processes of
# this run, delete stray namespaces and links with our prefix.
quiesce() {
    local strays pid ns l
    release_all
    strays=$(list_strays) || strays=
    for pid in $strays; do
        echo "nat.sh: warning: stopping leftover process of this run: $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >&2
        echo "process $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >>"$WORK/leftovers"
        stop_pid "$pid"
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
        echo "nat.sh: warning: deleting leftover namespace $ns" >&2
        echo "netns $ns" >>"$WORK/leftovers"
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
    for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$P" || true); do
        echo "nat.sh: warning: deleting leftover link $l" >&2
        echo "link $l" >>"$WORK/leftovers"
        ip link del "$l" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    quiesce
    if ((rc != 0 || FAILED)); then
        echo "nat.sh: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
# The per-path subshell runs in the background (see main) so that a signal
# interrupts the wait at once; stop it and its children before cleaning up.
CHILD=
on_signal() {
    echo "nat.sh: $1, cleaning up" >&2
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

# in_ns NS CMD...: CMD in namespace NS, or in the host namespace if NS is empty.
in_ns() {
    local ns=$1
    shift
    if [[ -n $ns ]]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# tcp_ok NS ADDR PORT: a TCP connection to ADDR:PORT from NS succeeds.
tcp_ok() {
    in_ns "$1" python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$2" "$3"
}

# listening NS PORT: something listens on TCP PORT in NS.
listening() { [[ -n $(in_ns "$1" ss -Hltn "sport = :$2") ]]; }

# has_addr NS IF ADDR: IF in NS has IPv4 address ADDR and is up.
has_addr() { ip -n "$1" -4 -o addr show dev "$2" up 2>/dev/null | grep " $3/" >/dev/null; }

# free_port ADDR: a TCP port nothing is bound to on ADDR (the kernel's choice).
free_port() {
    python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# outside SHORT: the outside namespace $P-SHORT-o (its name in OUT_NS),
# joined to the host by the veth pair ${P}SHORT (host end, $HOST_ADDR) / eth0
# ($OUTSIDE_ADDR). (Functions that create things set globals rather than
# print: errexit does not reach into a command substitution.)
OUT_NS=
outside() {
    local ns="$P-$1-o" host="${P}$1"
    mk_ns "$ns"
    ip link add "$host" type veth peer name eth0 netns "$ns"
    register link "$host"
    ip addr add "$HOST_ADDR/29" dev "$host"
    ip link set "$host" up
    ip -n "$ns" addr add "$OUTSIDE_ADDR/29" dev eth0
    ip -n "$ns" link set eth0 up
    OUT_NS=$ns
}

# outside_server NS PATH: iperf3 -s on $OUTSIDE_ADDR:$PORT in NS, listening when returned.
outside_server() {
    start_bg "$RDIR/$2.server.log" ip netns exec "$1" iperf3 -s -B "$OUTSIDE_ADDR" -p "$PORT" >/dev/null
    wait_for 5 "iperf3 server in $1" listening "$1" "$PORT"
}

# container_server NS PATH: iperf3 -s on port $PORT (all addresses) in NS.
container_server() {
    start_bg "$RDIR/$2.server.log" ip netns exec "$1" iperf3 -s -p "$PORT" >/dev/null
    wait_for 5 "iperf3 server in $1" listening "$1" "$PORT"
}

# record PATH WORDS...: the command line a tool under test was started with.
record() {
    local p=$1
    shift
    echo "$*" >>"$RDIR/$p.cmd"
}

# ------------------------------------------------------------- measuring --

# measure PATH CLIENT_NS ADDR PORT IF_NS IF: iperf3 from CLIENT_NS (empty:
# the host) to ADDR:PORT, once as is (PATH.fwd) and once with -R (PATH.rev).
# Around each test the counters of interface IF in IF_NS (empty: the host)
# are saved, to check that the traffic crossed the tool's interface. Raw
# outputs go to $RDIR/PATH.{fwd,rev}.{json,if0,if1}; a failed test leaves
# $RDIR/PATH.DIR.error and the other one still runs.
measure() {
    local p=$1 cns=$2 addr=$3 port=$4 ifns=$5 ifname=$6
    local t=$((DURATION + OMIT + 15)) dir rc
    local -a ipn=() pre=()
    [[ -z $ifns ]] || ipn=(-n "$ifns")
    [[ -z $cns ]] || pre=(ip netns exec "$cns")
    wait_for 10 "$addr:$port to accept a TCP connection" tcp_ok "$cns" "$addr" "$port"
    ip "${ipn[@]}" -j link show dev "$ifname" >"$RDIR/$p.link.json"
    for dir in fwd rev; do
        local -a rflag=()
        [[ $dir == fwd ]] || rflag=(-R)
        ip "${ipn[@]}" -j -s link show dev "$ifname" >"$RDIR/$p.$dir.if0"
        rc=0
        timeout -k 3 "$t" "${pre[@]}" iperf3 -c "$addr" -p "$port" --connect-timeout 3000 \
            -t "$DURATION" -O "$OMIT" -J "${rflag[@]}" >"$RDIR/$p.$dir.json" || rc=$?
        ip "${ipn[@]}" -j -s link show dev "$ifname" >"$RDIR/$p.$dir.if1" || true
        if ((rc != 0)); then
            echo "iperf3 exit $rc$( ((rc == 124)) && echo ' (timed out)')" >"$RDIR/$p.$dir.error"
            echo "$p $dir: iperf3 failed (exit $rc)" >&2
        fi
        sleep 0.3
    done
}

# ----------------------------------------------------------------- paths --

# weft_up PATH SHORT C_NS: a weft daemon (own socket and state directory)
# with the network 'nat' ($C_SUBNET) and the endpoint 'c' in C_NS. Sets
# WEFT_SOCK.
WEFT_SOCK=
weft_up() {
    local p=$1 short=$2 cns=$3 dir pid
    dir=$(mktemp -d "$RDIR/weft-$short.XXXX")
    register dir "$dir/state"
    mkdir -p "$dir/state"
    WEFT_SOCK="$dir/weft.sock"
    local -a cmd=("$WEFT" --socket "$WEFT_SOCK" daemon --state-dir "$dir/state" --dns-upstream 127.0.0.1:9 "${DAEMON_EXTRA[@]}")
    record "$p" "weft --socket SOCK daemon --state-dir DIR --dns-upstream 127.0.0.1:9${WEFT_DAEMON_ARGS:+ $WEFT_DAEMON_ARGS}"
    pid=$(start_bg "$RDIR/$p.daemon.log" "${cmd[@]}")
    echo "$pid" >"$RDIR/$p.daemon.pid"
    if ! wait_for 15 "weft daemon socket $WEFT_SOCK" weft_sock_or_dead "$WEFT_SOCK" "$pid" || ! alive "$pid"; then
        echo "weft daemon did not come up; its log:" >&2
        tail -n 20 "$RDIR/$p.daemon.log" >&2
        return 1
    fi
    # (the CLI's confirmations go to the path log, with the shell trace)
    "$WEFT" --socket "$WEFT_SOCK" network create nat --subnet "$C_SUBNET" "${NETWORK_EXTRA[@]}" >&2
    record "$p" "weft network create nat --subnet $C_SUBNET${WEFT_NETWORK_ARGS:+ $WEFT_NETWORK_ARGS}"
    "$WEFT" --socket "$WEFT_SOCK" --json connect nat --netns "$cns" --name c >"$RDIR/$p.endpoint.json"
    record "$p" "weft connect nat --netns NS --name c"
    cat "$RDIR/$p.endpoint.json" >&2
    wait_for 5 "eth0 in $cns" has_addr "$cns" eth0 "$C_ADDR"
}
weft_sock_or_dead() { [[ -S $1 ]] || ! alive "$2"; }

weft_down() { # weft_down PATH: save the port counters, check the daemon is still alive
    local p=$1
    "$WEFT" --socket "$WEFT_SOCK" --json ports >"$RDIR/$p.ports.json" || true
    alive "$(cat "$RDIR/$p.daemon.pid")" || {
        echo "weft daemon died during the run" >&2
        tail -n 20 "$RDIR/$p.daemon.log" >&2
        return 1
    }
}

path_weft_out() {
    local c="$P-wo-c"
    outside wo
    outside_server "$OUT_NS" weft-out
    mk_ns "$c"
    weft_up weft-out wo "$c"
    measure weft-out "$c" "$OUTSIDE_ADDR" "$PORT" "$c" eth0
    weft_down weft-out
}

path_weft_in() {
    local c="$P-wi-c" h i
    outside wi
    mk_ns "$c"
    weft_up weft-in wi "$c"
    container_server "$c" weft-in
    # Another program may take the port between free_port and the daemon's bind.
    for i in 1 2 3; do
        h=$(free_port 127.0.0.1)
        "$WEFT" --socket "$WEFT_SOCK" --json publish c "127.0.0.1:$h:$PORT" >"$RDIR/weft-in.publish.json" && break
        h=
    done
    [[ -n $h ]] || { echo "weft publish failed 3 times" >&2; return 1; }
    record weft-in "weft publish c 127.0.0.1:H:$PORT"
    wait_for 5 "weft to listen on 127.0.0.1:$h" listening "" "$h"
    measure weft-in "" 127.0.0.1 "$h" "$c" eth0
    weft_down weft-in
}

# slirp_up PATH C_NS: slirp4netns on C_NS with its API socket (path in SLIRP_SOCK).
SLIRP_SOCK=
slirp_up() {
    local p=$1 cns=$2 pid sock="$RDIR/$1.slirp.sock"
    local -a cmd=(slirp4netns --configure "--mtu=$USER_MTU" "--cidr=$C_SUBNET" --disable-dns
        --netns-type=path --api-socket "$sock" "/run/netns/$cns" tap0)
    record "$p" "slirp4netns --configure --mtu=$USER_MTU --cidr=$C_SUBNET --disable-dns --netns-type=path --api-socket SOCK /run/netns/NS tap0"
    pid=$(start_bg "$RDIR/$p.slirp4netns.log" "${cmd[@]}")
    wait_for 10 "slirp4netns to configure tap0 in $cns" has_addr "$cns" tap0 "$SLIRP_ADDR" || {
        tail -n 20 "$RDIR/$p.slirp4netns.log" >&2
        return 1
    }
    wait_for 5 "slirp4netns API socket" test -S "$sock"
    alive "$pid" || { echo "slirp4netns exited" >&2; tail -n 20 "$RDIR/$p.slirp4netns.log" >&2; return 1; }
    SLIRP_SOCK=$sock
}

# slirp_api SOCK JSON: one request to the slirp4netns API; fails unless it returns.
slirp_api() {
    python3 - "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    reply += b
print(reply.decode())
if "return" not in json.loads(reply):
    sys.exit("slirp4netns API: " + reply.decode())
PY
}

path_slirp_out() {
    local c="$P-so-c"
    outside so
    outside_server "$OUT_NS" slirp4netns-out
    mk_ns "$c"
    slirp_up slirp4netns-out "$c"
    measure slirp4netns-out "$c" "$OUTSIDE_ADDR" "$PORT" "$c" tap0
}

path_slirp_in() {
    local c="$P-si-c" h req
    outside si
    mk_ns "$c"
    slirp_up slirp4netns-in "$c"
    container_server "$c" slirp4netns-in
    h=$(free_port 127.0.0.1)
    req='{"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": '$h', "guest_port": '$PORT'}}'
    slirp_api "$SLIRP_SOCK" "$req" >"$RDIR/slirp4netns-in.hostfwd.json"
    record slirp4netns-in "api: ${req/$h/H}"
    wait_for 5 "slirp4netns to listen on 127.0.0.1:$h" listening "" "$h"
    measure slirp4netns-in "" 127.0.0.1 "$h" "$c" tap0
}

# pasta_up PATH C_NS TCP_SPEC [SHOWN]: pasta on C_NS; -t TCP_SPEC ('none' for
# the outbound paths; SHOWN: the spec as recorded, with the port as H). --runas 0: as root, pasta otherwise switches to 'nobody'
# and then can't enter the namespace ("Couldn't switch to pasta namespaces").
pasta_up() {
    local p=$1 cns=$2 spec=$3 shown=${4:-$3} pid
    local -a cmd=(pasta -f --runas 0 -4 -I eth0 --config-net -m "$USER_MTU"
        -a "$C_ADDR" -n 24 -g "$C_GW" -t "$spec" -u none -T none -U none
        -l "$RDIR/$p.pasta.log" --netns "/run/netns/$cns")
    record "$p" "pasta -f --runas 0 -4 -I eth0 --config-net -m $USER_MTU -a $C_ADDR -n 24 -g $C_GW -t $shown -u none -T none -U none -l LOG --netns /run/netns/NS"
    pid=$(start_bg "$RDIR/$p.pasta.out" "${cmd[@]}")
    wait_for 10 "pasta to configure eth0 in $cns" has_addr "$cns" eth0 "$C_ADDR" || {
        tail -n 20 "$RDIR/$p.pasta.out" "$RDIR/$p.pasta.log" >&2
        return 1
    }
    alive "$pid" || { echo "pasta exited" >&2; tail -n 20 "$RDIR/$p.pasta.out" >&2; return 1; }
}

path_pasta_out() {
    local c="$P-po-c"
    outside po
    outside_server "$OUT_NS" pasta-out
    mk_ns "$c"
    pasta_up pasta-out "$c" none
    measure pasta-out "$c" "$OUTSIDE_ADDR" "$PORT" "$c" eth0
}

# path_pasta_in PATH SHORT ADDR: pasta forwards ADDR:H (host) to port $PORT in
# the container; the host's iperf3 connects to ADDR:H.
path_pasta_in() {
    local p=$1 c="$P-$2-c" addr=$3 h
    outside "$2"
    mk_ns "$c"
    h=$(free_port "$addr")
    pasta_up "$p" "$c" "$addr/$h:$PORT" "$addr/H:$PORT"
    container_server "$c" "$p"
    wait_for 5 "pasta to listen on $addr:$h" listening "" "$h"
    measure "$p" "" "$addr" "$h" "$c" eth0
}

path_direct() {
    outside d
    outside_server "$OUT_NS" direct
    measure direct "" "$OUTSIDE_ADDR" "$PORT" "" "${P}d"
}

run_path() {
    case $1 in
        weft-out) path_weft_out ;;
        weft-in) path_weft_in ;;
        slirp4netns-out) path_slirp_out ;;
        slirp4netns-in) path_slirp_in ;;
        pasta-out) path_pasta_out ;;
        pasta-in) path_pasta_in pasta-in pi 127.0.0.1 ;;
        pasta-in-tap) path_pasta_in pasta-in-tap pt "$HOST_ADDR" ;;
        direct) path_direct ;;
    esac
}

# ------------------------------------------------------------- reporting --
# One Python program for the per-round line ("line RDIR PATH") and the final
# report and JSON ("report WORK OUT ELAPSED ROUNDS PATH...").
REPORT_PY=$(
    cat <<'PY'
import json, os, platform, statistics, subprocess, sys, datetime

E = os.environ
DIRS = (("fwd", ""), ("rev", "-rev"))
# Which counter of the tool's interface (in the container; for direct the
# host end of the veth) must carry the data, per direction: the sender's
# side. None: not checked (pasta splices loopback connections, no tap).
IFACE = {"weft-out": ("tx", "rx"), "weft-in": ("rx", "tx"),
         "slirp4netns-out": ("tx", "rx"), "slirp4netns-in": ("rx", "tx"),
         "pasta-out": ("tx", "rx"), "pasta-in": None, "pasta-in-tap": ("rx", "tx"),
         "direct": ("tx", "rx")}
# Share of iperf3's measured bytes that must have crossed that counter. The
# counter also sees the omitted first second and the headers, so a path
# that carries the traffic shows well over 1.
MIN_IFACE_SHARE = 0.9
TOOL = {"weft-out": "weft", "weft-in": "weft", "slirp4netns-out": "slirp4netns",
        "slirp4netns-in": "slirp4netns", "pasta-out": "pasta", "pasta-in": "pasta",
        "pasta-in-tap": "pasta", "direct": "kernel (veth)"}

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

def iface(path):
    """(name, mtu, rx_bytes, tx_bytes) from `ip -j -s link show dev IF`."""
    raw = read(path)
    if not raw:
        return None
    v = json.loads(raw)[0]
    st = v.get("stats64", v.get("stats", {}))
    return v.get("ifname"), v.get("mtu"), st["rx"]["bytes"], st["tx"]["bytes"]

def parse_test(rdir, p, d, i):
    f = lambda ext: os.path.join(rdir, f"{p}{ext}")
    r = {"ok": False}
    err = read(f(".error"))
    if err is not None:  # the path's setup failed
        r["error"] = err.strip()
        return r
    try:
        raw = read(f(f".{d}.json"))
        j = json.loads(raw) if raw else None
        if j and "error" in j:
            raise ValueError(f"iperf3: {j['error']}")
        derr = read(f(f".{d}.error"))
        if derr is not None or not j:
            raise ValueError((derr or "no iperf3 output").strip())
        end = j["end"]
        sent = end["sum_sent"]["bytes"]
        r.update(gbps=end["sum_received"]["bits_per_second"] / 1e9,
                 retransmits=end["sum_sent"].get("retransmits"),
                 bytes=end["sum_received"]["bytes"],
                 sender_cc=end.get("sender_tcp_congestion"),
                 receiver_cc=end.get("receiver_tcp_congestion"))
        a, b = iface(f(f".{d}.if0")), iface(f(f".{d}.if1"))
        if a and b:
            rx, tx = b[2] - a[2], b[3] - a[3]
            chk = IFACE.get(p)
            info = {"name": a[0], "mtu": a[1], "rx_bytes": rx, "tx_bytes": tx}
            if chk:
                c = chk[i]
                share = (rx if c == "rx" else tx) / sent if sent else 0
                info.update(counter=c, share_of_iperf3_bytes=round(share, 3))
                if share < MIN_IFACE_SHARE:
                    raise ValueError(
                        f"only {share:.0%} of iperf3's {sent / 1e6:.0f} MB crossed {a[0]} ({c}): "
                        f"the traffic did not go through {TOOL[p]}")
            else:
                info["note"] = "loopback connection spliced by pasta; not through its tap"
            r["iface"] = info
        elif IFACE.get(p):
            raise ValueError("no interface counters")
        r["ok"] = True
    except Exception as e:  # noqa: BLE001 - report, don't crash the summary
        r["error"] = str(e) if str(e) else repr(e)
    return r

def fmt_test(r):
    if not r["ok"]:
        return "FAILED: " + r.get("error", "?")[:160]
    return f"{r['gbps']:.2f} Gbit/s (retr {r['retransmits']})"

def line(rdir, p):
    parts, ok = [], True
    for i, (d, suffix) in enumerate(DIRS):
        r = parse_test(rdir, p, d, i)
        ok &= r["ok"]
        parts.append(f"{p}{suffix} {fmt_test(r)}")
    print("   " + "; ".join(parts))
    sys.exit(0 if ok else 1)

def summary(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals}

def aggregate(work, rounds, p, i, d, suffix):
    per_round = []
    for n in range(1, rounds + 1):
        rdir = os.path.join(work, f"r{n}")
        r = parse_test(rdir, p, d, i)
        load = read(os.path.join(rdir, p + ".load"))
        if load:
            r["loadavg_1min"] = float(load.split()[0])
        per_round.append(dict(round=n, **r))
    ok = [r for r in per_round if r["ok"]]
    name = p + suffix
    res = {"path": name, "topology": p, "direction": d, "tool": TOOL[p], "ok": bool(ok),
           "rounds_ok": len(ok), "rounds_total": rounds}
    stats = {}
    for k in ("gbps", "retransmits"):
        s = summary([r.get(k) for r in ok])
        if s:
            res[k], stats[k] = s["median"], s
    res["stats"] = stats
    mtus = sorted({r["iface"]["mtu"] for r in ok if r.get("iface", {}).get("mtu")})
    if mtus:
        res["mtu"] = mtus[0] if len(mtus) == 1 else mtus
    errors = [f"round {r['round']}: {r['error']}" for r in per_round if not r["ok"]]
    if errors:
        res["errors"] = errors
    if p.startswith("weft"):
        # `weft --json ports` of the last round that has it (after both directions).
        for n in range(rounds, 0, -1):
            ports = read(os.path.join(work, f"r{n}", p + ".ports.json"))
            if ports:
                try:
                    res["weft_ports"] = {"round": n, "ports": json.loads(ports)}
                    break
                except ValueError:
                    pass
    res["per_round"] = per_round
    return res

def commands(work, rounds, p):
    for n in range(1, rounds + 1):
        c = read(os.path.join(work, f"r{n}", p + ".cmd"))
        if c:
            return [l for l in c.splitlines() if l]
    return []

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
    results = {}
    for p in paths:
        for i, (d, suffix) in enumerate(DIRS):
            results[p + suffix] = aggregate(work, rounds, p, i, d, suffix)
    med = lambda name: results[name]["gbps"] if name in results and results[name]["ok"] else None
    ratio = lambda a, b: (med(a) / med(b)) if med(a) is not None and med(b) else None
    # ratios["weft/slirp4netns"]["out-rev"] = weft-out-rev / slirp4netns-out-rev
    ratios = {}
    for base, label in (("slirp4netns", "weft/slirp4netns"), ("pasta", "weft/pasta")):
        row = {}
        for k in ("out", "out-rev", "in", "in-rev"):
            top, _, rev = k.partition("-")
            v = ratio(f"weft-{k}", f"{base}-{top}{'-rev' if rev else ''}")
            if v is not None:
                row[k] = v
        if row:
            ratios[label] = row
    row = {k: v for k in ("in", "in-rev")
           if (v := ratio(f"weft-{k}", "pasta-in-tap" + ("-rev" if k.endswith("rev") else ""))) is not None}
    if row:
        ratios["weft/pasta-in-tap"] = row
    of_direct = {}
    for name, r in results.items():
        if r["topology"] != "direct":
            v = ratio(name, "direct" + ("-rev" if r["direction"] == "rev" else ""))
            if v is not None:
                r["of_direct"] = of_direct[name] = v

    cpu = None
    for l in (read("/proc/cpuinfo") or "").splitlines():
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    before, after = loadavg(E["B_LOAD_BEFORE"]), loadavg(E["B_LOAD_AFTER"])
    leftovers = [l for l in (read(os.path.join(work, "leftovers")) or "").splitlines() if l]
    slirp_v = (cmd("slirp4netns", "--version") or "").splitlines()
    doc = {
        "schema": 1,
        "benchmark": "nat",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": elapsed,
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
                 "loadavg_before": before, "loadavg_after": after,
                 "cpu_busy_pct_before": int(E["B_BUSY_BEFORE"]),
                 "cpu_busy_pct_after": int(E["B_BUSY_AFTER"])},
        "tools": {"iperf3": (cmd("iperf3", "--version") or "").split("\n")[0] or None,
                  "slirp4netns": " / ".join(l for l in slirp_v if l.startswith(("slirp4netns", "libslirp"))) or None,
                  "pasta": ("passt " + v) if (v := cmd("dpkg-query", "-W", "-f", "${Version}", "passt")) else None,
                  "weft": weft_info(E["B_WEFT"], E["B_WEFT_COPY"]) if any(p.startswith("weft") for p in paths) else None,
                  "weft_git": cmd("git", "-C", E["B_REPO"], "describe", "--always", "--dirty") or None},
        "params": {"rounds": rounds, "order": paths, "duration_s": int(E["B_DURATION"]),
                   "omit_s": int(E["B_OMIT"]), "streams": 1,
                   "tcp_congestion_control": E["B_CC"],
                   "outside": {"host": E["B_HOST_ADDR"], "server": E["B_OUTSIDE_ADDR"], "net": E["B_OUTSIDE_NET"]},
                   "container_subnet": E["B_C_SUBNET"], "user_mode_mtu": int(E["B_USER_MTU"]),
                   "weft_daemon_args_env": E["B_DAEMON_ARGS"], "weft_network_args_env": E["B_NETWORK_ARGS"]},
        "commands": {p: commands(work, rounds, p) for p in paths},
        "results": list(results.values()),
        "ratios": ratios,
        "of_direct": of_direct,
        "leftovers_stopped": leftovers,
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, out)

    # Table: one row per direction.
    rows = []
    for name, r in results.items():
        if not r["ok"]:
            rows.append((name, None, "FAILED: " + r.get("errors", ["?"])[0][:110]))
            continue
        g, t = r["stats"]["gbps"], r["stats"].get("retransmits")
        rows.append((name, [f"{g['median']:.2f}", f"[{g['min']:.2f}-{g['max']:.2f}]",
                            "-" if not t else f"{t['median']:.0f}",
                            f"{r['of_direct']:.2f}" if r.get("of_direct") is not None else "-",
                            str(r.get("mtu", "-")), f"{r['rounds_ok']}/{rounds}"], None))
    w0 = max(len("path"), *(len(n) for n, _, _ in rows))
    heads = ["Gbit/s", "[min-max]", "retr", "/direct", "MTU", "rounds"]
    ws = [max([len(h)] + [len(c[k]) for _, c, _ in rows if c]) for k, h in enumerate(heads)]
    print()
    print(f"median of {rounds} round{'s' if rounds != 1 else ''}, [min-max] over the rounds; one TCP "
          f"stream, {E['B_DURATION']} s per test; TCP congestion control {E['B_CC']} (machine default)")
    print(f"{'path':<{w0}}  " + "  ".join(f"{h:>{ws[k]}}" if k != 1 else f"{h:<{ws[k]}}"
                                         for k, h in enumerate(heads)))
    for name, c, fail in rows:
        if c is None:
            print(f"{name:<{w0}}  {fail}")
        else:
            print(f"{name:<{w0}}  " + "  ".join(f"{v:>{ws[k]}}" if k != 1 else f"{v:<{ws[k]}}"
                                                for k, v in enumerate(c)))
    if ratios:
        print()
        print("weft vs. slirp4netns and pasta, ratio of the medians (above 1: weft is faster)")
        cols = ("out", "out-rev", "in", "in-rev")
        wl = max(len(k) for k in ratios)
        print(f"  {'':<{wl}}  " + "  ".join(f"{c:>7}" for c in cols))
        def rfmt(v):
            # Against a path that stalled, the ratio is just large.
            return ">100x" if v >= 100 else f"{v:.2f}x"
        for label, row in ratios.items():
            print(f"  {label:<{wl}}  " + "  ".join(
                f"{rfmt(row[c]) if c in row else '-':>7}" for c in cols))
        if "weft/pasta" in ratios and any(k.startswith("in") for k in ratios["weft/pasta"]):
            print("  (pasta-in: pasta splices loopback connections between two sockets, no tap;"
                  " pasta-in-tap goes through its tap)")
    stalled = [n for n, r in results.items() if r["ok"] and r["gbps"] < 0.1]
    if stalled:
        print()
        print(f"stalled (median below 0.1 Gbit/s): {', '.join(stalled)}; ratios against them mean little"
              " (see bench/README.md)")
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
B_CC=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)
export B_DURATION=$DURATION B_OMIT=$OMIT B_WEFT=$WEFT_ORIG B_WEFT_COPY=$WEFT B_REPO=$REPO_ROOT \
    B_HOST_ADDR=$HOST_ADDR B_OUTSIDE_ADDR=$OUTSIDE_ADDR B_OUTSIDE_NET=$OUTSIDE_NET B_C_SUBNET=$C_SUBNET \
    B_USER_MTU=$USER_MTU B_DAEMON_ARGS=$WEFT_DAEMON_ARGS B_NETWORK_ARGS=$WEFT_NETWORK_ARGS B_CC

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

# Rough time per path and round: setup, two tests, teardown.
EST=$(((2 * (DURATION + OMIT + 1) + 3 + SETTLE) * ${#PATHS[@]} * ROUNDS))
log "weft NAT benchmark: ${ROUNDS} round(s) of: ${PATHS[*]}; ${DURATION}s per test, both directions;" \
    "about $((EST / 60)) min $((EST % 60)) s"
[[ -z $WEFT_DAEMON_ARGS ]] || log "weft daemon extra arguments: $WEFT_DAEMON_ARGS"
[[ -z $WEFT_NETWORK_ARGS ]] || log "weft network extra arguments: $WEFT_NETWORK_ARGS"
log "work dir $WORK"
LOAD_BEFORE=$(cat /proc/loadavg)
BUSY_BEFORE=$(cpu_busy_pct)
if python3 -c "import os,sys; sys.exit(0 if os.getloadavg()[0] > os.cpu_count() / 2 else 1)" ||
    ((BUSY_BEFORE > 20)); then
    echo "nat.sh: warning: load average ${LOAD_BEFORE%% *} on $(nproc) CPUs, ${BUSY_BEFORE}% CPU busy" \
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
            echo "nat.sh: path '$p' failed in round $round (exit $rc); last lines of $plog:" >&2
            tail -n 12 "$plog" | sed 's/^/   | /' >&2
            echo "failed (exit $rc): $(grep -v -e '^+' -e '^[[:space:]]*$' "$plog" | tail -n 3 | tr '\n' ' ')" >"$RDIR/$p.error"
        fi
        # (exit status 1 if a direction failed, also a failed interface check)
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
