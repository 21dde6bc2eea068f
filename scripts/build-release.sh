#!/usr/bin/env bash
# Build the shipped binaries. berth-runtime, berth-shim, berth-manager, berth-init: release profile, and on glibc hosts statically linked
# (crt-static). No dynamic loader, libc.so or libgcc_s to map: ~0.8 MiB less resident memory
# per create/exec and a faster start (bench/runtime.sh). Prints the binary's path.
# (crt-static cannot go in .cargo/config.toml: it would also apply to proc-macro crates.)
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  *-linux-gnu) export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" ;;
esac
cargo build --release -p berth-runtime -p berth-shim -p berth-manager -p berth-init --target "$host" >&2
# berthd and berth resolve registry names (getaddrinfo, which static glibc cannot do
# reliably): dynamic, in target/release-daemon (unwinding: see Cargo.toml); berthd finds the static manager via PATH or beside
# itself, so both sets land in the same directory.
# (`docker version` shows berthd's commit.)
commit=$(git rev-parse --short=7 HEAD 2>/dev/null || true)
(unset RUSTFLAGS; BERTH_GIT_COMMIT=$commit cargo build --profile release-daemon -p berth-daemon -p berth-cli >&2)
install -m 0755 target/release-daemon/berthd target/release-daemon/berth "target/$host/release/"
echo "$PWD/target/$host/release/berth-runtime"
