#!/usr/bin/env bash
# bench/soak.sh — a soak, not a test: for DURATION seconds (default 3600) loop
#   run --rm (output checked), run -d + exec + logs --tail + attach of a finished
#   container + rm -f, through the docker CLI → berthd (default bridge),
# and every KILL_EVERY iterations (default 25) kill -9 berthd and berth-manager and start
# berthd again (containers live on; the shims reconnect). Prints containers run, failures,
# and berthd's and the manager's fds and RSS, shims, mounts and cgroups at start and end
# (after the last restart, with no containers: they should be equal).
# Needs root, docker (CLI), busybox-static. Usage: bench/soak.sh [seconds] [kill_every]
set -euo pipefail
duration=${1:-3600}
kill_every=${2:-25}
bench_name=soak
need="docker"
. "$(dirname "$0")/lib.sh"
bench_cleanup() { [ "${fails:-0}" = 0 ] || tail -20 "$w/berthd.log" >&2; docker -H "unix://$w/berth.sock" rm -f $(docker -H "unix://$w/berth.sock" ps -aq) >/dev/null 2>&1; }
echo "{\"registry-fallback\": false, \"bridge\": \"bsoak0\", \"bip\": \"10.254.90.1/24\"}" > "$w/berthd.json"
start_berthd() {
  "$bin/berthd" --exec-root "$w/br" --data-root "$w/bd" -H "unix://$w/berth.sock" \
    --config-file "$w/berthd.json" --cgroup-parent "/berth-soak" 2>> "$w/berthd.log" &
  berthd_pid=$!
  pids+=("$berthd_pid")
  for _ in $(seq 200); do docker -H "unix://$w/berth.sock" version >/dev/null 2>&1 && return; sleep 0.1; done
  echo "soak: berthd did not come up" >&2; exit 1
}
dk() { timeout 60 docker -H "unix://$w/berth.sock" "$@"; }
mgr_pid() { pgrep -f "berth-manager --address $w/br/" | head -1; }
figures() {
  local m; m=$(mgr_pid)
  echo "$1: berthd fds $(ls "/proc/$berthd_pid/fd" | wc -l) rss $(awk '/^VmRSS/ {print $2}' "/proc/$berthd_pid/status") KiB;" \
    "manager fds $(ls "/proc/$m/fd" | wc -l) rss $(awk '/^VmRSS/ {print $2}' "/proc/$m/status") KiB;" \
    "shims $(pgrep -fc "berth-shim.*$w/" || true); mounts $(grep -c " $w" /proc/mounts || true);" \
    "cgroups $(find /sys/fs/cgroup -type d -path '*berth-soak/*' 2>/dev/null | wc -l)"
}
start_berthd
dk import --change 'CMD ["sh"]' "$w/rootfs.tar" busybox:latest >/dev/null
dk run --rm busybox true
figures start
runs=0 fails=0 kills=0 i=0
fail() { fails=$((fails + 1)); echo "soak: iteration $i: $*" >&2; }
end=$(( $(date +%s) + duration ))
while [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1))
  [ "$(dk run --rm busybox echo "hello $i")" = "hello $i" ] || fail "run --rm output"
  runs=$((runs + 1))
  id=$(dk run -d busybox sh -c 'echo started; sleep 1000') || { fail "run -d"; continue; }
  runs=$((runs + 1))
  [ "$(dk exec "$id" echo in-exec)" = in-exec ] || fail "exec"
  for _ in $(seq 50); do [ "$(dk logs --tail 1 "$id")" = started ] && break; sleep 0.1; done
  [ "$(dk logs --tail 1 "$id")" = started ] || fail "logs --tail"
  fin=$(dk create busybox sh -c 'sleep 0.3; echo attached') || { fail "create"; continue; }
  [ "$(dk start -a "$fin")" = attached ] || fail "start -a"
  runs=$((runs + 1))
  dk rm -f "$id" "$fin" >/dev/null || fail "rm -f"
  if [ $((i % kill_every)) = 0 ]; then
    kills=$((kills + 1))
    m=$(mgr_pid)
    kill -9 "$berthd_pid" ${m:+"$m"}
    wait "$berthd_pid" 2>/dev/null || true
    start_berthd
  fi
done
left=$(dk ps -aq | wc -l)
[ "$left" = 0 ] || fail "$left containers left"
figures end
echo "soak: ${duration}s, $i iterations, $runs containers run, $kills kill -9 restarts, $fails failures"
