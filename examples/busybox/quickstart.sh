#!/usr/bin/env bash
# Quick start: install what is needed, build Berth, and run containers through the whole
# stack — berth (CLI) → berthd (Engine API) → berth-manager → berth-shim → berth-runtime —
# on a busybox image made from Debian's busybox-static. Everything lives in a temporary
# directory and is removed at the end (containers, mounts, the daemons).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (containers need it)" >&2; exit 1; }
"$here/scripts/setup.sh"
bin=$("$here/scripts/build-release.sh")
export PATH="$(dirname "$bin"):$PATH"
tmp=$(mktemp -d /tmp/bq.XXXXXX)   # short: shim socket paths are limited to 107 bytes
berthd_pid=
cleanup() {
  set +e
  [ -S "$tmp/berth.sock" ] && berth -H "unix://$tmp/berth.sock" rm -f qs-web >/dev/null 2>&1
  [ -n "$berthd_pid" ] && kill "$berthd_pid" && wait "$berthd_pid" 2>/dev/null
  mgr=$(pgrep -f "berth-manager --address $tmp/run/manager.sock")
  [ -n "$mgr" ] && kill $mgr
  sleep 0.5
  grep -o " $tmp[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$tmp"
  find /sys/fs/cgroup -maxdepth 3 -type d -name berth-quickstart -exec rmdir {} + 2>/dev/null
  ip link del bq0 2>/dev/null; nft delete table ip berth_bq0 2>/dev/null
  true
}
trap cleanup EXIT
# Its own bridge and subnet (not docker0's 172.17.0.0/16), removed when done.
echo '{"registry-fallback": false, "bridge": "bq0", "bip": "10.199.0.1/24"}' > "$tmp/daemon.json"
berthd --exec-root "$tmp/run" --data-root "$tmp/data" -H "unix://$tmp/berth.sock" \
  --config-file "$tmp/daemon.json" --cgroup-parent /berth-quickstart 2> "$tmp/berthd.log" &
berthd_pid=$!
for _ in $(seq 100); do [ -S "$tmp/berth.sock" ] && break; sleep 0.1; done
export BERTH_HOST="unix://$tmp/berth.sock"
"$here/examples/busybox/make-bundle.sh" "$tmp/bundle" >/dev/null
set -x
tar -C "$tmp/bundle/rootfs" -c . | berth import --change 'CMD ["sh"]' - busybox:latest
berth run --rm busybox sh -c 'echo hello from berth: $(hostname), pid $$'
berth run -d --name qs-web -p 127.0.0.1::80 busybox sh -c 'echo serving; mkdir /www; echo hello over http > /www/index.html; exec httpd -f -p 80 -h /www'
berth ps
port=$(berth port qs-web 80 | cut -d: -f2)
sleep 0.5
curl -s "http://127.0.0.1:$port/"
berth exec qs-web sh -c 'echo exec sees pid 1 = $(cat /proc/1/comm)'
berth logs qs-web
berth rm -f qs-web
