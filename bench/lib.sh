# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): the registry of what a run
# created, its cleanup, and small helpers. Each script defines die() and the globals
# used here (REGISTRY, WEFT_BENCH_RUN).

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
