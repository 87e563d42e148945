#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 30); fails if one crashes.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). The corpus grows
# in fuzz/corpus/TARGET (not committed); it starts from the inputs in fuzz/seeds/TARGET
# (written by fuzz/seeds/make.py) and fuzz/regressions/TARGET (crashes found before).
# A crash leaves its input in fuzz/artifacts/TARGET/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    dirs=("corpus/$t")
    for d in "seeds/$t" "regressions/$t"; do
        if [ -d "$d" ]; then
            dirs+=("$d")
        fi
    done
    echo "== $t: ${seconds}s"
    if ! cargo +nightly fuzz run "$t" "${dirs[@]}" -- -max_total_time="$seconds" -print_final_stats=1; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
