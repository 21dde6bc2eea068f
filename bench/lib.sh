# bench/lib.sh — what bench/run.sh, build.sh and network.sh share: a berthd and a Debian
# dockerd side by side, each with its own temporary data root and socket, the busybox image
# made from busybox-static imported into both, and a cleanup that stops only what was
# started here and removes its mounts, cgroups, bridges and nftables table. Sourced, with
# `bench_name` (e.g. "run") and `need` (commands required) set first.
#
# Sets: here, bin (release binaries, first on PATH), w (work dir), pids (started daemons).
# Hooks: bench_cleanup (run first by the cleanup, if defined).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/$bench_name.sh: needs root" >&2; exit 1; }
for b in $need; do
  command -v "$b" >/dev/null || { echo "bench/$bench_name.sh: $b not found (apt-get install docker.io podman runc iperf3 nftables)" >&2; exit 1; }
done
bin=$(dirname "$("$here/scripts/build-release.sh")")
export PATH="$bin:$PATH"
w=$(mktemp -d "/tmp/b$bench_name.XXXXXX")
pids=()
cleanup() {
  set +e
  declare -F bench_cleanup >/dev/null && bench_cleanup
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in $(pgrep -f "berth-manager --address $w/"); do kill "$p"; done
  for p in $(pgrep -f "containerd --config $w/|containerd.*$w/docker-exec"); do kill "$p"; done
  sleep 1
  grep -o " $w[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
  ip link del "b$bench_name"0 2>/dev/null
  nft delete table ip "berth_b${bench_name}0" 2>/dev/null
  rm -rf "$w"
  for d in $(find /sys/fs/cgroup -maxdepth 3 -type d \( -name "berth-$bench_name" -o -name "docker-$bench_name" \)); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  true
}
trap cleanup EXIT

"$here/examples/busybox/make-bundle.sh" "$w/bundle" >/dev/null
tar -C "$w/bundle/rootfs" -cf "$w/rootfs.tar" .

# start_daemons BIP [dockerd options…]: berthd on its own bridge b<name>0 with subnet BIP,
# dockerd with the given options (e.g. --bridge=none); both sockets ready, busybox imported.
start_daemons() {
  local bip=$1
  shift
  echo "{\"registry-fallback\": false, \"bridge\": \"b${bench_name}0\", \"bip\": \"$bip\"}" > "$w/berthd.json"
  "$bin/berthd" --exec-root "$w/br" --data-root "$w/bd" -H "unix://$w/berth.sock" \
    --config-file "$w/berthd.json" --cgroup-parent "/berth-$bench_name" 2> "$w/berthd.log" &
  pids+=($!)
  dockerd -H "unix://$w/docker.sock" --data-root "$w/docker" --exec-root "$w/docker-exec" \
    --pidfile "$w/docker.pid" --iptables=false --ip-masq=false "$@" \
    --cgroup-parent "/docker-$bench_name" > "$w/dockerd.log" 2>&1 &
  pids+=($!)
  for s in berth.sock docker.sock; do
    for _ in $(seq 200); do [ -S "$w/$s" ] && break; sleep 0.1; done
  done
  sleep 2
  for s in berth docker; do
    docker -H "unix://$w/$s.sock" import --change 'CMD ["sh"]' "$w/rootfs.tar" busybox:latest >/dev/null
  done
}
