#!/usr/bin/env bash
# bench/runtime.sh — berth-runtime vs runc vs crun, side by side in one run.
#
# Measures, alternating the runtimes every iteration so load changes hit all of them alike:
#   run_true      `run` of /bin/true (create + start + wait + delete in one command)
#   cycle         create + start + delete of /bin/true as three commands (containerd's pattern)
#   peak_rss      peak resident memory of the runtime process tree during `run`
# on a bundle from `runc spec`. berth-runtime's numbers include re-executing from a sealed
# copy of itself on every create/exec (CVE-2019-5736), as runc's include its own protection.
# and prints medians, then one line per comparison:  ratio <metric> berth/<peer> = <x.xx>
#
# crun 1.8 refuses hybrid cgroup hosts, so when /sys/fs/cgroup/unified is a separate cgroup2
# mount the whole benchmark runs in a private mount namespace with it unmounted: every runtime
# then sees the same plain cgroup v1 layout. Needs root, busybox-static, python3, GNU time.
#
# Usage: bench/runtime.sh [iterations]   (default 40; BERTH_RUNTIME=path overrides the binary)
set -euo pipefail
iters=${1:-40}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "${BERTH_BENCH_INNER:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "bench/runtime.sh: needs root" >&2; exit 1; }
  if [ -z "${BERTH_RUNTIME:-}" ]; then
    BERTH_RUNTIME=$("$here/scripts/build-release.sh")
    export BERTH_RUNTIME
  fi
  export BERTH_BENCH_INNER=1
  if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/mounts; then
    exec unshare -m --propagation private bash -c 'umount /sys/fs/cgroup/unified && exec "$0" "$@"' "$0" "$iters"
  fi
  exec "$0" "$iters"
fi

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
PATH="$(dirname "$BERTH_RUNTIME"):$PATH" "$here/examples/busybox/make-bundle.sh" "$work/bundle" true >/dev/null
# The bundle people have: `runc spec`'s config (ambient capabilities, read-only root, its
# mounts, masked paths), with only the command (/bin/true) and the terminal (off: nothing
# types into a benchmark) changed.
if command -v runc >/dev/null; then
  rm "$work/bundle/config.json"
  (cd "$work/bundle" && runc spec)
  jq '.process.terminal = false | .process.args = ["true"]' "$work/bundle/config.json" > "$work/c.json"
  mv "$work/c.json" "$work/bundle/config.json"
  echo "bundle: runc spec (args true, terminal off)"
fi
echo "berth-runtime: $BERTH_RUNTIME ($("$BERTH_RUNTIME" --version | head -1))"
for peer in runc crun; do command -v $peer >/dev/null && echo "$peer: $($peer --version | head -1)"; done
echo "kernel $(uname -r), $(nproc) cpus, iterations $iters"

python3 - "$work" "$iters" "$BERTH_RUNTIME" <<'PY'
import os, shutil, statistics, subprocess, sys, time
work, iters, berth = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bundle = os.path.join(work, "bundle")
runtimes = {"berth": berth}
for peer in ("runc", "crun"):
    p = shutil.which(peer)
    if p:
        runtimes[peer] = p
roots = {n: os.path.join(work, "root-" + n) for n in runtimes}
null = subprocess.DEVNULL

def peak_rss(argv):
    """Peak RSS (KiB) of argv and the children it waits for, measured by GNU time (a small
    parent: rusage taken from a Python child would include the forked interpreter)."""
    out = os.path.join(work, "rss")
    timed(["/usr/bin/time", "-f", "%M", "-o", out] + argv)
    with open(out) as f:
        return int(f.read().split()[-1])

def timed(argv):
    """Run argv, return (seconds, rusage max RSS)."""
    # stderr goes to a file: a created container's init keeps its stdio open until start.
    errf = open(os.path.join(work, "stderr"), "w+b")
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=null, stdout=null, stderr=errf)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    errf.close()
    if p.returncode != 0:
        sys.exit(f"{argv}: exit {p.returncode}: {err}")
    return dt, ru.ru_maxrss

res = {n: {"run_true": [], "cycle": [], "peak_rss": []} for n in runtimes}
for i in range(iters):
    order = list(runtimes)
    order = order[i % len(order):] + order[:i % len(order)]
    for n in order:
        rt, root = runtimes[n], roots[n]
        cid = f"bench-{n}-{i}"
        dt, _ = timed([rt, "--root", root, "run", "--bundle", bundle, cid + "r"])
        res[n]["run_true"].append(dt * 1000)
        res[n]["peak_rss"].append(peak_rss([rt, "--root", root, "run", "--bundle", bundle, cid + "m"]))
        t = 0.0
        for verb in (["create", "--bundle", bundle, cid], ["start", cid], ["delete", "--force", cid]):
            d, _ = timed([rt, "--root", root] + verb)
            t += d
        res[n]["cycle"].append(t * 1000)

units = {"run_true": "ms", "cycle": "ms", "peak_rss": "KiB"}
print(f"\n{'metric':<12}" + "".join(f"{n:>12}" for n in runtimes))
med = {n: {m: statistics.median(v) for m, v in r.items()} for n, r in res.items()}
for m in ("run_true", "cycle", "peak_rss"):
    print(f"{m + ' (' + units[m] + ')':<12}" + "".join(f"{med[n][m]:>12.2f}" for n in runtimes))
print()
for peer in [n for n in runtimes if n != "berth"]:
    for m in ("run_true", "cycle", "peak_rss"):
        print(f"ratio {m} berth/{peer} = {med['berth'][m] / med[peer][m]:.2f}")
PY
