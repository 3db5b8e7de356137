#!/usr/bin/env bash
# scripts/container.sh [IMAGE] — build the workspace proxy image with podman without any registry: a
# Debian 12 root filesystem made by mmdebstrap from Debian's archive (the host's apt sources) is imported
# as localhost/outpost-base:bookworm and stands in for debian:bookworm-slim, then
# deploy/container/Dockerfile builds on it unchanged (podman build --from), so the image has the same
# layers as a registry build. Needs build/outpost_<version>_amd64.deb (make deb), podman, mmdebstrap.
# The base root is cached as build/container/base.tar (delete it to refresh). Default IMAGE:
# localhost/outpost-wsproxy:<version>. Prints the image name.
#
# Machine notes: without CAP_SYS_RESOURCE podman cannot raise rlimits (its defaults are above ours), so
# the limits are given explicitly below the hard ones; crun refuses hybrid cgroups, runc is used then.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
deb=$(ls build/outpost_*_amd64.deb 2>/dev/null | tail -n 1)
[ -n "$deb" ] || { echo "container.sh: no build/outpost_*_amd64.deb (run make deb)" >&2; exit 1; }
version=$(basename "$deb" | cut -d_ -f2)
image=${1:-localhost/outpost-wsproxy:$version}
for t in podman mmdebstrap; do
    command -v $t >/dev/null || { echo "container.sh: $t is not installed (apt-get install $t)" >&2; exit 69; }
done
base=localhost/outpost-base:bookworm
mkdir -p build/container
if [ ! -s build/container/base.tar ]; then
    sources=/etc/apt/sources.list.d/debian.sources
    [ -f "$sources" ] || sources=/etc/apt/sources.list
    # minbase, without documentation and locales, like the slim image.
    mmdebstrap --quiet --variant=minbase \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --aptopt='Acquire::Languages "none"' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm build/container/base.tar.new "$sources" >&2
    mv build/container/base.tar.new build/container/base.tar
fi
if ! podman image exists "$base" || [ build/container/base.tar -nt build/container/base.stamp ]; then
    podman import --quiet --change 'CMD ["bash"]' build/container/base.tar "$base" >/dev/null
    touch build/container/base.stamp
fi
runtime=()
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && command -v runc >/dev/null; then runtime=(--runtime runc); fi
nofile=$(ulimit -Hn)
podman "${runtime[@]}" build --quiet --network host --from "$base" \
    --ulimit "nofile=$nofile:$nofile" --ulimit nproc=32768:32768 \
    --ignorefile deploy/container/Dockerfile.dockerignore -f deploy/container/Dockerfile -t "$image" . >&2
echo "$image"
