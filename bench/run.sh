#!/usr/bin/env bash
# weft data-path benchmark: TCP throughput, 64-byte UDP packet rate and ping
# RTT between two network namespaces, through weft (TAP and veth endpoints),
# the Linux kernel bridge, Open vSwitch's userspace (netdev) datapath and a
# direct veth pair. See bench/README.md.
#
#   sudo bench/run.sh [--only tap,veth,bridge,ovs,veth-direct] [--duration N]
#                     [--out FILE] [--install]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

ALL_PATHS="tap,veth,bridge,ovs,veth-direct"
ONLY=$ALL_PATHS
DURATION=5          # seconds measured per iperf3 test (plus 1 s omitted warm-up)
OMIT=1
UDP_LEN=64
PING_COUNT=200
PING_INTERVAL=0.002 # < 10 ms needs root
INSTALL=0
OUT="$SCRIPT_DIR/results/latest.json"
WEFT=${WEFT:-}

# Everything this run creates is named with this prefix.
P="wb$$"
ADDR_A=10.231.0.11
ADDR_B=10.231.0.12
SUBNET=10.231.0.0/24
PORT=5201

usage() {
    cat <<EOF
usage: $0 [--only LIST] [--duration N] [--out FILE] [--install]

Measures TCP throughput (iperf3, 1 stream), 64-byte UDP packet rate
(iperf3 -u -l 64 -b 0, packets received by the server) and ping RTT
between two network namespaces, through each selected path:

  tap          weft, TAP endpoints
  veth         weft, veth endpoints
  bridge       Linux bridge in its own namespace
  ovs          Open vSwitch, userspace datapath (datapath_type=netdev)
  veth-direct  a bare veth pair (ceiling)

  --only LIST     comma-separated paths (default: $ALL_PATHS)
  --duration N    seconds per iperf3 test after a ${OMIT} s omitted warm-up (default: $DURATION)
  --out FILE      JSON results (default: bench/results/latest.json)
  --install       apt-get install the tools first (otherwise nothing is installed)

Environment: WEFT=path to the weft binary (default: target/release/weft,
built with 'cargo build --release -p weft-control' if missing).
Must run as root. Addresses used: $SUBNET, only inside the namespaces.
EOF
}

die() { echo "run.sh: error: $*" >&2; exit 1; }
log() { echo "== $*"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --only) [[ $# -ge 2 ]] || die "--only needs a value"; ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        --duration) [[ $# -ge 2 ]] || die "--duration needs a value"; DURATION=$2; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --install) INSTALL=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 1 && DURATION <= 60)) ||
    die "--duration must be a whole number of seconds in 1..60, got '$DURATION'"

PATHS=()
IFS=, read -r -a _sel <<<"$ONLY"
for p in "${_sel[@]}"; do
    case $p in
        tap | veth | bridge | ovs | veth-direct) ;;
        "") continue ;;
        *) die "unknown path '$p' in --only (choose from $ALL_PATHS)" ;;
    esac
    [[ " ${PATHS[*]:-} " == *" $p "* ]] || PATHS+=("$p")
done
((${#PATHS[@]} > 0)) || die "--only selects no path"

wants() { [[ " ${PATHS[*]} " == *" $1 "* ]]; }

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, ping -i $PING_INTERVAL)"

if ((INSTALL)); then
    log "installing iperf3 iputils-ping openvswitch-switch iproute2 jq"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y iperf3 iputils-ping openvswitch-switch iproute2 jq
fi

need() {
    command -v "$1" >/dev/null 2>&1 ||
        die "'$1' not found (package $2); install it or rerun with --install"
}
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

if wants tap || wants veth; then
    # (grep without -q reads all input: no SIGPIPE to weft under pipefail)
    has_daemon() { [[ -x $1 ]] && "$1" --help 2>&1 | grep -w daemon >/dev/null; }
    if [[ -z $WEFT ]]; then
        WEFT="$REPO_ROOT/target/release/weft"
        if ! has_daemon "$WEFT"; then
            need cargo "rustup/cargo"
            log "building weft (cargo build --release -p weft-control)"
            (cd "$REPO_ROOT" && cargo build --release -p weft-control) ||
                die "building weft failed; pass WEFT=path or leave out tap,veth with --only"
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

# ---------------------------------------------------------------- cleanup --
# Every resource is recorded in $REGISTRY as it is created (also from the
# per-path subshells) and released in reverse order, so cleanup works after
# a failure or a signal at any point.

register() { echo "$*" >>"$REGISTRY"; }

alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $st != Z* ]]
}

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
        netns) ip netns del "$arg" 2>/dev/null || true ;;
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

release_all() {
    [[ -s $REGISTRY ]] || return 0
    local line
    local -a lines f
    mapfile -t lines < <(tac "$REGISTRY")
    : >"$REGISTRY"
    for line in "${lines[@]}"; do
        read -r -a f <<<"$line"
        release "${f[@]}" </dev/null
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    release_all
    # Anything with our prefix that escaped the registry (e.g. killed mid-way).
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do
        ip netns del "$ns" 2>/dev/null
    done
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

mk_ns() {
    ip netns add "$1"
    register netns "$1"
    ip -n "$1" link set lo up
}

# addr_up NS IFNAME ADDR: address and bring up an endpoint interface.
addr_up() {
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$1" link set "$2" up
}

start_bg() { # start_bg LOGFILE CMD...: background process, registered
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 &
    local pid=$!
    disown "$pid"
    register pid "$pid"
    echo "$pid"
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
    local secs=$1 what=$2 i xt=
    shift 2
    # Don't trace each poll.
    [[ $- == *x* ]] && xt=1 && { set +x; } 2>/dev/null
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then
            [[ -n $xt ]] && set -x
            return 0
        fi
        sleep 0.1
    done
    [[ -n $xt ]] && set -x
    echo "timed out after ${secs}s waiting for $what" >&2
    return 1
}

# ------------------------------------------------------------- measuring --

# measure PATH NS_A NS_B: ping RTT, TCP and UDP from NS_A to NS_B
# ($ADDR_B); raw outputs land in $WORK/PATH.{ping,tcp.json,udp.json}.
measure() {
    local path=$1 nsa=$2 nsb=$3 out="$WORK/$1"
    local spid
    spid=$(start_bg "$out.iperf3-server.log" ip netns exec "$nsb" iperf3 -s -B "$ADDR_B" -p "$PORT")
    wait_for 5 "iperf3 server" bash -c "ip netns exec '$nsb' ss -Hltn 'sport = :$PORT' | grep -q ."

    # Connectivity (also resolves ARP and fills the switch's FDB).
    wait_for 10 "$ADDR_B to answer ping from $nsa" \
        ip netns exec "$nsa" ping -c 1 -W 1 "$ADDR_B"

    echo "   ping: $PING_COUNT x ${PING_INTERVAL}s"
    ip netns exec "$nsa" ping -q -c "$PING_COUNT" -i "$PING_INTERVAL" -W 1 "$ADDR_B" >"$out.ping"

    local t=$((DURATION + OMIT + 15))
    echo "   TCP: ${DURATION}s (+${OMIT}s warm-up)"
    timeout "$t" ip netns exec "$nsa" iperf3 -c "$ADDR_B" -p "$PORT" --connect-timeout 3000 \
        -t "$DURATION" -O "$OMIT" -J >"$out.tcp.json"
    sleep 0.3
    echo "   UDP: ${DURATION}s (+${OMIT}s warm-up), ${UDP_LEN}-byte payload, unlimited rate"
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
# before starting ovs-vswitchd whenever this script starts it.
ovs_up() {
    local vlog=/var/log/openvswitch/ovs-vswitchd.log logpos=0 prev
    if ! ovs_running; then
        log "ovs: starting ovsdb-server"
        "$OVS_CTL" start --system-id=random --no-ovs-vswitchd >"$WORK/ovs-ctl.log" 2>&1
        register ovs-stop-all
    fi
    prev=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . other_config:userspace-tso-enable | tr -d '"')
    if [[ $prev != true ]]; then
        ovs-vsctl --timeout=5 --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
        register ovs-tso "${prev:-unset}"
    fi
    if ! vswitchd_running; then
        log "ovs: starting ovs-vswitchd (userspace-tso-enable=true)"
        [[ -f $vlog ]] && logpos=$(wc -c <"$vlog")
        "$OVS_CTL" start --system-id=random --no-ovsdb-server >>"$WORK/ovs-ctl.log" 2>&1
        grep -q '^ovs-stop-all' "$REGISTRY" || register ovs-stop-vswitchd
        if [[ -f $vlog ]] && tail -c +"$((logpos + 1))" "$vlog" | grep -q 'Segmentation Offloading support enabled'; then
            echo "tso=enabled" >"$WORK/ovs.tso"
        else
            echo "tso=unknown" >"$WORK/ovs.tso"
        fi
    elif [[ $prev == true ]]; then
        echo "tso=configured" >"$WORK/ovs.tso"
    else
        echo "run.sh: warning: ovs-vswitchd was already running without userspace-tso-enable;" \
            "it only reads that setting at startup, so OVS runs without TSO here" >&2
        echo "tso=disabled (ovs-vswitchd already running; needs restart)" >"$WORK/ovs.tso"
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
    ovs-ofctl dump-ports "$br" >"$WORK/ovs.ports" 2>&1 || true
}

sock_or_dead() { [[ -S $1 ]] || ! alive "$2"; }

# path_weft KIND: weft daemon with one network and two KIND endpoints.
path_weft() {
    local kind=$1 a="$P-$1-a" b="$P-$1-b" dir="$WORK/weft-$1"
    local sock="$dir/weft.sock" pid
    mkdir -p "$dir/state"
    pid=$(start_bg "$dir/daemon.log" "$WEFT" daemon --socket "$sock" --state-dir "$dir/state")
    if ! wait_for 15 "weft daemon socket $sock" sock_or_dead "$sock" "$pid" || ! alive "$pid"; then
        echo "weft daemon did not come up; its log:" >&2
        tail -n 20 "$dir/daemon.log" >&2
        return 1
    fi
    mk_ns "$a"
    mk_ns "$b"
    # (the CLI's confirmations go to the path log, with the shell trace)
    "$WEFT" --socket "$sock" network create bench --subnet "$SUBNET" >&2
    "$WEFT" --socket "$sock" connect bench --netns "$a" --kind "$kind" --ip "$ADDR_A" --name a >&2
    "$WEFT" --socket "$sock" connect bench --netns "$b" --kind "$kind" --ip "$ADDR_B" --name b >&2
    measure "$kind" "$a" "$b"
    "$WEFT" --socket "$sock" --json ports >"$WORK/$kind.ports.json" || true
    alive "$pid" || { echo "weft daemon died during the run" >&2; tail -n 20 "$dir/daemon.log" >&2; return 1; }
}

run_path() {
    case $1 in
        tap | veth) path_weft "$1" ;;
        bridge) path_bridge ;;
        ovs) path_ovs ;;
        veth-direct) path_veth_direct ;;
    esac
}

# ------------------------------------------------------------------ main --

log "weft benchmark: paths ${PATHS[*]}; ${DURATION}s per test; work dir $WORK"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
if python3 -c "import os,sys; sys.exit(0 if os.getloadavg()[0] > os.cpu_count() / 2 else 1)"; then
    echo "run.sh: warning: load average $LOAD_BEFORE on $(nproc) CPUs; other work will skew the figures" >&2
fi
START=$(date +%s)
for p in "${PATHS[@]}"; do
    log "$p"
    plog="$WORK/$p.log"
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
        echo "run.sh: path '$p' failed (exit $rc); last lines of $plog:" >&2
        tail -n 12 "$plog" | sed 's/^/   | /' >&2
        echo "failed (exit $rc): $(grep -v '^+' "$plog" | tail -n 3 | tr '\n' ' ')" >"$WORK/$p.error"
    fi
done
ELAPSED=$(($(date +%s) - START))

mkdir -p "$(dirname "$OUT")"
B_DURATION=$DURATION B_OMIT=$OMIT B_UDP_LEN=$UDP_LEN B_PING_COUNT=$PING_COUNT \
    B_PING_INTERVAL=$PING_INTERVAL B_SUBNET=$SUBNET B_WEFT=$WEFT B_REPO=$REPO_ROOT \
    B_LOAD_BEFORE=$LOAD_BEFORE \
    python3 - "$WORK" "$OUT" "$ELAPSED" "${PATHS[@]}" <<'PY'
import json, os, platform, re, subprocess, sys, datetime

work, out, elapsed, paths = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
NAMES = {"tap": "weft-tap", "veth": "weft-veth", "bridge": "kernel-bridge",
         "ovs": "ovs-netdev", "veth-direct": "veth-direct"}
E = os.environ
params = {"duration_s": int(E["B_DURATION"]), "omit_s": int(E["B_OMIT"]),
          "udp_payload_bytes": int(E["B_UDP_LEN"]), "ping_count": int(E["B_PING_COUNT"]),
          "ping_interval_s": float(E["B_PING_INTERVAL"]), "subnet": E["B_SUBNET"]}

def read(p):
    try:
        with open(os.path.join(work, p)) as f:
            return f.read()
    except OSError:
        return None

def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None

def parse(p):
    r = {"path": NAMES[p], "ok": False}
    err = read(p + ".error")
    if err:
        r["error"] = err.strip()
        return r
    try:
        ping = read(p + ".ping") or ""
        m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", ping)
        loss = re.search(r"([\d.]+)% packet loss", ping)
        tcp = json.loads(read(p + ".tcp.json"))
        udp = json.loads(read(p + ".udp.json"))
        for name, j in (("tcp", tcp), ("udp", udp)):
            if "error" in j:
                raise ValueError(f"iperf3 {name}: {j['error']}")
        rx = tcp["end"]["sum_received"]
        r["tcp_gbps"] = rx["bits_per_second"] / 1e9
        r["tcp_retransmits"] = tcp["end"]["sum_sent"].get("retransmits")
        # Server side: what actually arrived. iperf3's own "packets" and
        # "lost_packets" don't add up with -O (the server's omit window is
        # not the client's; lost can exceed packets), so count the payload
        # bytes the server read in its measured interval.
        u, s = udp["end"]["sum_received"], udp["end"]["sum_sent"]
        udp_len = int(E["B_UDP_LEN"])
        r["udp_kpps"] = u["bytes"] / udp_len / u["seconds"] / 1e3
        r["udp_sent_kpps"] = s["bytes"] / udp_len / s["seconds"] / 1e3
        r["udp_loss_pct"] = max(0.0, 100 * (1 - r["udp_kpps"] / r["udp_sent_kpps"]))
        if not m:
            raise ValueError("no RTT in ping output: " + ping.strip()[-200:])
        mn, avg, mx, md = (float(x) * 1000 for x in m.groups())
        r.update(rtt_us=avg, rtt_min_us=mn, rtt_max_us=mx, rtt_mdev_us=md,
                 ping_loss_pct=float(loss.group(1)) if loss else None)
        r["ok"] = True
    except Exception as e:  # noqa: BLE001 - report, don't crash the summary
        r["error"] = f"could not parse results: {e}"
    ports = read(p + ".ports.json")
    if ports:
        try:
            r["weft_ports"] = json.loads(ports)
        except ValueError:
            pass
    if p == "ovs":
        tso = read("ovs.tso")
        if tso:
            r["ovs_userspace_tso"] = tso.strip().removeprefix("tso=")
    return r

results = [parse(p) for p in paths]
by = {r["path"]: r for r in results if r["ok"]}

ratios = {}
for w in ("weft-tap", "weft-veth"):
    if w not in by:
        continue
    for base in ("kernel-bridge", "ovs-netdev"):
        if base not in by:
            continue
        b, x = by[base], by[w]
        ratios.setdefault(w, {})[base] = {
            "tcp": x["tcp_gbps"] / b["tcp_gbps"] if b["tcp_gbps"] else None,
            "udp": x["udp_kpps"] / b["udp_kpps"] if b["udp_kpps"] else None,
            # > 1 means weft's RTT is longer (worse).
            "rtt": x["rtt_us"] / b["rtt_us"] if b["rtt_us"] else None,
        }

cpu = None
try:
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
except OSError:
    pass
weft = E.get("B_WEFT") if any(p in ("tap", "veth") for p in paths) else None
doc = {
    "schema": 1,
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "elapsed_s": elapsed,
    "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
             "loadavg_1min_before": float(E["B_LOAD_BEFORE"])},
    "tools": {"iperf3": (cmd("iperf3", "--version") or "").split("\n")[0] or None,
              "ovs": (cmd("ovs-vsctl", "--version") or "").split("\n")[0] or None,
              "weft": weft or None,
              "weft_git": cmd("git", "-C", E["B_REPO"], "describe", "--always", "--dirty") or None},
    "params": params,
    "results": results,
    "ratios": ratios,
}
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
os.replace(tmp, out)

def fmt(v, spec):
    return format(v, spec) if v is not None else "-"

print()
print(f"{'path':<14} {'TCP Gbit/s':>10} {'UDP kpps':>9} {'(sent)':>8} {'RTT µs':>8}")
for r in results:
    if r["ok"]:
        print(f"{r['path']:<14} {r['tcp_gbps']:>10.2f} {r['udp_kpps']:>9.1f} "
              f"{r['udp_sent_kpps']:>8.1f} {r['rtt_us']:>8.1f}")
    else:
        print(f"{r['path']:<14} FAILED: {r.get('error', '?')[:100]}")
if ratios:
    print()
    print("weft vs. baselines (TCP, UDP: higher is better; RTT: lower is better)")
    for w, bases in ratios.items():
        for metric in ("tcp", "udp", "rtt"):
            parts = ", ".join(f"{fmt(v[metric], '.2f')}x {b}" for b, v in bases.items())
            print(f"  {w:<10} {metric.upper():<4} {parts}")
print()
print(f"results: {out} ({elapsed} s)")
PY

((FAILED == 0)) || exit 1
