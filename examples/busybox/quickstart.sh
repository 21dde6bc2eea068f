#!/usr/bin/env bash
# Quick start: install what is needed, build berth-runtime, make a busybox bundle, run it.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (containers need it)" >&2; exit 1; }
"$here/scripts/setup.sh"
bin=$("$here/scripts/build-release.sh")
export PATH="$(dirname "$bin"):$PATH"
bundle=$(mktemp -d /tmp/berth-quickstart.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
"$here/examples/busybox/make-bundle.sh" "$bundle"
echo "+ berth-runtime run --bundle $bundle quickstart-$$"
berth-runtime run --bundle "$bundle" "quickstart-$$"
