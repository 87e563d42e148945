#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: installs the real peers the end-to-end
# tests use (iproute2, ping, iperf3, tcpdump, python3, dig, dnsmasq, docker.io, busybox-static,
# chromium and python3-selenium),
# checks formatting, lints
# (clippy, warnings denied) and the binary's module graph (no circle), builds, and runs every
# test; then runs every fuzz target briefly (WEFT_FUZZ_SECONDS each, default 10; 0 skips),
# installing cargo-fuzz if it is missing (it needs the nightly toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "error: the tests create network namespaces, TAPs and veth pairs; run as root (sudo $0)" >&2
  exit 1
fi

need_pkgs=()
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v ping >/dev/null || need_pkgs+=(iputils-ping)
command -v iperf3 >/dev/null || need_pkgs+=(iperf3)
command -v tcpdump >/dev/null || need_pkgs+=(tcpdump)
command -v tshark >/dev/null || need_pkgs+=(tshark) # pcapng interfaces and VXLAN decoding (capture_network)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v dig >/dev/null || need_pkgs+=(bind9-dnsutils)
command -v dnsmasq >/dev/null || need_pkgs+=(dnsmasq-base)
command -v curl >/dev/null || need_pkgs+=(curl)
# Container engines for the engine tests: each test starts its own dockerd (own data root,
# no iptables, no docker0) and stops it; podman runs with a private configuration and
# storage; an offline busybox image is made from busybox-static.
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v podman >/dev/null || need_pkgs+=(podman)
command -v busybox >/dev/null || need_pkgs+=(busybox-static)
# The web view's browser test: headless Chromium driven by chromedriver from Debian's
# python3-selenium (for /usr/bin/python3).
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v chromedriver >/dev/null || need_pkgs+=(chromium-driver)
/usr/bin/python3 -c 'import selenium' 2>/dev/null || need_pkgs+=(python3-selenium)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services (docker.io's dockerd would set up iptables and docker0).
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  apt-get update -q
  apt-get install -y -q "${need_pkgs[@]}"
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
fi
# iperf3's package may start a system service; the tests run their own servers.
pkill -x iperf3 2>/dev/null || true

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
./scripts/module-graph.py
cargo build --release --workspace --all-targets
export WEFT_BIN="$PWD/target/release/weft"
# Run as root here: a test that would skip for want of root fails instead.
export WEFT_TEST_REQUIRE_ROOT=1
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --workspace --no-fail-fast "$@"
else
  cargo test --release --workspace --no-fail-fast "$@"
fi

fuzz_seconds=${WEFT_FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" != 0 ]; then
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "error: the fuzz targets need the nightly toolchain: rustup toolchain install nightly (or WEFT_FUZZ_SECONDS=0 to skip them)" >&2
    exit 1
  fi
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  ./scripts/fuzz.sh "$fuzz_seconds"
fi
