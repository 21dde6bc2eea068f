#!/usr/bin/env bash
# The test suite: unit tests plus the root-only end-to-end tests (real namespaces, cgroups,
# mounts; containerd/podman interop), first on the debug build, then the lifecycle, security
# and interop tests again on the shipped (static release) binary. BERTH_E2E=1 makes a
# root-only test fail, not skip, when not root. Ends with: "tests: N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
cd "$here"
# The end-to-end tests drive the built binaries: build them first (and the static
# berth-init that `--init` bind-mounts into containers; a dynamic one cannot run there).
cargo build --workspace
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  *-linux-gnu) RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" cargo build --release -p berth-init --target "$host" ;;
  *) cargo build --release -p berth-init --target "$host" ;;
esac
export BERTH_INIT="$here/target/$host/release/berth-init"
log=$(mktemp)
# The host's network state before the tests: links (veths come and go with other
# software, so they are left out), addresses, nftables tables and iptables rules; diffed at
# the end.
netstate() {
  ip -o link | awk -F': ' '{print $2}' | grep -v '^veth' | sed 's/@.*//' | sort
  ip -o addr | awk '{print $2, $4}' | grep -v '^veth' | sort
  nft list tables 2>/dev/null | sort
  # iptables rules (either backend's view), without counters and comments.
  # (sed, not grep -v: no rules at all is no failure under pipefail.)
  { iptables-save 2>/dev/null || true; } | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//' | sort
  { ip6tables-save 2>/dev/null || true; } | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//' -e 's/^/v6 /' | sort
}
before=$(mktemp)
netstate > "$before"
trap 'rm -f "$log" "$before"' EXIT
export BERTH_E2E=${BERTH_E2E:-1}
threads=${BERTH_TEST_THREADS:-4}
set +e
cargo test --workspace --all-targets -- --test-threads="$threads" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" = 0 ]; then
  release=$(scripts/build-release.sh)
  echo "== again on the release binary: $release"
  BERTH_RUNTIME=$release cargo test -p berth-tests --test lifecycle --test security \
    --test interop -- --test-threads="$threads" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
fi
set -e
if ! diff -u "$before" <(netstate) > /dev/null; then
  echo "tests: the host's network state changed during the tests:"
  diff -u "$before" <(netstate) || true
  [ "$rc" = 0 ] && rc=1
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$rc"
