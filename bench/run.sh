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
#                     [--weft-b PATH]
#   WEFT_DAEMON_ARGS="--busy-poll-us 0" sudo -E bench/run.sh
#   WEFT=old/weft WEFT_B=new/weft sudo -E bench/run.sh --only tap,bridge
set -euo pipefail

# shellcheck source=bench/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

ALL_PATHS="tap,veth,bridge,ovs,veth-direct,tap-spin"
DEFAULT_PATHS="tap,veth,bridge,ovs,veth-direct"
WEFT_PATHS="tap veth tap-spin"
SPIN_US=0           # --busy-poll-us of the tap-spin path (0: never spin; the default is 5000)
HAS_CC=1
WEFT_BUILD=1
OUT="$HARNESS_DIR/results/latest.json"
WORK_TAG=bench
INSTALL_PKGS=(iperf3 iputils-ping openvswitch-switch iproute2 jq)
ROOT_WHY="network namespaces, ping -i $PING_INTERVAL"

# Everything this run creates is named with this prefix.
P="wb$$"
ADDR_A=10.231.0.11
ADDR_B=10.231.0.12
SUBNET=10.231.0.0/24

usage() {
    cat <<EOF
$(usage_synopsis)

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
$(usage_options)
  --out FILE      JSON results (default: bench/results/latest.json)
  --install       apt-get install the tools first (otherwise nothing is installed)

$(usage_env)
Must run as root. Addresses used: $SUBNET, only inside the namespaces.
EOF
}

parse_args "$@"

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
    warn "tap-spin uses --busy-poll-us $SPIN_US instead of the one in WEFT_DAEMON_ARGS"
fi

prepare
need ping iputils-ping
if wants ovs; then
    need ovs-vsctl openvswitch-switch
    need ovs-appctl openvswitch-switch
    OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
    [[ -x $OVS_CTL ]] || die "$OVS_CTL not found (package openvswitch-switch)"
fi

start_run

# The registry kinds of the OVS path.
release_more() {
    local kind=$1 arg=${2:-}
    case $kind in
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
        *) echo "$ME: unknown registry entry '$*'" >&2 ;;
    esac
}

# addr_up NS IFNAME ADDR: address and bring up an endpoint interface.
addr_up() {
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$1" link set "$2" up
}

# ----------------------------------------------------------------- paths --
# Each path connects namespaces A ($ADDR_A) and B ($ADDR_B); measure_l3
# measures from A to B.

path_veth_direct() {
    local a="$P-vd-a" b="$P-vd-b"
    mk_ns "$a"
    mk_ns "$b"
    ip -n "$a" link add eth0 type veth peer name eth0 netns "$b"
    addr_up "$a" eth0 "$ADDR_A"
    addr_up "$b" eth0 "$ADDR_B"
    measure_l3 veth-direct "$a" "$b" "$ADDR_B"
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
    measure_l3 bridge "$a" "$b" "$ADDR_B"
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
        warn "ovs-vswitchd was already running without userspace-tso-enable;" \
            "it only reads that setting at startup, so OVS runs without TSO here"
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
    measure_l3 ovs "$a" "$b" "$ADDR_B"
    ovs-ofctl dump-ports "$br" >"$RDIR/ovs.ports" 2>&1 || true
}

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
    start_weft "weft daemon" "$dir/daemon.log" "$sock" \
        "$WEFT" daemon --socket "$sock" --state-dir "$dir/state" "${args[@]}"
    pid=$WEFT_DAEMON_PID
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
    measure_l3 "$name" "$a" "$b" "$ADDR_B"
    "$WEFT" --socket "$sock" --json ports >"$RDIR/$name.ports.json" || true
    weft_alive "weft daemon" "$pid" "$dir/daemon.log"
}

run_path() {
    case $1 in
        tap) path_weft "$2" tap "tap$SFX" "${DAEMON_EXTRA[@]}" ;;
        veth) path_weft "$2" veth "veth$SFX" "${DAEMON_EXTRA[@]}" ;;
        tap-spin) path_weft "$2" tap "tsp$SFX" --busy-poll-us "$SPIN_US" "${SPIN_EXTRA[@]}" ;;
        bridge) path_bridge ;;
        ovs) path_ovs ;;
        veth-direct) path_veth_direct ;;
    esac
}

# ------------------------------------------------------------- reporting --
# The per-round line ("line RDIR PATH") and the final report and JSON
# ("report WORK OUT ELAPSED ROUNDS PATH..."); the shared parts are in
# harness.py.
REPORT_PY=$(
    cat <<'PY'
import os
from harness import *  # noqa: F403 - E, CCS, read, cmd, l3_*, aggregate, ...

SPIN_MS = int(E["B_SPIN_US"]) / 1000
NAMES = with_twins({"tap": "weft-tap", "veth": "weft-veth", "bridge": "kernel-bridge",
                    "ovs": "ovs-netdev", "veth-direct": "veth-direct", "tap-spin": "weft-tap-spin"})
LABELS = with_twins(dict(NAMES, **{"tap-spin": f"weft-tap (busy-poll {SPIN_MS:g} ms)"}))
WEFT_PATHS = weft_paths()  # tap, tap-b (with WEFT_B), veth, ...
BASES = (("bridge", "kernel bridge"), ("ovs", "OVS"))
# Per-round figures summarised over the rounds (median, min, max, values);
# TCP's, per congestion control, are under "tcp".
STAT_KEYS = ("udp_kpps", "udp_sent_kpps", "rtt_us", "rtt_min_us",
             "udp_loss_pct", "ping_loss_pct")
TCP_KEYS = ("gbps", "retransmits")

def bases(w):
    """What weft path w is compared with: a twin NAME-b first with NAME."""
    a = twin_of(w)
    return ((a, NAMES[a]),) + BASES if a else BASES

def line(rdir, p):
    l3_line(l3_round(rdir, p), lambda r: f"{r['rtt_us']:.1f} µs")

def aggregate_path(work, rounds, p):
    res, per_round = aggregate(work, rounds, p, l3_round, {"path": NAMES[p], "label": LABELS[p]},
                               STAT_KEYS, TCP_KEYS)
    if p in WEFT_PATHS:
        args = first_text(work, rounds, p + ".daemon-args")
        if args is not None:
            res["daemon_args"] = [a for a in args.split("\n") if a]
        # Port counters of the last round that has them.
        i, ports = last_json(work, rounds, p + ".ports.json")
        if i:
            res["weft_ports"] = {"round": i, "ports": ports}
    if p == "ovs":
        tso = sorted({t.strip().removeprefix("tso=") for i in range(1, rounds + 1)
                      if (t := read(os.path.join(work, f"r{i}", "ovs.tso")))})
        if tso:
            res["ovs_userspace_tso"] = ", ".join(tso)
    res["per_round"] = per_round
    return res

def report(work, out, elapsed, rounds, paths):
    results = {p: aggregate_path(work, rounds, p) for p in paths}
    # ratios[weft path][baseline]; a twin NAME-b also against NAME
    ratios = {}
    for w in WEFT_PATHS:
        x = results.get(w)
        if not x or not x["ok"]:
            continue
        for base, _ in bases(w):
            b = results.get(base)
            if not b or not b["ok"]:
                continue
            ratios.setdefault(NAMES[w], {})[NAMES[base]] = l3_ratios(x, b)

    left = leftovers(work)
    doc = doc_head(3, elapsed, one_min=True)
    doc.update({
        "tools": {"iperf3": first_line(cmd("iperf3", "--version")),
                  "ovs": first_line(cmd("ovs-vsctl", "--version")),
                  **weft_tools(any(p in WEFT_PATHS for p in paths))},
        "params": {"rounds": rounds, "order": [NAMES[p] for p in paths],
                   "duration_s": int(E["B_DURATION"]), "omit_s": int(E["B_OMIT"]),
                   "tcp_congestion_controls": CCS,
                   "udp_payload_bytes": UDP_LEN, "ping_count": int(E["B_PING_COUNT"]),
                   "ping_interval_s": float(E["B_PING_INTERVAL"]), "subnet": E["B_SUBNET"],
                   "weft_daemon_args_env": E["B_DAEMON_ARGS"],
                   "tap_spin_busy_poll_us": int(E["B_SPIN_US"])},
        "tcp_congestion_control": cc_doc(),
        "results": list(results.values()),
        "ratios": ratios,
        "leftovers_stopped": left,
    })
    write_json(doc, out)

    median_table(f"median of {rounds} round{'s' if rounds != 1 else ''}, [min-max] over the rounds; "
                 f"TCP in Gbit/s, per congestion control (machine default: {E['B_CC_DEFAULT']})",
                 [(LABELS[p], results[p]) for p in paths], l3_cols(), rounds)
    if ratios:
        print()
        print("weft vs. baselines, ratio of the medians (TCP, UDP: higher is better; RTT: lower is better)")
        x2 = lambda v: "-" if v is None else f"{v:.2f}"
        for w in WEFT_PATHS:
            if NAMES[w] not in ratios:
                continue
            by_base = ratios[NAMES[w]]
            tcp, udp, rtt = [], [], []
            for base, label in bases(w):
                v = by_base.get(NAMES[base])
                if not v:
                    continue
                tcp += [f"{x2(v['tcp'][cc])}x {label} ({cc})" if i == 0 else f"{x2(v['tcp'][cc])}x ({cc})"
                        for i, cc in enumerate(CCS)]
                udp.append(f"{x2(v['udp'])}x {label}")
                rtt.append(f"{x2(v['rtt'])}x {label}")
            print(f"  {LABELS[w]}: TCP " + ", ".join(tcp) + "; UDP " + ", ".join(udp)
                  + "; RTT " + ", ".join(rtt))
    footer(out, elapsed, left)

main(line, report)
PY
)
export B_SUBNET=$SUBNET B_SPIN_US=$SPIN_US

# Rough time per path and round: setup, ping, TCP and UDP, teardown.
run_all "weft benchmark" $(((${#CCS[@]} + 1) * (DURATION + OMIT) + 3))
