# shellcheck shell=bash
# The harness of the benchmark scripts run.sh, nat.sh and overlay.sh
# (sourced, not run): options, path selection, the weft binaries (WEFT and
# WEFT_B), the interleaved rounds, the measurement both run.sh and
# overlay.sh make, and the call of the script's report. A script keeps only
# its paths: how to set up each one and what to measure between which
# endpoints. See bench/README.md.
#
# A script sets, before parse_args:
#   ALL_PATHS, DEFAULT_PATHS  comma-separated path names
#   WEFT_PATHS                the weft paths among them, space-separated; with
#                             WEFT_B each is measured twice (NAME and NAME-b)
#   OUT, WORK_TAG, P          default JSON file, /tmp/weft-WORK_TAG.*, name prefix
#   INSTALL_PKGS              what --install installs (array)
#   ROOT_WHY                  why it must run as root
#   HAS_CC=1                  if it takes --cc (TCP once per congestion control)
#   ONLY_STRIP                a suffix --only accepts and ignores (nat.sh: -rev)
#   WEFT_BUILD=1              to build a missing target/release/weft
#   usage()                   its usage text (usage_options, usage_env help)
# and defines:
#   run_path BASE NAME        set up path BASE, measure it, saving the results
#                             as NAME (BASE, or BASE-b with $WEFT the second
#                             build); $SFX is "" or "-b", for names of
#                             namespaces and links
#   REPORT_PY                 its report program (Python, imports harness.py)
#   optionally release_more KIND ARGS... (registry kinds of its own),
#   on_test PATH TAG (called around the tests of measure_l3).
# Then: parse_args "$@"; prepare; [own checks]; start_run; run_all ...

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$HARNESS_DIR/lib.sh"
REPO_ROOT=$(cd "$HARNESS_DIR/.." && pwd)
ME=${0##*/}

ROUNDS=3            # every selected path is measured this many times, interleaved
DURATION=4          # seconds measured per iperf3 test (plus OMIT s left out at the start)
OMIT=1
SETTLE=1            # seconds of quiet between two paths (netns teardown is asynchronous)
UDP_LEN=64
PING_COUNT=200
PING_INTERVAL=0.002 # < 10 ms needs root
PING_WAIT=10        # seconds the first ping may take (ARP, FDB learning)
PORT=5201           # iperf3
INSTALL=0
HAS_CC=0
ONLY_STRIP=
WEFT_BUILD=0
WEFT_CMDS=daemon    # commands the weft binaries must have
WEFT_PATHS=
BANNER_EXTRA=()     # more lines for the start of the run
WEFT=${WEFT:-}
WEFT_B=${WEFT_B:-}
WEFT_DAEMON_ARGS=${WEFT_DAEMON_ARGS:-}
WEFT_ORIG='' WEFT_B_ORIG='' WEFT_B_COPY=''
SFX=''

CC_LIST=            # TCP congestion controls; empty: cubic, then the machine's default
CC_PROC=/proc/sys/net/ipv4
# The machine's default congestion control (new namespaces inherit it).
CC_DEFAULT=$(cat "$CC_PROC/tcp_congestion_control" 2>/dev/null || echo unknown)
CC_DEFAULT_LIST=cubic
[[ $CC_DEFAULT == cubic || $CC_DEFAULT == unknown ]] || CC_DEFAULT_LIST+=",$CC_DEFAULT"
CC_AVAILABLE=$(cat "$CC_PROC/tcp_available_congestion_control" 2>/dev/null || true)
CCS=()
CC_SKIPPED=()

die() { echo "$ME: error: $*" >&2; exit 1; }
log() { echo "== $*"; }
warn() { echo "$ME: warning: $*" >&2; }

# ------------------------------------------------------------------ usage --

# usage_synopsis: the usage line.
usage_synopsis() {
    local cc=''
    ((HAS_CC == 0)) || cc=' [--cc LIST]'
    echo "usage: $0 [--only LIST] [--rounds N] [--duration N]$cc [--out FILE] [--install]"
    echo "          [--weft-b PATH]"
}

# usage_options: the option lines every script has, after its --only.
usage_options() {
    cat <<EOF
  --rounds N      rounds (default: $ROUNDS)
  --duration N    seconds per iperf3 test after a ${OMIT} s omitted warm-up (default: $DURATION)
EOF
    if ((HAS_CC)); then
        cat <<EOF
  --cc LIST       comma-separated TCP congestion controls; the TCP test runs
                  once per entry (iperf3 -C). Default: cubic (Linux's stock
                  default), then this machine's default if it differs
                  (here: $CC_DEFAULT_LIST). Entries the kernel doesn't offer
                  ($CC_PROC/tcp_available_congestion_control) are skipped;
                  no module is loaded.
EOF
    fi
    cat <<EOF
  --weft-b PATH   a second weft build to compare (the same as WEFT_B=PATH):
                  every weft path NAME (${WEFT_PATHS// /, }) is measured
                  again with it as NAME-b, right after NAME in every round,
                  and the report adds the ratios NAME-b / NAME
EOF
}

# usage_env: the environment lines every script has.
usage_env() {
    local how="not built here"
    ((WEFT_BUILD == 0)) || how="built with
                          'cargo build --release -p weft-control' if missing"
    cat <<EOF
Environment:
  WEFT=path               the weft binary (default: target/release/weft; $how)
  WEFT_B=path             a second weft binary, as --weft-b PATH
  WEFT_DAEMON_ARGS=ARGS   extra arguments appended to every 'weft daemon'
                          command line, split on whitespace (default: none)
EOF
}

# -------------------------------------------------------------- selection --

is_weft_path() { [[ " $WEFT_PATHS " == *" $1 "* ]]; }
# twin NAME: NAME is the second build's measurement (BASE-b) of weft path BASE.
twin() { [[ -n $WEFT_B && $1 == *-b ]] && is_weft_path "${1%-b}"; }
wants() { [[ " ${PATHS[*]} " == *" $1 "* ]]; }
wants_prefix() { [[ " ${PATHS[*]} " == *" $1"* ]]; } # a path starting with it
wants_weft() {
    local p
    for p in "${PATHS[@]}"; do
        if is_weft_path "$p"; then return 0; fi
    done
    return 1
}

parse_args() {
    local opt val
    ONLY=$DEFAULT_PATHS
    while [[ $# -gt 0 ]]; do
        case $1 in
            --install) INSTALL=1; shift; continue ;;
            -h | --help) usage; exit 0 ;;
        esac
        opt=${1%%=*}
        case $opt in
            --only | --rounds | --duration | --out | --weft-b) ;;
            --cc) ((HAS_CC)) || { usage >&2; die "unknown argument: $1"; } ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
        if [[ $1 == *=* ]]; then
            val=${1#*=}
            shift
        else
            [[ $# -ge 2 ]] || die "$1 needs a value"
            val=$2
            shift 2
        fi
        case $opt in
            --only) ONLY=$val ;;
            --rounds) ROUNDS=$val ;;
            --duration) DURATION=$val ;;
            --out) OUT=$val ;;
            --weft-b) WEFT_B=$val ;;
            --cc) CC_LIST=$val ;;
        esac
    done
    if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 60)); then
        die "--duration must be a whole number of seconds in 1..60, got '$DURATION'"
    fi
    if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 50)); then
        die "--rounds must be a whole number in 1..50, got '$ROUNDS'"
    fi
    select_paths
    if ((HAS_CC)); then select_ccs; fi
}

# PATHS: the --only list, without repeats; with WEFT_B each weft path is
# followed by its twin NAME-b. (--only takes NAME-b for NAME.)
select_paths() {
    local p
    local -a sel all=()
    PATHS=()
    IFS=, read -r -a sel <<<"$ONLY"
    for p in "${sel[@]}"; do
        [[ -n $p ]] || continue
        [[ -z $ONLY_STRIP ]] || p=${p%"$ONLY_STRIP"}
        if twin "$p"; then p=${p%-b}; fi
        case ",$ALL_PATHS," in
            *",$p,"*) ;;
            *) die "unknown path '$p' in --only (choose from $ALL_PATHS)" ;;
        esac
        [[ " ${PATHS[*]:-} " == *" $p "* ]] || PATHS+=("$p")
    done
    ((${#PATHS[@]} > 0)) || die "--only selects no path"
    if [[ -n $WEFT_B ]]; then
        for p in "${PATHS[@]}"; do
            all+=("$p")
            if is_weft_path "$p"; then all+=("$p-b"); fi
        done
        PATHS=("${all[@]}")
    fi
}

# Congestion controls: only those the kernel has (available, i.e. built in
# or loaded). Asking iperf3 for another one would make the kernel try to
# load its module (root may), which the scripts must not do.
select_ccs() {
    local c
    local -a sel
    IFS=, read -r -a sel <<<"${CC_LIST:-$CC_DEFAULT_LIST}"
    for c in "${sel[@]}"; do
        [[ -n $c ]] || continue
        [[ $c =~ ^[a-z0-9_]+$ ]] || die "bad congestion control name '$c' in --cc"
        [[ " ${CCS[*]:-} ${CC_SKIPPED[*]:-} " == *" $c "* ]] && continue
        if [[ " $CC_AVAILABLE " == *" $c "* ]]; then
            CCS+=("$c")
        else
            CC_SKIPPED+=("$c")
            warn "TCP congestion control '$c' is not available (have: ${CC_AVAILABLE:-none}); skipping it"
        fi
    done
    ((${#CCS[@]} > 0)) || die "--cc selects no available congestion control (available: ${CC_AVAILABLE:-none})"
}

# ---------------------------------------------------------------- prepare --

# prepare: root, --install, the tools every script needs, the weft binaries.
prepare() {
    [[ $EUID -eq 0 ]] || die "must run as root ($ROOT_WHY)"
    if ((INSTALL)); then
        log "installing ${INSTALL_PKGS[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y "${INSTALL_PKGS[@]}"
    fi
    need ip iproute2
    need ss iproute2
    need iperf3 iperf3
    need python3 python3
    need timeout coreutils
    weft_binaries
}

# weft_has_cmds BINARY: its --help lists every command in WEFT_CMDS.
weft_has_cmds() {
    local h c
    [[ -x $1 ]] || return 1
    h=$("$1" --help 2>&1) || true
    for c in $WEFT_CMDS; do
        grep -w -- "$c" <<<"$h" >/dev/null || return 1
    done
}

check_weft() { # check_weft VARIABLE BINARY
    [[ -x $2 ]] || die "weft binary '$2' ($1) not found or not executable; build it" \
        "(cargo build --release -p weft-control), pass $1=path, or leave out ${WEFT_PATHS// /,} with --only"
    weft_has_cmds "$2" || die "$2 ($1) lacks a weft command the benchmark needs (${WEFT_CMDS// /, });" \
        "rebuild it (cargo build --release -p weft-control)"
}

# weft_binaries: if a weft path is selected, $WEFT (default
# target/release/weft, built first with WEFT_BUILD=1 if it is missing) and
# $WEFT_B must be weft binaries with the commands in WEFT_CMDS.
weft_binaries() {
    if ! wants_weft; then
        [[ -z $WEFT_B ]] || warn "WEFT_B is set but no weft path (${WEFT_PATHS// /,}) is selected; it is not used"
        WEFT_B=
        return 0
    fi
    if [[ -z $WEFT ]]; then
        WEFT="$REPO_ROOT/target/release/weft"
        if ((WEFT_BUILD)) && ! weft_has_cmds "$WEFT"; then
            need cargo "rustup/cargo"
            log "building weft (cargo build --release -p weft-control)"
            (cd "$REPO_ROOT" && cargo build --release -p weft-control) ||
                die "building weft failed; pass WEFT=path or leave out ${WEFT_PATHS// /,} with --only"
        fi
    fi
    check_weft WEFT "$WEFT"
    [[ -z $WEFT_B ]] || check_weft WEFT_B "$WEFT_B"
}

# start_run: the work directory, the registry, the cleanup handlers and the
# private copies of the weft binaries.
start_run() {
    WORK=$(mktemp -d "/tmp/weft-$WORK_TAG.$P.XXXXXX")
    REGISTRY="$WORK/created"
    : >"$REGISTRY"
    FAILED=0
    RDIR="$WORK" # per-round output directory, set in run_all
    # Every process the script starts (directly, through ip netns exec, or
    # through the tools under test) inherits this variable; that is how
    # leftovers are found.
    WEFT_BENCH_RUN="$P.$(date +%s%N)"
    export WEFT_BENCH_RUN
    trap cleanup EXIT
    trap 'on_signal interrupted 130' INT
    trap 'on_signal terminated 143' TERM
    # Measure private copies of weft, so that a rebuild of target/ while the
    # rounds run can't mix two binaries in one report.
    WEFT_ORIG=$WEFT WEFT_B_ORIG=$WEFT_B
    if wants_weft; then
        cp -p "$WEFT" "$WORK/weft"
        WEFT="$WORK/weft"
        if [[ -n $WEFT_B ]]; then
            cp -p "$WEFT_B" "$WORK/weft-b"
            WEFT_B_COPY="$WORK/weft-b"
        fi
    fi
}

# ------------------------------------------------------------- measuring --

# iperf3_server NS LOG ARGS...: iperf3 -s -p $PORT ARGS in NS (empty: the
# host), listening when it returns; its pid in SERVER_PID. (Functions that
# start things set globals rather than print: errexit does not reach into a
# command substitution.)
SERVER_PID=
iperf3_server() {
    local ns=$1 logf=$2
    shift 2
    local -a pre=()
    [[ -z $ns ]] || pre=(ip netns exec "$ns")
    SERVER_PID=$(start_bg "$logf" "${pre[@]}" iperf3 -s -p "$PORT" "$@")
    wait_for 5 "iperf3 server in ${ns:-the host}" listening "$ns" "$PORT"
}

# measure_l3 PATH NS_A NS_B ADDR: ping RTT, TCP (once per congestion
# control) and 64-byte UDP from NS_A to ADDR, an iperf3 server in NS_B; raw
# outputs land in $RDIR/PATH.{ping,tcp-CC.json,udp.json}. on_test PATH TAG
# runs (if defined) before the ping (TAG 0) and after each test (TAG ping,
# tcp-CC, udp).
measure_l3() {
    local p=$1 nsa=$2 nsb=$3 dst=$4 out="$RDIR/$1"
    local t=$((DURATION + OMIT + 15)) cc
    iperf3_server "$nsb" "$out.iperf3-server.log" -B "$dst"
    # Connectivity (also resolves ARP and fills the switches' FDBs).
    wait_for "$PING_WAIT" "$dst to answer ping from $nsa" ip netns exec "$nsa" ping -c 1 -W 1 "$dst"

    hook on_test "$p" 0
    # Not -q: the per-packet times give the median.
    ip netns exec "$nsa" ping -c "$PING_COUNT" -i "$PING_INTERVAL" -W 1 "$dst" >"$out.ping"
    hook on_test "$p" ping
    for cc in "${CCS[@]}"; do
        sleep 0.3
        # -C sets the congestion control of the sending (client) socket.
        timeout -k 3 "$t" ip netns exec "$nsa" iperf3 -c "$dst" -p "$PORT" --connect-timeout 3000 \
            -C "$cc" -t "$DURATION" -O "$OMIT" -J >"$out.tcp-$cc.json"
        hook on_test "$p" "tcp-$cc"
    done
    sleep 0.3
    timeout -k 3 "$t" ip netns exec "$nsa" iperf3 -c "$dst" -p "$PORT" --connect-timeout 3000 \
        -u -l "$UDP_LEN" -b 0 -t "$DURATION" -O "$OMIT" -J >"$out.udp.json"
    hook on_test "$p" udp
    stop_pid "$SERVER_PID"
}

# start_weft WHAT LOG SOCK CMD...: start CMD, a weft daemon that listens on
# SOCK, in the background (pid in WEFT_DAEMON_PID); fails, showing the
# log's end, unless the socket appears while the daemon lives.
WEFT_DAEMON_PID=
start_weft() {
    local what=$1 logf=$2 sock=$3
    shift 3
    WEFT_DAEMON_PID=$(start_bg "$logf" "$@")
    if ! wait_for 15 "weft daemon socket $sock" sock_or_dead "$sock" "$WEFT_DAEMON_PID" ||
        ! alive "$WEFT_DAEMON_PID"; then
        echo "$what did not come up; its log:" >&2
        tail -n 20 "$logf" >&2
        return 1
    fi
}

# weft_alive WHAT PID LOG: fails, showing the log's end, if the daemon died.
weft_alive() {
    alive "$2" || {
        echo "$1 died during the run" >&2
        tail -n 20 "$3" >&2
        return 1
    }
}

# ------------------------------------------------------------------ main --

# cpu_busy_pct: how busy all CPUs are over one second (percent), sampled
# while the script runs nothing: a direct reading of other users' load,
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

# report_py line RDIR PATH | report WORK OUT ELAPSED ROUNDS PATH...: the
# script's report program, with harness.py importable.
report_py() {
    PYTHONPATH="$HARNESS_DIR${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
        python3 -c "$REPORT_PY" "$@"
}

# run_one BASE NAME: (in the path's subshell) path BASE, measured as NAME;
# a twin NAME = BASE-b runs the second build.
run_one() {
    SFX=${2#"$1"}
    [[ -z $SFX ]] || WEFT=$WEFT_B_COPY
    run_path "$1" "$2"
}

# run_all TITLE SECONDS [DETAIL]: every round, every path, then the report.
# TITLE and DETAIL (default: the test duration and the congestion controls)
# make the first line; SECONDS is a rough time per path and round (setup,
# tests, teardown) for the estimate. Exits 1 if anything failed.
run_all() {
    local title=$1 est=$((($2 + SETTLE) * ${#PATHS[@]} * ROUNDS))
    local detail=${3:-"${DURATION}s per test; TCP with ${CCS[*]:-} (machine default: $CC_DEFAULT)"}
    local round p base plog rc first=1 line start elapsed load_before busy_before
    export B_DURATION=$DURATION B_OMIT=$OMIT B_UDP_LEN=$UDP_LEN B_PING_COUNT=$PING_COUNT \
        B_PING_INTERVAL=$PING_INTERVAL B_REPO=$REPO_ROOT B_DAEMON_ARGS=$WEFT_DAEMON_ARGS \
        B_WEFT=$WEFT_ORIG B_WEFT_COPY=$WEFT B_WEFT_B=$WEFT_B_ORIG B_WEFT_B_COPY=$WEFT_B_COPY \
        B_WEFT_PATHS=$WEFT_PATHS B_CCS="${CCS[*]:-}" B_CC_DEFAULT=$CC_DEFAULT \
        B_CC_AVAILABLE=$CC_AVAILABLE B_CC_SKIPPED="${CC_SKIPPED[*]:-}"

    log "$title: ${ROUNDS} round(s) of: ${PATHS[*]}; $detail; about $((est / 60)) min $((est % 60)) s"
    if [[ -n $WEFT_DAEMON_ARGS ]] && wants_weft; then log "weft daemon extra arguments: $WEFT_DAEMON_ARGS"; fi
    for line in "${BANNER_EXTRA[@]}"; do log "$line"; done
    if [[ -n $WEFT_B_COPY ]]; then
        log "two weft builds: WEFT=$WEFT_ORIG, WEFT_B=$WEFT_B_ORIG (the -b paths)"
    fi
    log "work dir $WORK"
    load_before=$(cat /proc/loadavg)
    busy_before=$(cpu_busy_pct)
    if python3 -c "import os,sys; sys.exit(0 if os.getloadavg()[0] > os.cpu_count() / 2 else 1)" ||
        ((busy_before > 20)); then
        warn "load average ${load_before%% *} on $(nproc) CPUs, ${busy_before}% CPU busy" \
            "before the start; other work will skew the figures"
    fi
    start=$(date +%s)
    for ((round = 1; round <= ROUNDS; round++)); do
        RDIR="$WORK/r$round"
        mkdir -p "$RDIR"
        for p in "${PATHS[@]}"; do
            base=$p
            if twin "$p"; then base=${p%-b}; fi
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
                run_one "$base" "$p"
            ) &
            CHILD=$!
            wait "$CHILD"
            rc=$?
            CHILD=
            set -e
            release_all
            if ((rc != 0)); then
                FAILED=1
                echo "$ME: path '$p' failed in round $round (exit $rc); last lines of $plog:" >&2
                tail -n 12 "$plog" | sed 's/^/   | /' >&2
                echo "failed (exit $rc): $(grep -v -e '^+' -e '^[[:space:]]*$' "$plog" | tail -n 3 | tr '\n' ' ')" >"$RDIR/$p.error"
            fi
            # (exit status 1 if the round failed, also a failed check of its figures)
            report_py line "$RDIR" "$p" || FAILED=1
        done
    done
    quiesce
    elapsed=$(($(date +%s) - start))
    export B_LOAD_BEFORE=$load_before B_BUSY_BEFORE=$busy_before
    B_LOAD_AFTER=$(cat /proc/loadavg)
    B_BUSY_AFTER=$(cpu_busy_pct)
    export B_LOAD_AFTER B_BUSY_AFTER

    mkdir -p "$(dirname "$OUT")"
    report_py report "$WORK" "$OUT" "$elapsed" "$ROUNDS" "${PATHS[@]}"
    ((FAILED == 0)) || exit 1
}
