#!/usr/bin/env bash
# bench/build.sh — one context and Dockerfile built by `berth build` (→ berthd), by
# `DOCKER_BUILDKIT=0 docker build` against berthd, and by the same docker command against
# Debian's dockerd 20.10 (its legacy builder), side by side in one run:
#   cold     --no-cache (every step runs: COPY of 200 files, two RUNs, metadata steps)
#   cached   the same build again (every step from the cache)
# The busybox base image is imported into each daemon from Debian's busybox-static (no
# network); dockerd runs without a bridge, and builds use `--network none` on both.
# Daemons alternate every iteration. Prints medians, then one line per comparison:
#   ratio build_cold berth/dockerd = …              (berth CLI → berthd vs docker → dockerd)
#   ratio build_cached berth/dockerd = …
#   ratio build_cold docker-cli-berthd/dockerd = …  (the same docker CLI, both daemons)
#   ratio build_cached docker-cli-berthd/dockerd = …
# Needs root, docker.io, busybox-static, python3. Usage: bench/build.sh [iterations] (default 5)
set -euo pipefail
iters=${1:-5}
bench_name=build
need="dockerd docker python3"
. "$(dirname "$0")/lib.sh"
start_daemons 10.254.75.1/24 --bridge=none
# The context: 200 small files and a Dockerfile like the seeds' (WORKDIR, COPY, RUN, CMD).
ctx="$w/ctx"
mkdir -p "$ctx/src"
for i in $(seq 200); do printf 'file %s\n' "$i" > "$ctx/src/f$i.txt"; done
cat > "$ctx/Dockerfile" <<'DF'
FROM busybox
ENV APP=/app
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt | wc -l > count && mkdir -p /data
RUN echo "built" > /app/built
LABEL bench=yes
EXPOSE 8080
CMD ["cat", "/app/count"]
DF
echo "berth $("$bin/berth" --version | head -1); $(dockerd --version); kernel $(uname -r), $(nproc) cpus, iterations $iters"

python3 - "$iters" "$w" "$ctx" "$bin/berth" <<'PY'
import os, statistics, subprocess, sys, time
iters, w, ctx, berth = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
env = dict(os.environ, DOCKER_BUILDKIT="0")
clients = {
    "berth": lambda *x: [berth, "-H", f"unix://{w}/berth.sock", "build", "-q", "--network", "none", *x],
    "docker-cli-berthd": lambda *x: ["docker", "-H", f"unix://{w}/berth.sock", "build", "-q", "--network", "none", *x],
    "dockerd": lambda *x: ["docker", "-H", f"unix://{w}/docker.sock", "build", "-q", "--network", "none", *x],
}
def build(k, *extra):
    argv = clients[k](*extra, "-t", "bench:1", ctx)
    t = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.monotonic() - t
times = {(k, m): [] for k in clients for m in ("cold", "cached")}
for k in clients:  # warm up
    build(k, "--no-cache")
for _ in range(iters):
    for k in clients:
        times[(k, "cold")].append(build(k, "--no-cache"))
        times[(k, "cached")].append(build(k))
med = {k: statistics.median(v) for k, v in times.items()}
for (k, m), v in med.items():
    print(f"build {m:6} {k:18} median {v*1000:8.1f} ms")
for k in ("berth", "docker-cli-berthd"):
    for m in ("cold", "cached"):
        print(f"ratio build_{m} {k}/dockerd = {med[(k, m)]/med[('dockerd', m)]:.2f}")
PY
