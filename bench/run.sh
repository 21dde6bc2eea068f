#!/usr/bin/env bash
# bench/run.sh — `run --rm busybox true` end to end, and idle daemon memory:
#   berth CLI → berthd, docker CLI → berthd, docker CLI → Debian's dockerd 20.10 (+containerd),
#   podman (runc, no daemon).
# Every daemon gets its own temporary data root and socket; the busybox image is imported into
# each from Debian's busybox-static (no network, no registry); containers run without a
# network (bridge setup is measured by bench/network.sh), so all peers use `--network none`.
# The clients alternate every iteration so load changes hit all alike. Prints medians, then:
#   ratio run_rm berth/dockerd = …      (berth CLI → berthd vs docker CLI → dockerd)
#   ratio run_rm docker-cli-berthd/dockerd = …
#   ratio run_rm berth/podman = …
#   ratio idle_rss berth/dockerd = …    (berthd + berth-manager vs dockerd + containerd)
# Needs root, docker.io, podman, runc, busybox-static, python3.
# Usage: bench/run.sh [iterations]   (default 20)
set -euo pipefail
iters=${1:-20}
bench_name=run
need="dockerd containerd podman runc docker python3"
. "$(dirname "$0")/lib.sh"
start_daemons 10.254.76.1/24 --bridge=none
berth() { "$bin/berth" -H "unix://$w/berth.sock" "$@"; }
dk() { docker -H "unix://$w/docker.sock" "$@"; }
pm() { podman --root "$w/podman" --runroot "$w/podman-run" --runtime runc --cgroup-manager cgroupfs --events-backend none "$@"; }
pm import "$w/rootfs.tar" busybox:latest >/dev/null
echo "berth $("$bin/berth" --version | head -1); $(dockerd --version); $(podman --version); kernel $(uname -r), $(nproc) cpus, iterations $iters"

# Idle memory first, before any container ran: the daemons as a user finds them.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
berthd_pid=${pids[0]}
mgr_pid=$(pgrep -f "berth-manager --address $w/br/manager.sock" | head -1)
dockerd_pid=$(cat "$w/docker.pid")
ctrd_pid=$(pgrep -P "$dockerd_pid" containerd | head -1)
berth_rss=$(( $(rss "$berthd_pid") + $(rss "$mgr_pid") ))
docker_rss=$(( $(rss "$dockerd_pid") + $(rss "$ctrd_pid") ))
echo "idle RSS: berthd+berth-manager ${berth_rss} KiB, dockerd+containerd ${docker_rss} KiB"

python3 - "$iters" "$bin/berth" "$w" <<'PY'
import statistics, subprocess, sys, time
iters, berth, w = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pm = ["podman", "--root", f"{w}/podman", "--runroot", f"{w}/podman-run", "--runtime", "runc",
      "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
cmds = {
    "berth": [berth, "-H", f"unix://{w}/berth.sock", "run", "--rm", "--network", "none", "busybox", "true"],
    "docker-cli-berthd": ["docker", "-H", f"unix://{w}/berth.sock", "run", "--rm", "--network", "none", "busybox", "true"],
    "dockerd": ["docker", "-H", f"unix://{w}/docker.sock", "run", "--rm", "--network", "none", "busybox", "true"],
    # This host refuses rlimits above its hard limits (podman asks for more by default).
    "podman": pm + ["run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "busybox", "true"],
}
times = {k: [] for k in cmds}
for name, argv in cmds.items():  # warm up
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
for _ in range(iters):
    for name, argv in cmds.items():
        t = time.monotonic()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times[name].append(time.monotonic() - t)
med = {k: statistics.median(v) for k, v in times.items()}
for k, v in med.items():
    print(f"run --rm busybox true  {k:18} median {v*1000:8.1f} ms")
print(f"ratio run_rm berth/dockerd = {med['berth']/med['dockerd']:.2f}")
print(f"ratio run_rm docker-cli-berthd/dockerd = {med['docker-cli-berthd']/med['dockerd']:.2f}")
print(f"ratio run_rm berth/podman = {med['berth']/med['podman']:.2f}")
PY
echo "ratio idle_rss berth/dockerd = $(python3 -c "print(f'{$berth_rss/$docker_rss:.2f}')")"
