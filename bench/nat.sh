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
#                     [--rounds N] [--duration N] [--out FILE] [--install] [--weft-b PATH]
#   WEFT=/path/to/weft WEFT_DAEMON_ARGS="--workers 2" sudo -E bench/nat.sh
set -euo pipefail

# shellcheck source=bench/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

ALL_PATHS="weft-out,weft-in,slirp4netns-out,slirp4netns-in,pasta-out,pasta-in,pasta-in-tap,direct"
DEFAULT_PATHS=$ALL_PATHS
WEFT_PATHS="weft-out weft-in"
WEFT_CMDS="daemon publish"
ONLY_STRIP=-rev     # NAME-rev is measured with NAME
OUT="$HARNESS_DIR/results/nat-latest.json"
WORK_TAG=nat
INSTALL_PKGS=(iperf3 slirp4netns passt)
ROOT_WHY="network namespaces, veth pairs, weft daemon"
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
# PORT (harness.sh): iperf3 port in the outside and in the container

usage() {
    cat <<EOF
$(usage_synopsis)

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
$(usage_options)
  --out FILE      JSON results (default: bench/results/nat-latest.json)
  --install       apt-get install ${INSTALL_PKGS[*]} first (otherwise nothing is installed)

$(usage_env)
  WEFT_NETWORK_ARGS=ARGS  extra arguments for 'weft network create' (e.g. --mtu 9000)
Must run as root. Addresses used: $OUTSIDE_NET (host end of the veth and
the outside namespace), $C_SUBNET (inside the container namespace) and
loopback.
EOF
}

parse_args "$@"
prepare
if wants_prefix slirp4netns; then need slirp4netns slirp4netns; fi
if wants_prefix pasta; then need pasta passt; fi

# The outside's addresses must be free in the host namespace (another run of
# this script, or anything else, would make the results meaningless).
if [[ -n $(ip -4 -o addr show to "$OUTSIDE_NET" 2>/dev/null) || -n $(ip -4 route show root "$OUTSIDE_NET" 2>/dev/null) ]]; then
    die "$OUTSIDE_NET is already in use in the host namespace (another nat.sh run?):" \
        "$(ip -4 -o addr show to "$OUTSIDE_NET" | awk '{print $2, $4}' | tr '\n' ' ')$(ip -4 route show root "$OUTSIDE_NET" | tr '\n' ' ')"
fi
if [[ -n $(ip -4 route show root "$C_SUBNET" 2>/dev/null) ]]; then
    warn "the host namespace has a route into $C_SUBNET; the containers' addresses" \
        "don't leave their namespaces, but check: $(ip -4 route show root "$C_SUBNET" | tr '\n' ' ')"
fi

start_run
read -r -a DAEMON_EXTRA <<<"$WEFT_DAEMON_ARGS"
read -r -a NETWORK_EXTRA <<<"$WEFT_NETWORK_ARGS"
[[ -z $WEFT_NETWORK_ARGS ]] || BANNER_EXTRA+=("weft network extra arguments: $WEFT_NETWORK_ARGS")

# ------------------------------------------------------------ primitives --

# tcp_ok NS ADDR PORT: a TCP connection to ADDR:PORT from NS succeeds.
tcp_ok() {
    in_ns "$1" python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$2" "$3"
}

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
outside_server() { iperf3_server "$1" "$RDIR/$2.server.log" -B "$OUTSIDE_ADDR"; }

# container_server NS PATH: iperf3 -s on port $PORT (all addresses) in NS.
container_server() { iperf3_server "$1" "$RDIR/$2.server.log"; }

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
# WEFT_SOCK (and WEFT_DAEMON_PID).
WEFT_SOCK=
weft_up() {
    local p=$1 short=$2 cns=$3 dir
    dir=$(mktemp -d "$RDIR/weft-$short.XXXX")
    register dir "$dir/state"
    mkdir -p "$dir/state"
    WEFT_SOCK="$dir/weft.sock"
    record "$p" "weft --socket SOCK daemon --state-dir DIR --dns-upstream 127.0.0.1:9${WEFT_DAEMON_ARGS:+ $WEFT_DAEMON_ARGS}"
    start_weft "weft daemon" "$RDIR/$p.daemon.log" "$WEFT_SOCK" \
        "$WEFT" --socket "$WEFT_SOCK" daemon --state-dir "$dir/state" --dns-upstream 127.0.0.1:9 "${DAEMON_EXTRA[@]}"
    # (the CLI's confirmations go to the path log, with the shell trace)
    "$WEFT" --socket "$WEFT_SOCK" network create nat --subnet "$C_SUBNET" "${NETWORK_EXTRA[@]}" >&2
    record "$p" "weft network create nat --subnet $C_SUBNET${WEFT_NETWORK_ARGS:+ $WEFT_NETWORK_ARGS}"
    "$WEFT" --socket "$WEFT_SOCK" --json connect nat --netns "$cns" --name c >"$RDIR/$p.endpoint.json"
    record "$p" "weft connect nat --netns NS --name c"
    cat "$RDIR/$p.endpoint.json" >&2
    wait_for 5 "eth0 in $cns" has_addr "$cns" eth0 "$C_ADDR"
}

weft_down() { # weft_down PATH: save the port counters, check the daemon is still alive
    "$WEFT" --socket "$WEFT_SOCK" --json ports >"$RDIR/$1.ports.json" || true
    weft_alive "weft daemon" "$WEFT_DAEMON_PID" "$RDIR/$1.daemon.log"
}

path_weft_out() { # path_weft_out NAME (weft-out or its twin)
    local p=$1 s="wo$SFX"
    local c="$P-$s-c"
    outside "$s"
    outside_server "$OUT_NS" "$p"
    mk_ns "$c"
    weft_up "$p" "$s" "$c"
    measure "$p" "$c" "$OUTSIDE_ADDR" "$PORT" "$c" eth0
    weft_down "$p"
}

path_weft_in() { # path_weft_in NAME (weft-in or its twin)
    local p=$1 s="wi$SFX" h i
    local c="$P-$s-c"
    outside "$s"
    mk_ns "$c"
    weft_up "$p" "$s" "$c"
    container_server "$c" "$p"
    # Another program may take the port between free_port and the daemon's bind.
    for i in 1 2 3; do
        h=$(free_port 127.0.0.1)
        "$WEFT" --socket "$WEFT_SOCK" --json publish c "127.0.0.1:$h:$PORT" >"$RDIR/$p.publish.json" && break
        h=
    done
    [[ -n $h ]] || { echo "weft publish failed 3 times" >&2; return 1; }
    record "$p" "weft publish c 127.0.0.1:H:$PORT"
    wait_for 5 "weft to listen on 127.0.0.1:$h" listening "" "$h"
    measure "$p" "" 127.0.0.1 "$h" "$c" eth0
    weft_down "$p"
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
        weft-out) path_weft_out "$2" ;;
        weft-in) path_weft_in "$2" ;;
        slirp4netns-out) path_slirp_out ;;
        slirp4netns-in) path_slirp_in ;;
        pasta-out) path_pasta_out ;;
        pasta-in) path_pasta_in pasta-in pi 127.0.0.1 ;;
        pasta-in-tap) path_pasta_in pasta-in-tap pt "$HOST_ADDR" ;;
        direct) path_direct ;;
    esac
}

# ------------------------------------------------------------- reporting --
# The per-round line ("line RDIR PATH") and the final report and JSON
# ("report WORK OUT ELAPSED ROUNDS PATH..."); the shared parts are in
# harness.py.
REPORT_PY=$(
    cat <<'PY'
import json, os, sys
from harness import *  # noqa: F403 - E, read, cmd, aggregate, twins, ...

DIRS = (("fwd", ""), ("rev", "-rev"))
# Which counter of the tool's interface (in the container; for direct the
# host end of the veth) must carry the data, per direction: the sender's
# side. None: not checked (pasta splices loopback connections, no tap).
IFACE = with_twins({"weft-out": ("tx", "rx"), "weft-in": ("rx", "tx"),
                    "slirp4netns-out": ("tx", "rx"), "slirp4netns-in": ("rx", "tx"),
                    "pasta-out": ("tx", "rx"), "pasta-in": None, "pasta-in-tap": ("rx", "tx"),
                    "direct": ("tx", "rx")}, lambda v: v)
# Share of iperf3's measured bytes that must have crossed that counter. The
# counter also sees the omitted first second and the headers, so a path
# that carries the traffic shows well over 1.
MIN_IFACE_SHARE = 0.9
TOOL = with_twins({"weft-out": "weft", "weft-in": "weft", "slirp4netns-out": "slirp4netns",
                   "slirp4netns-in": "slirp4netns", "pasta-out": "pasta", "pasta-in": "pasta",
                   "pasta-in-tap": "pasta", "direct": "kernel (veth)"}, lambda v: v)
WEFT_PATHS = weft_paths()

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
        a, b = link_stats(f(f".{d}.if0")), link_stats(f(f".{d}.if1"))
        if a and b:
            rx, tx = b["rx_bytes"] - a["rx_bytes"], b["tx_bytes"] - a["tx_bytes"]
            chk = IFACE.get(p)
            info = {"name": a["ifname"], "mtu": a["mtu"], "rx_bytes": rx, "tx_bytes": tx}
            if chk:
                c = chk[i]
                share = (rx if c == "rx" else tx) / sent if sent else 0
                info.update(counter=c, share_of_iperf3_bytes=round(share, 3))
                if share < MIN_IFACE_SHARE:
                    raise ValueError(
                        f"only {share:.0%} of iperf3's {sent / 1e6:.0f} MB crossed {a['ifname']} ({c}): "
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

def aggregate_dir(work, rounds, p, i, d, suffix):
    def parse_round(rdir, p):
        r = parse_test(rdir, p, d, i)
        load = read(os.path.join(rdir, p + ".load"))
        if load:
            r["loadavg_1min"] = float(load.split()[0])
        return r
    res, per_round = aggregate(work, rounds, p, parse_round,
                               {"path": p + suffix, "topology": p, "direction": d, "tool": TOOL[p]},
                               ("gbps", "retransmits"))
    mtus = sorted({r["iface"]["mtu"] for r in per_round if r["ok"] and r.get("iface", {}).get("mtu")})
    if mtus:
        res["mtu"] = mtus[0] if len(mtus) == 1 else mtus
    if p in WEFT_PATHS:
        # `weft --json ports` of the last round that has it (after both directions).
        n, ports = last_json(work, rounds, p + ".ports.json")
        if n:
            res["weft_ports"] = {"round": n, "ports": ports}
    res["per_round"] = per_round
    return res

def report(work, out, elapsed, rounds, paths):
    results = {}
    for p in paths:
        for i, (d, suffix) in enumerate(DIRS):
            results[p + suffix] = aggregate_dir(work, rounds, p, i, d, suffix)
    med = lambda name: results[name]["gbps"] if name in results and results[name]["ok"] else None
    rt = lambda a, b: ratio(med(a), med(b))
    # ratios["weft/slirp4netns"]["out-rev"] = weft-out-rev / slirp4netns-out-rev;
    # with WEFT_B also "weft-b/weft" (weft-out-b / weft-out, ...) and the
    # twins against the others ("weft-b/slirp4netns", ...).
    def path(tool, k, b=""):  # path("weft", "out-rev", "-b") = "weft-out-b-rev"
        top, _, rev = k.partition("-")
        return f"{tool}-{top}{b}{'-rev' if rev else ''}"
    ratios = {}
    def add(label, keys, num, den):
        row = {k: v for k in keys if (v := rt(num(k), den(k))) is not None}
        if row:
            ratios[label] = row
    for b in ("", TWIN) if HAS_B else ("",):
        w = "weft" + b
        if b:
            add(f"{w}/weft", ("out", "out-rev", "in", "in-rev"),
                lambda k: path("weft", k, b), lambda k: path("weft", k))
        for base in ("slirp4netns", "pasta"):
            add(f"{w}/{base}", ("out", "out-rev", "in", "in-rev"),
                lambda k: path("weft", k, b), lambda k: path(base, k))
        add(f"{w}/pasta-in-tap", ("in", "in-rev"),
            lambda k: path("weft", k, b), lambda k: "pasta-in-tap" + ("-rev" if k.endswith("rev") else ""))
    of_direct = {}
    for name, r in results.items():
        if r["topology"] != "direct":
            v = rt(name, "direct" + ("-rev" if r["direction"] == "rev" else ""))
            if v is not None:
                r["of_direct"] = of_direct[name] = v

    left = leftovers(work)
    slirp_v = (cmd("slirp4netns", "--version") or "").splitlines()
    doc = doc_head(1, elapsed, "nat")
    doc.update({
        "tools": {"iperf3": first_line(cmd("iperf3", "--version")),
                  "slirp4netns": " / ".join(l for l in slirp_v if l.startswith(("slirp4netns", "libslirp"))) or None,
                  "pasta": ("passt " + v) if (v := cmd("dpkg-query", "-W", "-f", "${Version}", "passt")) else None,
                  **weft_tools(any(p in WEFT_PATHS for p in paths))},
        "params": {"rounds": rounds, "order": paths, "duration_s": int(E["B_DURATION"]),
                   "omit_s": int(E["B_OMIT"]), "streams": 1,
                   "tcp_congestion_control": E["B_CC_DEFAULT"],
                   "outside": {"host": E["B_HOST_ADDR"], "server": E["B_OUTSIDE_ADDR"], "net": E["B_OUTSIDE_NET"]},
                   "container_subnet": E["B_C_SUBNET"], "user_mode_mtu": int(E["B_USER_MTU"]),
                   "weft_daemon_args_env": E["B_DAEMON_ARGS"], "weft_network_args_env": E["B_NETWORK_ARGS"]},
        "commands": {p: [l for l in (first_text(work, rounds, p + ".cmd") or "").splitlines() if l]
                     for p in paths},
        "results": list(results.values()),
        "ratios": ratios,
        "of_direct": of_direct,
        "leftovers_stopped": left,
    })
    write_json(doc, out)

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
          f"stream, {E['B_DURATION']} s per test; TCP congestion control {E['B_CC_DEFAULT']} (machine default)")
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
        if HAS_B:
            print("weft vs. slirp4netns and pasta, and weft-b (WEFT_B) vs. weft, ratio of the medians"
                  " (above 1: the first is faster)")
        else:
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
        if any(label.endswith("/pasta") and any(k.startswith("in") for k in row) for label, row in ratios.items()):
            print("  (pasta-in: pasta splices loopback connections between two sockets, no tap;"
                  " pasta-in-tap goes through its tap)")
    stalled = [n for n, r in results.items() if r["ok"] and r["gbps"] < 0.1]
    if stalled:
        print()
        print(f"stalled (median below 0.1 Gbit/s): {', '.join(stalled)}; ratios against them mean little"
              " (see bench/README.md)")
    footer(out, elapsed, left)

main(line, report)
PY
)
export B_HOST_ADDR=$HOST_ADDR B_OUTSIDE_ADDR=$OUTSIDE_ADDR B_OUTSIDE_NET=$OUTSIDE_NET B_C_SUBNET=$C_SUBNET \
    B_USER_MTU=$USER_MTU B_NETWORK_ARGS=$WEFT_NETWORK_ARGS

# Rough time per path and round: setup, two tests, teardown.
run_all "weft NAT benchmark" $((2 * (DURATION + OMIT + 1) + 3)) "${DURATION}s per test, both directions"
