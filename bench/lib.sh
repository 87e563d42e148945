# shellcheck shell=bash
# Shared by the benchmark scripts (sourced through harness.sh, not run): the
# registry of what a run created, its cleanup, and small helpers. Uses the
# globals ME, P, WORK, REGISTRY and WEFT_BENCH_RUN (set by harness.sh), and
# calls release_more KIND ARGS... for registry kinds of the script's own.

need() {
    command -v "$1" >/dev/null 2>&1 ||
        die "'$1' not found (package $2); install it or rerun with --install"
}

register() { echo "$*" >>"$REGISTRY"; }

alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $st != Z* ]]
}

# hook FUNCTION ARGS...: call FUNCTION if the script defines it.
hook() {
    if declare -F "$1" >/dev/null; then "$@"; fi
}

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
    echo "$ME: pid $pid ignored SIGTERM, killing" >&2
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
        *)
            if declare -F release_more >/dev/null; then
                release_more "$@"
            else
                echo "$ME: unknown registry entry '$*'" >&2
            fi
            ;;
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

# Processes that carry this run's WEFT_BENCH_RUN but are neither this shell
# nor one of its descendants: things that outlived their path (a daemon or
# an iperf3 server that escaped the registry). Other users' processes never
# carry the variable.
list_strays() {
    python3 - "$WEFT_BENCH_RUN" "$$" <<'PY'
import os, sys
tag, me = ("WEFT_BENCH_RUN=" + sys.argv[1]).encode(), int(sys.argv[2])
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return rest[0], int(rest[1])  # state, ppid
found = []
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    pid = int(d)
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if tag not in f.read().split(b"\0"):
                continue
        state, _ = stat(pid)
        if state == "Z":
            continue
        q = pid
        while q > 1 and q != me:
            q = stat(q)[1]
    except OSError:
        continue
    if q != me:
        found.append(pid)
print(" ".join(map(str, sorted(found))))
PY
}

# quiesce: make sure nothing from this script is left before the next path
# is measured (and at exit): release the registry, stop stray processes of
# this run, delete stray namespaces and host-namespace links with our prefix.
quiesce() {
    local strays pid ns l
    release_all
    strays=$(list_strays) || strays=
    for pid in $strays; do
        echo "$ME: warning: stopping leftover process of this run: $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >&2
        echo "process $(ps -o pid=,args= -p "$pid" 2>/dev/null)" >>"$WORK/leftovers"
        stop_pid "$pid"
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
        echo "$ME: warning: deleting leftover namespace $ns" >&2
        echo "netns $ns" >>"$WORK/leftovers"
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
    for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$P" || true); do
        echo "$ME: warning: deleting leftover link $l" >&2
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
        echo "$ME: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# The per-path subshell runs in the background (see run_all) so that a
# signal interrupts the wait at once; stop it and its children before
# cleaning up.
CHILD=
on_signal() {
    echo "$ME: $1, cleaning up" >&2
    if [[ -n $CHILD ]]; then
        pkill -TERM -P "$CHILD" 2>/dev/null || true
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$2"
}

# ------------------------------------------------------------ primitives --

mk_ns() {
    ip netns add "$1"
    register netns "$1"
    ip -n "$1" link set lo up
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

start_bg() { # start_bg LOGFILE CMD...: background process, registered; prints its pid
    local logf=$1
    shift
    "$@" </dev/null >"$logf" 2>&1 &
    local pid=$!
    disown "$pid"
    register pid "$pid"
    echo "$pid"
}

# in_ns NS CMD...: CMD in namespace NS, or in the host namespace if NS is empty.
in_ns() {
    local ns=$1
    shift
    if [[ -n $ns ]]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# listening NS PORT: something listens on TCP PORT in NS (empty: the host).
listening() { [[ -n $(in_ns "$1" ss -Hltn "sport = :$2") ]]; }

# record PATH WORDS...: a command line of the path's setup (for the JSON).
record() {
    local p=$1
    shift
    echo "$*" >>"$RDIR/$p.cmd"
}

sock_or_dead() { [[ -S $1 ]] || ! alive "$2"; }
