#!/usr/bin/env bash
# docker-py's own integration suite (tests/integration of docker/docker-py), offline, against
# a fresh berthd or a fresh Debian dockerd — the same tests, the same stand-in images.
#
#   tests/peer/docker-py.sh DOCKER_PY_CHECKOUT berthd|dockerd [pytest args…]
#
# Not a CI test (the suite is not ours and is not committed): a peer suite to run in a
# session. The stand-in images busybox:latest, alpine:3.10 and alpine:latest are made from
# Debian's busybox-static. dockerd runs in a network namespace of its own with only a
# loopback, so nothing it does can reach the internet; berthd runs as users run it, with
# `registry-fallback: false`. Both run in a private mount namespace whose / is shared, as on
# a systemd host. Tests that need Docker Hub, swarm, plugins or non-loopback
# addresses are deselected by tests/peer/docker-py.deselect (each with its reason).
# BERTH_BIN_DIR: where berthd and the rest are (default: the release build); BERTH_INIT: a
# static berth-init for --init when those binaries are not the release build's.
# Prints pytest's summary; the junit report is left in $BERTH_PEER_OUT (default /tmp/dpy-<engine>.xml).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
src=$(cd "${1:?usage: docker-py.sh DOCKER_PY_CHECKOUT berthd|dockerd [pytest args…]}" && pwd)
engine=${2:?usage: docker-py.sh DOCKER_PY_CHECKOUT berthd|dockerd}
shift 2
[ "$(id -u)" = 0 ] || { echo "docker-py.sh: needs root" >&2; exit 1; }
# The engine and the suite run in a mount namespace of their own whose / is a shared mount,
# as on a systemd host (the suite's `rshared` bind test needs that; this VM's / is private).
# Nothing mounted there reaches the host's namespace.
if [ -z "${DPY_MOUNT_NS:-}" ]; then
  exec env DPY_MOUNT_NS=1 unshare --mount --propagation unchanged "$0" "$src" "$engine" "$@"
fi
mount --make-rshared /
python3 -c 'import pytest, paramiko, docker' 2>/dev/null ||
  python3 -m pip install -q pytest paramiko docker
out=${BERTH_PEER_OUT:-/tmp/dpy-$engine.xml}
w=$(mktemp -d /tmp/dpy.XXXXXX)
pid=
netns=
cleanup() {
  set +e
  # The containers first: berthd's shims and dockerd's containerd-shims outlive their
  # daemons by design, so they would live on.
  if [ -S "$w/engine.sock" ]; then
    ids=$(DOCKER_HOST=unix://$w/engine.sock docker ps -aq 2>/dev/null)
    [ -n "$ids" ] && DOCKER_HOST=unix://$w/engine.sock docker rm -f $ids >/dev/null 2>&1
  fi
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && sleep 2
  for p in $(pgrep -f "berth-manager --address $w/|containerd.*$w/|berth-shim .*--dir $w/"); do kill "$p"; done
  # Whatever still runs in the engine's cgroups was started by this run.
  for f in $(find /sys/fs/cgroup -path "*/dpy-$engine/*" -name cgroup.procs 2>/dev/null); do
    xargs -r kill -9 < "$f" 2>/dev/null
  done
  sleep 1
  grep -o " $w[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
  ip link del bdpy0 2>/dev/null
  nft delete table ip berth_bdpy0 2>/dev/null
  [ -n "$netns" ] && ip netns del "$netns"
  for d in $(find /sys/fs/cgroup -maxdepth 3 -type d -name "dpy-$engine"); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$w"
  true
}
trap cleanup EXIT

BERTH_RUNTIME=runc "$here/examples/busybox/make-bundle.sh" "$w/bundle" >/dev/null
r=$w/bundle/rootfs
# What the suite expects of alpine: its directories and the users it names.
mkdir -p "$r/usr/bin" "$r/usr/sbin" "$r/sbin" "$r/var/tmp" "$r/var/opt" "$r/home" "$r/mnt" \
  "$r/opt" "$r/srv"
chmod 1777 "$r/tmp"
echo 'postgres:x:70:70::/var/lib/postgresql:/bin/sh' >> "$r/etc/passwd"
echo 'postgres:x:70:' >> "$r/etc/group"
tar -C "$r" -cf "$w/rootfs.tar" .

case $engine in
berthd)
  bin=${BERTH_BIN_DIR:-$(dirname "$("$here/scripts/build-release.sh")")}
  export PATH="$bin:$PATH"
  init=${BERTH_INIT:+, \"init-path\": \"$BERTH_INIT\"}
  echo "{\"registry-fallback\": false, \"bridge\": \"bdpy0\", \"bip\": \"10.197.0.1/24\"$init}" > "$w/daemon.json"
  "$bin/berthd" --exec-root "$w/run" --data-root "$w/data" -H "unix://$w/engine.sock" \
    --config-file "$w/daemon.json" --cgroup-parent /dpy-berthd 2> "$w/engine.log" &
  pid=$!
  ;;
dockerd)
  # Sealed: its own network namespace with only lo, so no pull can leave the machine.
  netns=dpy$$
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  # (nsenter, not `ip netns exec`: that remounts /sys and so hides the cgroup mounts.)
  nsenter --net="/run/netns/$netns" dockerd -H "unix://$w/engine.sock" --data-root "$w/docker" \
    --exec-root "$w/docker-exec" --pidfile "$w/docker.pid" --cgroup-parent /dpy-dockerd \
    > "$w/engine.log" 2>&1 &
  pid=$!
  ;;
*) echo "docker-py.sh: engine is berthd or dockerd, not $engine" >&2; exit 2 ;;
esac
for _ in $(seq 300); do [ -S "$w/engine.sock" ] && break; sleep 0.1; done
[ -S "$w/engine.sock" ] || { cat "$w/engine.log" >&2; exit 1; }
sleep 1
export DOCKER_HOST=unix://$w/engine.sock
for t in busybox:latest alpine:3.10 alpine:latest; do
  docker import --change 'CMD ["/bin/sh"]' "$w/rootfs.tar" "$t" >/dev/null
done
deselect=()
while read -r id _; do
  case $id in ''|'#'*) continue ;; esac
  deselect+=(--deselect "tests/integration/$id")
done < "$here/tests/peer/docker-py.deselect"
cd "$src"
# The suite's client state (docker contexts sit beside the config file docker-py finds, in
# ./contexts without one) in this run's own directory, so no run sees another's.
mkdir -p "$w/docker-config"
echo '{}' > "$w/docker-config/config.json"
export DOCKER_CONFIG=$w/docker-config
set +e
timeout 3600 python3 -m pytest -q -p no:cacheprovider --junitxml="$out" -o junit_family=xunit1 \
  "${deselect[@]}" tests/integration \
  --ignore=tests/integration/credentials "$@" 2>&1 | tail -n 400 > "$w/pytest.txt"
rc=${PIPESTATUS[0]}
set -e
grep -E '^(FAILED|ERROR) ' "$w/pytest.txt" || true
tail -n 1 "$w/pytest.txt"
echo "docker-py.sh: $engine: junit report in $out"
exit "$rc"
