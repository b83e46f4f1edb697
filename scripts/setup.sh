#!/usr/bin/env bash
# Installs the system packages flatedge needs to build and test, and checks
# the Rust tools. Idempotent: installed packages are skipped, and the apt
# index is refreshed only when something is missing.
#
# Usage: scripts/setup.sh [--for-test]   (as root, or with sudo available;
#        --for-test: rustfmt and clippy are required too, as scripts/test
#        runs them)
# Tested on Debian 12 (bookworm).
set -euo pipefail

# System packages, one per line with what needs them. Add new ones here.
PACKAGES=(
    libdpdk-dev     # DPDK 22.11: rte_lpm6, the baseline of the FIB benchmark
                    # (bench crate, `dpdk` feature)
    pkg-config      # bench/build.rs finds libdpdk's flags with it
    clang           # C compiler for the shims and the XDP program (clang -target
                    # bpf, router/build.rs); libclang for libxdp-sys's bindgen
    build-essential # cc, make and the libc headers for the cc crate
    iproute2        # ip netns/link/addr: the netns integration tests (tests/)
    gobgpd          # GoBGP 3.x (gobgpd + gobgp CLI), the BGP library inside
                    # Cilium: the peer of the netns BGP tests (tests/)
    bird2           # BIRD 2 (bird + birdc): sender and baseline receiver of
                    # `bench bgp-convergence` (bench crate), and a peer of
                    # the netns BGP tests (tests/)
    frr             # FRR 8.x (bgpd + vtysh; bgpd runs alone, no zebra): a
                    # peer of the netns BGP tests (tests/)
    llvm            # with clang and m4: libxdp-sys (under xsk-rs) builds libxdp
                    # and its BPF objects; router/build.rs builds the XDP program
    m4              #   (libxdp's build generates sources with m4)
    libelf-dev      # libbpf and libxdp link libelf (router: AF_XDP ports)
    libbpf-dev      # libxdp's configure (libxdp-sys, under xsk-rs) builds
                    # against the system libbpf when it is there ...
    libpcap-dev     # ... and needs libpcap on its bundled-libbpf path
    zlib1g-dev      # ... and zlib
    ethtool         # the AF_XDP netns tests turn TX checksum offload off on
                    # the senders' veths (router/tests/xdp_port.rs)
    iputils-ping    # ping -6 through and to the router (router/tests/xdp_port.rs)
    netsniff-ng     # trafgen: the packet generator of `bench forward` (bench
                    # crate; AF_PACKET TX ring, qdisc bypass)
    procps          # sysctl and kill: the netns tests and scripts/demo-lab
    python3-minimal # scripts/demo-lab's UDP flows
)

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

installed() {
    # "install ok installed" only for a fully installed package.
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=(__no_sudo__)
fi

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian or Ubuntu"

missing=()
for pkg in "${PACKAGES[@]}"; do
    if installed "$pkg"; then
        log "$pkg: already installed"
    else
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    [ "${SUDO[*]}" != "__no_sudo__" ] || die "installing ${missing[*]} needs root (run as root or install sudo)"
    log "installing: ${missing[*]}"
    # Through env: sudo's env_reset would drop an exported variable. A
    # fresh machine's first-boot apt jobs may hold the dpkg lock: wait.
    APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    "${APT[@]}" update
    "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
    for pkg in "${missing[@]}"; do
        installed "$pkg" || die "$pkg did not install"
    done
else
    log "all system packages present"
fi

# The Rust toolchain is per user: check it, do not install it.
status=0
if command -v cargo >/dev/null 2>&1; then
    log "cargo: $(cargo --version)"
else
    log "cargo not found. Install Rust (stable) with rustup:"
    log "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y"
    log "  . \"\$HOME/.cargo/env\""
    status=1
fi
FOR_TEST=0
[[ "${1:-}" == "--for-test" ]] && FOR_TEST=1
if command -v cargo >/dev/null 2>&1 && cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest: $(cargo nextest --version 2>/dev/null | head -n1)"
elif [ "$FOR_TEST" -eq 1 ]; then
    log "cargo-nextest not found (the test runner). Install it with:"
    log "  cargo install --locked cargo-nextest"
    log "  or a prebuilt binary: https://nexte.st/docs/installation/pre-built-binaries/"
    status=1
else
    log "cargo-nextest not found (only scripts/test needs it)"
fi
for component in rustfmt clippy; do
    has() { command -v cargo >/dev/null 2>&1 && cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; }
    if ! has && command -v rustup >/dev/null 2>&1; then
        log "$component not found: rustup component add $component"
        rustup component add "$component" || true
    fi
    if has; then
        log "$component: present"
    elif [ "$FOR_TEST" -eq 1 ]; then
        log "$component not found (scripts/test runs it). Install it with:"
        log "  rustup component add $component"
        status=1
    else
        log "$component not found (only scripts/test needs it)"
    fi
done


if [ "$status" -eq 0 ]; then
    log "ready: cargo build --workspace && cargo nextest run --workspace"
fi
exit "$status"
