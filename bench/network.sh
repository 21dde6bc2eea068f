#!/usr/bin/env bash
# bench/network.sh — container networking, Berth vs Debian's dockerd 20.10, in one run:
#   start_bridge   `run --rm busybox true` on the default bridge (namespace, veth, address)
#   start_none     the same with --network none
#   throughput     iperf3 through a published port on 127.0.0.1 (Berth's proxy vs
#                  docker-proxy): the iperf3 server runs in the container's network
#                  namespace (nsenter), the client on the host; 3 s per run
# dockerd gets a bridge made here (dbench0, removed after) and --iptables=false, so its
# ports go through docker-proxy and the host keeps no Docker rules; Berth uses its own
# bridge and nftables table, removed after too. The same docker CLI drives both daemons;
# they alternate every iteration.
# Ends with:  ratio start_bridge berth/dockerd = …   ratio start_none berth/dockerd = …
#             ratio throughput berth/dockerd = …      (higher is better for throughput)
# Needs root, docker.io, busybox-static, iperf3, python3, nftables.
# Usage: bench/network.sh [iterations]   (default 10)
set -euo pipefail
iters=${1:-10}
bench_name=network
need="dockerd docker python3 iperf3 nsenter nft"
bench_cleanup() { ip link del dbench0 2>/dev/null; }
. "$(dirname "$0")/lib.sh"
ip link add dbench0 type bridge
ip addr add 10.254.78.1/24 dev dbench0
ip link set dbench0 up
start_daemons 10.254.77.1/24 --bridge=dbench0
echo "berth $("$bin/berth" --version | head -1); $(dockerd --version); kernel $(uname -r), $(nproc) cpus, iterations $iters"

python3 - "$iters" "$w" <<'PY'
import json, socket, statistics, subprocess, sys, time
iters, w = int(sys.argv[1]), sys.argv[2]
socks = {"berth": f"unix://{w}/berth.sock", "dockerd": f"unix://{w}/docker.sock"}
def d(k, *a, **kw):
    return subprocess.run(["docker", "-H", socks[k], *a], check=True, capture_output=True, text=True, **kw).stdout
def timed(k, *a):
    t = time.monotonic(); d(k, *a); return time.monotonic() - t
starts = {(k, m): [] for k in socks for m in ("bridge", "none")}
for k in socks:
    d(k, "run", "--rm", "busybox", "true")
for _ in range(iters):
    for k in socks:
        starts[(k, "bridge")].append(timed(k, "run", "--rm", "busybox", "true"))
        starts[(k, "none")].append(timed(k, "run", "--rm", "--network", "none", "busybox", "true"))
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
tput = {k: [] for k in socks}
ctr = {}
for k in socks:
    port = free_port()
    cid = d(k, "run", "-d", "-p", f"127.0.0.1:{port}:5201", "busybox", "sleep", "3600").strip()
    pid = d(k, "inspect", "-f", "{{.State.Pid}}", cid).strip()
    srv = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", "iperf3", "-s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctr[k] = (cid, port, srv)
time.sleep(1)
for _ in range(max(2, iters // 3)):
    for k in socks:
        _, port, _ = ctr[k]
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "3", "-J"], capture_output=True, text=True)
        try:
            bps = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]
        except Exception:
            bps = 0.0
        tput[k].append(bps)
for k, (cid, _, srv) in ctr.items():
    srv.kill(); srv.wait()
    d(k, "rm", "-f", cid)
med = {k: statistics.median(v) for k, v in starts.items()}
for (k, m), v in med.items():
    print(f"run --rm busybox true  {m:6} {k:8} median {v*1000:8.1f} ms")
tm = {k: statistics.median(v) for k, v in tput.items()}
for k, v in tm.items():
    print(f"throughput via 127.0.0.1 published port  {k:8} median {v/1e9:6.2f} Gbit/s")
print(f"ratio start_bridge berth/dockerd = {med[('berth','bridge')]/med[('dockerd','bridge')]:.2f}")
print(f"ratio start_none berth/dockerd = {med[('berth','none')]/med[('dockerd','none')]:.2f}")
print(f"ratio throughput berth/dockerd = {tm['berth']/max(tm['dockerd'],1):.2f}")
PY
