#!/usr/bin/env bash
# Install the Debian packages Berth needs to build, run and test (idempotent; root).
set -euo pipefail
pkgs=(busybox-static runc crun containerd podman jq file procps iproute2 python3 time ca-certificates
  docker-registry apache2-utils curl openssl python3-yaml nftables iptables docker-compose docker.io bsdutils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # docker.io is for the dockerd interop test only: its packages must not start daemons
  # (a system dockerd would make bridges and firewall rules of its own).
  norc=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && norc=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$norc" ] && rm -f /usr/sbin/policy-rc.d
fi
# The schema tests validate JSON with Python's jsonschema.
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  python3 -m pip install -q jsonschema 2>/dev/null ||
    python3 -m pip install -q --break-system-packages jsonschema 2>/dev/null ||
    { apt-get update -qq && apt-get install -y -qq python3-jsonschema >/dev/null; }
fi
# The API schema test reads the Engine API's Swagger YAML.
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m pip install -q pyyaml 2>/dev/null ||
    python3 -m pip install -q --break-system-packages pyyaml 2>/dev/null || true
fi
# The API tests drive berthd with docker-py (the Docker SDK for Python).
if ! python3 -c 'import docker' 2>/dev/null; then
  python3 -m pip install -q docker 2>/dev/null ||
    python3 -m pip install -q --break-system-packages docker 2>/dev/null ||
    { apt-get update -qq && apt-get install -y -qq python3-docker >/dev/null; }
fi
command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup)" >&2; exit 1; }
