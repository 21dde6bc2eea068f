#!/usr/bin/env bash
# bench/shim-memory.sh — memory of the per-container process that stays while a container
# idles: berth-shim vs conmon (podman) vs containerd-shim-runc-v2 (containerd), same host,
# same busybox rootfs, N idle containers each (`sleep`), all running at the same time.
#
# For every shim process: Rss, Pss and Anonymous from /proc/PID/smaps_rollup (KiB). Prints
# medians per engine, then one line per comparison:  ratio <metric> berth/<peer> = <x.xx>
# Peers that are not installed are skipped. Needs root and busybox-static; uses the release
# build (scripts/build-release.sh). Everything runs under a temp dir and is removed at exit.
#
# Usage: bench/shim-memory.sh [N]   (default 10)
set -euo pipefail
n=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/shim-memory.sh: needs root" >&2; exit 1; }
rt=$("$here/scripts/build-release.sh")
bin=$(dirname "$rt")
work=$(mktemp -d /tmp/bsm.XXXXXX)
# Parent cgroups the engines create (containerd: default, podman: libpod_parent): removed at
# exit unless they were here before.
engine_cgroups=()
for name in default libpod_parent; do
  [ -e "/sys/fs/cgroup/memory/$name" ] || [ -e "/sys/fs/cgroup/$name" ] || engine_cgroups+=("$name")
done
pids=()
cleanup() {
  set +e
  [ -S "$work/m.sock" ] && for i in $(seq 1 "$n"); do "$bin/berth-manager" --address "$work/m.sock" rm -f "b$i" >/dev/null 2>&1; done
  if [ -S "$work/ctd/c.sock" ]; then
    for i in $(seq 1 "$n"); do
      ctr --address "$work/ctd/c.sock" task kill -s KILL "c$i" >/dev/null 2>&1
    done
    sleep 1
    for i in $(seq 1 "$n"); do
      ctr --address "$work/ctd/c.sock" task rm -f "c$i" >/dev/null 2>&1
      ctr --address "$work/ctd/c.sock" container rm "c$i" >/dev/null 2>&1
    done
  fi
  if [ -d "$work/pod" ]; then
    podman --root "$work/pod/root" --runroot "$work/pod/run" --cgroup-manager cgroupfs \
      --events-backend file rm -af -t 0 >/dev/null 2>&1
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for p in $(pgrep -f "containerd-shim-runc-v2.*$work" || true); do kill -9 "$p"; done
  for name in bsm-bench "${engine_cgroups[@]}"; do
    for d in /sys/fs/cgroup/*/"$name" /sys/fs/cgroup/"$name"; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$work"
}
trap cleanup EXIT
PATH="$bin:$PATH" "$here/examples/busybox/make-bundle.sh" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs

# smaps_rollup fields of one pid: rss pss anon (KiB).
mem() { awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Anonymous:/{a=$2} END{print r, p, a}' "/proc/$1/smaps_rollup"; }
report() { # engine pid...
  local eng=$1; shift
  for p in "$@"; do echo "$eng $(mem "$p")"; done >> "$work/samples"
}

# berth: manager + one berth-shim per container.
"$bin/berth-manager" --address "$work/m.sock" --root "$work/root" --state "$work/st" --log-level warn &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/m.sock" ] && break; sleep 0.05; done
for i in $(seq 1 "$n"); do
  "$bin/berth-manager" --address "$work/m.sock" run -d --rootfs "$rootfs" --cgroup "/bsm-bench/b$i" "b$i" sleep 100000 >/dev/null
done
sleep 1
report berth $(for f in "$work"/st/tasks/*/shim.pid; do cat "$f"; echo; done)

if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  mkdir -p "$work/ctd"
  printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s/c.sock"\n[ttrpc]\n  address = "%s/c.sock.ttrpc"\n' \
    "$work/ctd" "$work/ctd" "$work/ctd" "$work/ctd" > "$work/ctd/config.toml"
  containerd --config "$work/ctd/config.toml" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 100); do ctr --address "$work/ctd/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  for i in $(seq 1 "$n"); do
    ctr --address "$work/ctd/c.sock" run -d --rootfs "$rootfs" "c$i" /bin/sleep 100000 >/dev/null
  done
  sleep 1
  report containerd-shim-runc-v2 $(pgrep -f "containerd-shim-runc-v2.*$work")
fi

if command -v podman >/dev/null; then
  mkdir -p "$work/pod"
  for i in $(seq 1 "$n"); do
    podman --root "$work/pod/root" --runroot "$work/pod/run" --cgroup-manager cgroupfs \
      --events-backend file --runtime runc run -d --network none --ulimit nofile=20000:20000 \
      --ulimit nproc=32768:32768 --rootfs "$rootfs" /bin/sleep 100000 >/dev/null
  done
  sleep 1
  report conmon $(pgrep -f "conmon.*$work")
fi

python3 - "$work/samples" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    eng, *vals = line.split()
    rows.setdefault(eng, []).append([int(v) for v in vals])
med = {}
print(f"{'engine':<26}{'n':>4}{'rss KiB':>10}{'pss KiB':>10}{'anon KiB':>10}")
for eng, vals in rows.items():
    m = [statistics.median(v[i] for v in vals) for i in range(3)]
    med[eng] = m
    print(f"{eng:<26}{len(vals):>4}{m[0]:>10.0f}{m[1]:>10.0f}{m[2]:>10.0f}")
for peer in ("conmon", "containerd-shim-runc-v2"):
    if peer in med and "berth" in med:
        for i, name in enumerate(("rss", "pss", "anon")):
            print(f"ratio shim_{name} berth/{peer} = {med['berth'][i] / med[peer][i]:.2f}")
PY
