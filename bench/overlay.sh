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
#                         [--duration N] [--cc LIST] [--out FILE] [--install] [--weft-b PATH]
#   WEFT=/path/to/weft WEFT_DAEMON_ARGS="--workers 2" sudo -E bench/overlay.sh
set -euo pipefail

# shellcheck source=bench/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

ALL_PATHS="weft,kernel,weft-gossip"
DEFAULT_PATHS="weft,kernel,weft-gossip"
WEFT_PATHS="weft weft-gossip"
HAS_CC=1
PING_WAIT=20        # an overlay learns the remote MAC from the first flooded frames, or for weft-gossip from the cluster
OUT="$HARNESS_DIR/results/overlay-latest.json"
WORK_TAG=overlay
INSTALL_PKGS=(iperf3 iputils-ping iproute2)
ROOT_WHY="network namespaces, weft daemons, ping -i $PING_INTERVAL"

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

usage() {
    cat <<EOF
$(usage_synopsis)

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
$(usage_options)
  --out FILE      JSON results (default: bench/results/overlay-latest.json)
  --install       apt-get install ${INSTALL_PKGS[*]} first (otherwise nothing is installed)

$(usage_env)
Must run as root. Nothing is created in the host's own namespace.
EOF
}

parse_args "$@"
WEFT_CMDS="daemon peer"
if wants weft-gossip; then WEFT_CMDS+=" keygen"; fi
prepare
need bridge iproute2
need ping iputils-ping
start_run
read -r -a DAEMON_EXTRA <<<"$WEFT_DAEMON_ARGS"

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

# on_test PATH TAG (called by measure_l3 around the tests): UDP counters
# (/proc/net/snmp) and the underlay veth's counters of both host
# namespaces, so that each test's share can be computed (the VXLAN
# socket's receive-buffer drops, the bytes on the wire).
on_test() {
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
    ip -n "$C1" -j link show dev eth0 >"$RDIR/$1.c1-link.json"
    measure_l3 "$1" "$C1" "$C2" "${OV_ADDR[1]}"
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

# weft_daemon PATH N [EXTRA...]: a weft daemon in host namespace N (1 or 2)
# with its own socket and state directory (deleted with the path), VTEP on
# that host's underlay address. Sets WEFT_SOCK[N] and WEFT_PID[N].
WEFT_SOCK=()
WEFT_PID=()
KEYFILE='' # weft-gossip's cluster key (shown as KEYFILE in the recorded commands)
weft_daemon() {
    local p=$1 n=$2 dir ns=$H1
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
    start_weft "weft daemon on h$n" "$RDIR/$p.h$n.daemon.log" "${WEFT_SOCK[n]}" ip netns exec "$ns" "${cmd[@]}"
    WEFT_PID[n]=$WEFT_DAEMON_PID
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
        weft_alive "weft daemon on h$n" "${WEFT_PID[n]}" "$RDIR/$p.h$n.daemon.log"
    done
}

# path_weft NAME: static peering. Each daemon creates the overlay network
# itself and is told the other VTEP with 'weft peer add'.
path_weft() {
    local p=$1 n
    hosts "w$SFX"
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

# path_weft_gossip NAME: a two-node cluster. h2 joins h1; the network is
# created on h1 only and h2 learns it by gossip; each daemon connects its
# container once it has the network; FDB and flood lists come from the
# cluster (no static peers).
path_weft_gossip() {
    local p=$1 n key
    hosts "g$SFX"
    key=$(mktemp -d "$RDIR/$p-key.XXXX")
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
        weft) path_weft "$2" ;;
        kernel) path_kernel ;;
        weft-gossip) path_weft_gossip "$2" ;;
    esac
}

# ------------------------------------------------------------- reporting --
# The per-round line ("line RDIR PATH") and the final report and JSON
# ("report WORK OUT ELAPSED ROUNDS PATH..."); the shared parts are in
# harness.py.
REPORT_PY=$(
    cat <<'PY'
import json, os
from harness import *  # noqa: F403 - E, CCS, read, cmd, l3_*, aggregate, ...

LABELS = with_twins({"weft": "weft", "kernel": "kernel vxlan+bridge", "weft-gossip": "weft-gossip"})
WEFT_PATHS = weft_paths()  # weft, weft-b (with WEFT_B), weft-gossip, ...
BASE = "kernel"
TESTS = ["ping"] + [f"tcp-{cc}" for cc in CCS] + ["udp"]
STAT_KEYS = ("udp_kpps", "udp_sent_kpps", "rtt_us", "rtt_median_us", "rtt_min_us",
             "udp_loss_pct", "ping_loss_pct", "udp_rcvbuf_drops")
TCP_KEYS = ("gbps", "retransmits", "rcvbuf_drops")
# A TCP test's bytes (iperf3's measured interval) must have crossed the
# underlay: h1's ul0 sends at least this share of them (in practice well
# over 1: the omitted first second and the headers count too).
MIN_UNDERLAY_SHARE = 0.9

def snmp_udp(path):
    """The Udp: counters of /proc/net/snmp as a dict."""
    raw = read(path)
    if not raw:
        return None
    rows = [l.split() for l in raw.splitlines() if l.startswith("Udp:")]
    if len(rows) < 2:
        return None
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}

def deltas(rf):
    """Per test: UDP receive-buffer drops and in-errors in h1 and h2, and the
    bytes/packets h1's and h2's underlay interface sent (rf: the round's file
    of an extension)."""
    f = lambda tag, h, ext: rf(f".snap-{tag}.h{h}.{ext}")
    out, prev = {}, "0"
    for t in TESTS:
        d = {}
        for h in (1, 2):
            a, b = snmp_udp(f(prev, h, "snmp")), snmp_udp(f(t, h, "snmp"))
            if a and b:
                d[f"h{h}_udp_rcvbuf_errors"] = b.get("RcvbufErrors", 0) - a.get("RcvbufErrors", 0)
                d[f"h{h}_udp_in_errors"] = b.get("InErrors", 0) - a.get("InErrors", 0)
            a, b = link_stats(f(prev, h, "ul0.json")), link_stats(f(t, h, "ul0.json"))
            if a and b:
                d[f"h{h}_ul0_tx_bytes"] = b["tx_bytes"] - a["tx_bytes"]
                d[f"h{h}_ul0_tx_packets"] = b["tx_packets"] - a["tx_packets"]
        if d:
            out[t] = d
        prev = t
    return out

def underlay(f, r, ends):
    """(l3_round's extra) The counters of each test; a TCP test must have
    crossed the underlay."""
    d = r["underlay"] = deltas(f)
    for cc, end in ends.items():
        sent = end["sum_sent"]["bytes"]
        dd = d.get(f"tcp-{cc}", {})
        wire = dd.get("h1_ul0_tx_bytes")
        if wire is not None and sent and wire < MIN_UNDERLAY_SHARE * sent:
            raise ValueError(f"TCP ({cc}): only {wire / sent:.0%} of iperf3's {sent / 1e6:.0f} MB "
                             "crossed the underlay: the traffic did not go through the overlay")
        # datagrams the receiving host's UDP sockets dropped (full receive
        # buffer) during this test
        r["tcp"][cc]["rcvbuf_drops"] = dd.get("h2_udp_rcvbuf_errors")
        r["tcp"][cc]["underlay_share"] = round(wire / sent, 3) if wire is not None and sent else None
    r["udp_rcvbuf_drops"] = d.get("udp", {}).get("h2_udp_rcvbuf_errors")

def parse_round(rdir, p):
    r = l3_round(rdir, p, underlay, median=True)
    link = link_stats(os.path.join(rdir, p + ".c1-link.json"))
    if link:
        r["mtu"] = link["mtu"]
    return r

def line(rdir, p):
    def drops(r):
        d = ", ".join(f"{cc} {r['tcp'][cc]['rcvbuf_drops']}" for cc in CCS if r["tcp"][cc].get("rcvbuf_drops"))
        return f"; underlay UDP receive-buffer drops during TCP: {d}" if d else ""
    l3_line(parse_round(rdir, p), lambda r: f"avg {r['rtt_us']:.1f} µs, median {r['rtt_median_us']:.1f} µs",
            drops)

def aggregate_path(work, rounds, p):
    res, per_round = aggregate(work, rounds, p, parse_round, {"path": p, "label": LABELS[p]},
                               STAT_KEYS, TCP_KEYS)
    mtus = sorted({r["mtu"] for r in per_round if r.get("mtu")})
    if mtus:
        res["mtu"] = mtus[0] if len(mtus) == 1 else mtus
    res["commands"] = [l for l in (first_text(work, rounds, p + ".cmd") or "").splitlines() if l]
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

def report(work, out, elapsed, rounds, paths):
    results = {p: aggregate_path(work, rounds, p) for p in paths}
    good = lambda p: results.get(p) if results.get(p) and results[p]["ok"] else None
    # ratios[weft path] = weft / kernel; ratios_b[NAME-b] = NAME-b / NAME (WEFT_B)
    ratios, ratios_b = {}, {}
    for w in WEFT_PATHS:
        x, a = good(w), twin_of(w)
        if x and good(BASE):
            ratios[w] = l3_ratios(x, good(BASE), median=True)
        if x and a and good(a):
            ratios_b[w] = l3_ratios(x, good(a), median=True)

    left = leftovers(work)
    doc = doc_head(1, elapsed, "overlay")
    doc.update({
        "tools": {"iperf3": first_line(cmd("iperf3", "--version")),
                  "iproute2": cmd("ip", "-V") or None,
                  **weft_tools(any(p in WEFT_PATHS for p in paths))},
        "params": {"rounds": rounds, "order": paths,
                   "duration_s": int(E["B_DURATION"]), "omit_s": int(E["B_OMIT"]),
                   "tcp_congestion_controls": CCS,
                   "udp_payload_bytes": UDP_LEN, "ping_count": int(E["B_PING_COUNT"]),
                   "ping_interval_s": float(E["B_PING_INTERVAL"]),
                   "underlay": E["B_UL_NET"], "overlay": E["B_OV_NET"], "vni": int(E["B_VNI"]),
                   "vxlan_port": int(E["B_VXLAN_PORT"]), "container_mtu": int(E["B_OV_MTU"]),
                   "weft_daemon_args_env": E["B_DAEMON_ARGS"]},
        "tcp_congestion_control": cc_doc(),
        "results": list(results.values()),
        # ratios[weft path] = {tcp: {cc: x}, udp, rtt, rtt_median}: weft / kernel
        "ratios": ratios,
    })
    if HAS_B:
        doc["ratios_b"] = ratios_b  # the same, NAME-b / NAME
    doc["leftovers_stopped"] = left
    write_json(doc, out)

    cols = l3_cols() + [
        ("RTT median µs", lambda r: r["stats"].get("rtt_median_us"), ".1f"),
        ("MTU", lambda r: r.get("mtu"), "")]
    median_table(f"median of {rounds} round{'s' if rounds != 1 else ''}, [min-max] over the rounds; "
                 f"c1 -> c2 across VXLAN; TCP in Gbit/s, per congestion control (machine default: {E['B_CC_DEFAULT']})",
                 [(LABELS[p], results[p]) for p in paths], cols, rounds)
    x2 = lambda v: "-" if v is None else f"{v:.2f}x"
    def fmt(v):
        tcp = ", ".join(f"{x2(v['tcp'][cc])} ({cc})" for cc in CCS)
        return f"TCP {tcp}; UDP {x2(v['udp'])}; RTT {x2(v['rtt'])} (avg), {x2(v['rtt_median'])} (median)"
    if ratios:
        print()
        print("weft / kernel, ratio of the medians (TCP, UDP: higher is better; RTT: lower is better)")
        for w in WEFT_PATHS:
            if w in ratios:
                print(f"  {LABELS[w]}: {fmt(ratios[w])}")
    if ratios_b:
        print()
        print("WEFT_B / WEFT, ratio of the medians (TCP, UDP: higher is better; RTT: lower is better)")
        for w, v in ratios_b.items():
            print(f"  {LABELS[w]} / {LABELS[twin_of(w)]}: {fmt(v)}")
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
    footer(out, elapsed, left)

main(line, report)
PY
)
export B_UL_NET=$UL_NET B_OV_NET=$OV_NET B_VNI=$VNI B_VXLAN_PORT=$VXLAN_PORT B_OV_MTU=$OV_MTU

# Rough time per path and round: setup, ping, TCP and UDP, teardown.
run_all "weft overlay benchmark" $(((${#CCS[@]} + 1) * (DURATION + OMIT + 1) + 4))
