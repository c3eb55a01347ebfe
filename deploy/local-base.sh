#!/bin/sh
# Makes a Node base image from this host's own node, npm and a shell, with buildah, for machines
# where no image registry is reachable (a registry's node image cannot be pulled). Then:
#   deploy/local-base.sh
#   buildah bud --pull=never --network=host --build-arg NODE_IMAGE=localhost/fleet-node-base:20 \
#     -f deploy/Dockerfile -t session-fleet:dev .
# Needs root, buildah, and node >= 20.19 with npm on the host (Debian's packages).
set -eu
tag=${1:-localhost/fleet-node-base:20}
ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$(buildah mount "$ctr")
node=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
# Binaries and every shared library they load, at the same paths as on the host.
for bin in "$node" /bin/sh /usr/bin/env; do
  real=$(readlink -f "$bin")
  mkdir -p "$root$(dirname "$real")" "$root$(dirname "$bin")"
  cp -L "$real" "$root$real"
  [ "$real" = "$bin" ] || cp -L "$real" "$root$bin"
  ldd "$real" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules" "$root/tmp" "$root/etc/ssl" "$root/home/node"
cp -L "$node" "$root/usr/local/bin/node"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
cp -rL /etc/ssl/certs "$root/etc/ssl/certs"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' > "$root/etc/group"
chown 1000:1000 "$root/home/node"
buildah umount "$ctr" >/dev/null
# The host's trust store, so npm in the build reaches the registry as the host does.
buildah config --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --env PATH=/usr/local/bin:/usr/bin:/bin --env NODE_VERSION="$(node --version)" --cmd node "$ctr"
buildah commit --quiet "$ctr" "$tag"
echo "$tag"
