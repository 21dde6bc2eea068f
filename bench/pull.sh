#!/usr/bin/env bash
# bench/pull.sh — time to a runnable image, pulled from a loopback registry: Berth (berthd +
# berth-manager: download, verify, unpack into overlay snapshots) vs Debian's dockerd 20.10
# (`docker pull`, overlay2) vs skopeo copying to a local dir (the download floor: no unpack).
#
# The image: a Debian bookworm minbase (+perl, python3-minimal) made with debootstrap, apt's
# .deb cache removed, split into 4 gzip layers, pushed by berthd to Debian's docker-registry on
# 127.0.0.1. Engines run alternately, each from an empty store with a freshly started daemon.
# Per run: wall time of the pull command; peak memory = the client's max RSS + the daemon's
# VmHWM (berth: berthd + berth-manager; docker: docker CLI + dockerd; skopeo: itself).
# Ends with:  ratio <metric> berth/<peer> = <x.xx>
#
# Needs root, internet access to a Debian mirror once (debootstrap; cached in
# /var/tmp/berth-bench), and the packages docker.io, skopeo, docker-registry, debootstrap.
# Usage: bench/pull.sh [RUNS]   (default 5)
set -euo pipefail
runs=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/pull.sh: needs root" >&2; exit 1; }
for p in docker-registry debootstrap skopeo dockerd docker; do
  command -v "$p" >/dev/null || { echo "bench/pull.sh: $p missing (apt-get install docker.io skopeo docker-registry debootstrap)" >&2; exit 1; }
done
"$here/scripts/build-release.sh" >/dev/null
host=$(rustc -vV | sed -n 's/^host: //p')
bin=$here/target/$host/release
berthd=$bin/berthd
cache=/var/tmp/berth-bench
work=$(mktemp -d /tmp/bpull.XXXXXX)
pids=()
mpid=
cleanup() {
  set +e
  [ -n "$mpid" ] && kill "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -f "$work/docker.pid" ] && kill "$(cat "$work/docker.pid")" 2>/dev/null && sleep 2
  awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$work"
}
trap cleanup EXIT

# --- the image (cached)
if [ ! -f "$cache/debian.tar" ]; then
  mkdir -p "$cache"
  if [ ! -d "$cache/rootfs/usr" ]; then
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase --include=perl,python3-minimal bookworm "$cache/rootfs" \
      http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1
  fi
  rm -f "$cache"/rootfs/var/cache/apt/archives/*.deb "$cache"/rootfs/var/lib/apt/lists/*_Packages
  lay=$cache/layout; rm -rf "$lay"; mkdir -p "$lay/blobs/sha256"
  r=$cache/rootfs
  tar -C "$r" -cf "$cache/l1.tar" --exclude=./usr .
  tar -C "$r" -cf "$cache/l2.tar" ./usr/lib
  tar -C "$r" -cf "$cache/l3.tar" ./usr/share
  tar -C "$r" -cf "$cache/l4.tar" --exclude=./usr/lib --exclude=./usr/share ./usr
  python3 - "$cache" <<'PY'
import gzip, hashlib, json, os, sys
c = sys.argv[1]; b = os.path.join(c, "layout/blobs/sha256")
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(b, h), "wb").write(data); return "sha256:" + h
layers, diffs = [], []
for i in range(1, 5):
    raw = open(os.path.join(c, f"l{i}.tar"), "rb").read()
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["bash"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                  "layers": layers}).encode()
md = put(man)
open(os.path.join(c, "layout/oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(man),
           "annotations": {"io.containerd.image.name": "localhost/bench/debian:1"}}]}, open(os.path.join(c, "layout/index.json"), "w"))
print("image: %d layers, %.1f MB compressed" % (len(layers), sum(l["size"] for l in layers) / 1e6), file=sys.stderr)
PY
  tar -C "$lay" -cf "$cache/debian.tar" .
  rm -f "$cache"/l?.tar
fi

# --- a loopback registry holding it
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: 127.0.0.1:%s\n' "$work" "$port" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
ref=127.0.0.1:$port/bench/debian:1

start_manager() { # root
  rm -rf "$1"; mkdir -p "$1"
  "$bin/berth-manager" --address "$1/m.sock" --root "$1/root" --state "$1/st" --log-level warn &
  mpid=$!
  for _ in $(seq 200); do [ -S "$1/m.sock" ] && break; sleep 0.02; done
}
stop_manager() { kill "$mpid"; wait "$mpid" 2>/dev/null || true; }

start_manager "$work/seed"
"$berthd" --manager "$work/seed/m.sock" image load -i "$cache/debian.tar" >/dev/null
"$berthd" --manager "$work/seed/m.sock" image tag localhost/bench/debian:1 "$ref"
"$berthd" --manager "$work/seed/m.sock" image push "$ref" >/dev/null
stop_manager
awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
rm -rf "$work/seed"

hwm() { awk '/^VmHWM:/{print $2}' "/proc/$1/status"; }
samples=$work/samples

run_berth() {
  start_manager "$work/b"
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/b.rss" "$berthd" --manager "$work/b/m.sock" image pull "$ref" >/dev/null
  local t=$((($(date +%s%N) - t0) / 1000000))
  local mem=$(($(cat "$work/b.rss") + $(hwm "$mpid")))
  echo "berth $t $mem" >>"$samples"
  stop_manager
  awk -v w="$work/b" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$work/b"
}

run_docker() {
  local d=$work/d
  rm -rf "$d"; mkdir -p "$d"
  dockerd --data-root "$d/data" --exec-root "$d/exec" -H "unix://$d/docker.sock" --pidfile "$work/docker.pid" \
    --bridge=none --iptables=false --ip-masq=false --storage-driver=overlay2 >"$d/dockerd.log" 2>&1 &
  local dpid=$!
  for _ in $(seq 300); do docker -H "unix://$d/docker.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/d.rss" docker -H "unix://$d/docker.sock" pull -q "$ref" >/dev/null
  local t=$((($(date +%s%N) - t0) / 1000000))
  local mem=$(($(cat "$work/d.rss") + $(hwm "$dpid")))
  echo "docker $t $mem" >>"$samples"
  kill "$dpid"; wait "$dpid" 2>/dev/null || true
  rm -f "$work/docker.pid"
  awk -v w="$d" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$d"
}

run_skopeo() {
  rm -rf "$work/s"
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/s.rss" skopeo copy -q --src-tls-verify=false "docker://$ref" "dir:$work/s"
  local t=$((($(date +%s%N) - t0) / 1000000))
  echo "skopeo $t $(cat "$work/s.rss")" >>"$samples"
  rm -rf "$work/s"
}

for i in $(seq 1 "$runs"); do
  order=(berth docker skopeo)
  [ $((i % 2)) = 0 ] && order=(skopeo docker berth)
  for e in "${order[@]}"; do
    sync; echo 3 >/proc/sys/vm/drop_caches
    "run_$e"
  done
done

python3 - "$samples" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    e, t, m = line.split()
    rows.setdefault(e, []).append((int(t), int(m)))
med = {e: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v)) for e, v in rows.items()}
print(f"{'engine':<10}{'runs':>5}{'time ms':>10}{'peak KiB':>11}")
for e, (t, m) in med.items():
    print(f"{e:<10}{len(rows[e]):>5}{t:>10.0f}{m:>11.0f}")
for peer in ("docker", "skopeo"):
    if peer in med and "berth" in med:
        print(f"ratio pull_time berth/{peer} = {med['berth'][0] / med[peer][0]:.2f}")
        print(f"ratio pull_peak_rss berth/{peer} = {med['berth'][1] / med[peer][1]:.2f}")
PY
