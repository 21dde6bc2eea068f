#!/bin/sh
# Make an OCI bundle from Debian's busybox-static: DIR/rootfs + DIR/config.json.
# Usage: make-bundle.sh DIR [command...]   (default command: sh -c 'echo hello from berth')
set -eu
dir=${1:?usage: make-bundle.sh DIR [command...]}
shift
runtime=${BERTH_RUNTIME:-berth-runtime}
busybox=$(command -v busybox) || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
file -L "$busybox" 2>/dev/null | grep -q 'dynamically' && { echo "$busybox is not static: apt-get install busybox-static" >&2; exit 1; }
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" \
         "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/root"
cp "$busybox" "$dir/rootfs/bin/busybox"
for app in $("$busybox" --list); do
  [ "$app" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$app"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
rm -f "$dir/config.json"
"$runtime" spec --bundle "$dir"
if [ $# -eq 0 ]; then set -- sh -c 'echo hello from berth: $(hostname), pid $$'; fi
args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
jq --argjson a "$args" '.process.terminal = false | .process.args = $a | .hostname = "berth"' \
   "$dir/config.json" > "$dir/config.json.new"
mv "$dir/config.json.new" "$dir/config.json"
