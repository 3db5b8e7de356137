#!/usr/bin/env bash
# scripts/mkdeb.sh OUTPOST OUTDIR — build OUTDIR/outpost_<version>_amd64.deb from a release binary with
# dpkg-deb (no debhelper needed): the stripped binary (wolfSSL and liburing are linked in statically),
# Depends: computed by dpkg-shlibdeps from the binary's shared libraries plus adduser for postinst, the
# systemd units, the commented env files as conffiles, man pages and bash completion generated from the
# binary, and docs/deploy.md. Prints the path of the .deb. Called by `make deb`.
set -euo pipefail
bin=$(realpath "${1:?usage: mkdeb.sh OUTPOST OUTDIR}")
out=$(realpath -m "${2:?usage: mkdeb.sh OUTPOST OUTDIR}")
root=$(cd "$(dirname "$0")/.." && pwd)
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "mkdeb: cannot read the version from $bin --version" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg
umask 022

install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/outpost.d" \
    "$pkg/usr/share/man/man1" "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/doc/outpost"
install -m 0755 "$bin" "$pkg/usr/bin/outpost"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/outpost"
install -m 0644 "$root"/deploy/systemd/outpost.service "$root"/deploy/systemd/outpost-workspace-proxy.service \
    "$pkg/lib/systemd/system/"
install -m 0644 "$root"/deploy/debian/outpost-workspace-proxy.env "$root"/deploy/debian/outpost.env "$pkg/etc/outpost.d/"
python3 "$root/scripts/manpages.py" "$bin" "$pkg/usr/share/man/man1"
gzip -9n "$pkg"/usr/share/man/man1/*.1
bash "$root/scripts/completion.sh" "$bin" >"$pkg/usr/share/bash-completion/completions/outpost"
chmod 0644 "$pkg/usr/share/bash-completion/completions/outpost"
install -m 0644 "$root/deploy/debian/copyright" "$pkg/usr/share/doc/outpost/copyright"
for d in deploy.md wsproxy-server.md coder-compat.md; do
    [ -f "$root/docs/$d" ] && gzip -9nc "$root/docs/$d" >"$pkg/usr/share/doc/outpost/$d.gz"
done
# A native package's changelog, dated by the last commit so that rebuilding the same tree gives the same file.
when=$(git -C "$root" log -1 --format=%aD 2>/dev/null || date -R)
printf 'outpost (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- Outpost maintainers <outpost@example.com>  %s\n' \
    "$version" "$version" "$when" | gzip -9n >"$pkg/usr/share/doc/outpost/changelog.gz"
chmod 0644 "$pkg"/usr/share/doc/outpost/*

# Depends: from the binary's NEEDED libraries, as dpkg-shlibdeps resolves them on this system.
mkdir -p "$work/src/debian"
printf 'Source: outpost\n\nPackage: outpost\nArchitecture: any\n' >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "$pkg/usr/bin/outpost" 2>"$work/shlibdeps.err" |
    sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.err" >&2; exit 1; }
[ -n "$shlibs" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies" >&2; cat "$work/shlibdeps.err" >&2; exit 1; }

for s in postinst prerm postrm; do install -m 0755 "$root/deploy/debian/$s" "$pkg/DEBIAN/$s"; done
printf '/etc/outpost.d/outpost-workspace-proxy.env\n/etc/outpost.d/outpost.env\n' >"$pkg/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CTL
Package: outpost
Version: $version
Architecture: $arch
Maintainer: Outpost maintainers <outpost@example.com>
Installed-Size: $size
Depends: adduser, $shlibs
Recommends: ca-certificates
Section: net
Priority: optional
Homepage: https://example.com/outpost
Description: workspace proxy system: primary, edge proxy, agent and CLI
 Outpost lets geo-distributed teams reach their cloud workspaces through a
 nearby relay instead of a far-away primary. One binary plays every role:
 the primary control plane (outpost server), the workspace proxy on an edge
 node (outpost wsproxy server), the workspace agent and the admin CLI.
 .
 The relay engine uses io_uring and wolfSSL (linked in statically). systemd
 units for the primary and the workspace proxy are included; configure them
 in /etc/outpost.d/.
CTL
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"
mkdir -p "$out"
deb=$out/outpost_${version}_${arch}.deb
SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s) \
    dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
