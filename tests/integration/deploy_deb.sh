#!/usr/bin/env bash
# tests/integration/deploy_deb.sh — the Debian package (scripts/mkdeb.sh, what `make deb` runs) built from
# the binary under test: the control fields (Depends: from dpkg-shlibdeps, no wolfSSL/liburing: they are
# linked in), the files and conffiles; lintian reports no error (when installed); `dpkg --root` installs
# it into a throwaway root (maintainer scripts chrootless with DPKG_ROOT: postinst adds the outpost user
# to that root's passwd, the env files become root:outpost 0640, the host is untouched); from that root
# `outpost --version` works, the example env file filled in passes `outpost wsproxy server --check`, and its units verify
# against the installed binary and man pages.
. "$(dirname "$0")/../lib/common.sh"
certs
deb=$(bash "$ROOT/scripts/mkdeb.sh" "$OUTPOST" "$T/out" 2>"$T/mkdeb.log") || fail "mkdeb.sh: $(cat "$T/mkdeb.log")"
version=$("$OUTPOST" --version | awk '{print $2}')
[ "$(basename "$deb")" = "outpost_${version}_$(dpkg --print-architecture).deb" ] || fail "package name $deb"
dpkg-deb -f "$deb" Depends >"$T/depends"
for want in adduser libc6 libcurl4 libcjson1 libsqlite3-0 libyaml-0-2; do
    grep -Eq "(^|, )$want( |,|$)" "$T/depends" || fail "Depends lacks $want: $(cat "$T/depends")"
done
grep -Eqi 'wolfssl|liburing' "$T/depends" && fail "Depends names a static library: $(cat "$T/depends")"
readelf -d "$OUTPOST" | grep -Ei 'NEEDED.*(wolfssl|liburing)' && fail "the binary needs a shared wolfSSL/liburing"
dpkg-deb -c "$deb" | awk '{print $6}' >"$T/files"
for f in ./usr/bin/outpost ./lib/systemd/system/outpost.service ./lib/systemd/system/outpost-workspace-proxy.service \
    ./etc/outpost.d/outpost-workspace-proxy.env ./etc/outpost.d/outpost.env \
    ./usr/share/man/man1/outpost.1.gz ./usr/share/man/man1/outpost-wsproxy-server.1.gz \
    ./usr/share/man/man1/outpost-server.1.gz ./usr/share/bash-completion/completions/outpost \
    ./usr/share/doc/outpost/copyright ./usr/share/doc/outpost/changelog.gz ./usr/share/doc/outpost/deploy.md.gz; do
    grep -qx "$f" "$T/files" || fail "package lacks $f"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$T/conffiles"
printf '/etc/outpost.d/outpost-workspace-proxy.env\n/etc/outpost.d/outpost.env\n' | diff - "$T/conffiles" ||
    fail "conffiles"
ok "package $(basename "$deb"): Depends $(cat "$T/depends"); binary, units, env conffiles, man pages, completion"

command -v lintian >/dev/null || fail "lintian is not installed (scripts/deps.sh installs it)"
{
    lintian --fail-on error "$deb" >"$T/lintian.log" 2>&1 || fail "lintian: $(cat "$T/lintian.log")"
    grep -q '^E:' "$T/lintian.log" && fail "lintian errors: $(cat "$T/lintian.log")"
    ok "lintian: no errors ($(grep -c '^[WI]:' "$T/lintian.log") warnings/infos)"
}

R=$T/root
mkdir -p "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/info" "$R/etc"
: >"$R/var/lib/dpkg/status"
# The root's user database, as a fresh Debian system has it: postinst adds outpost to it.
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$R/etc/shadow"
printf 'root:*::\n' >"$R/etc/gshadow"
chmod 0640 "$R/etc/shadow" "$R/etc/gshadow"
cp /etc/passwd "$T/host-passwd"
# The root has no shell to chroot into: the maintainer scripts run outside it, with DPKG_ROOT set.
dpkg --root="$R" --force-depends --force-script-chrootless --log=/dev/null --install "$deb" >"$T/dpkg.log" 2>&1 ||
    fail "dpkg --install: $(cat "$T/dpkg.log")"
cmp -s /etc/passwd "$T/host-passwd" || fail "postinst changed the host's /etc/passwd"
dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Status} ${Version}\n' outpost | grep -qx "install ok installed $version" ||
    fail "dpkg status: $(dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Status} ${Version}' outpost)"
dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Conffiles}\n' outpost | grep -q '/etc/outpost.d/outpost-workspace-proxy.env ' ||
    fail "the env file is not registered as a conffile"
grep -q '^outpost:x:[0-9]*:[0-9]*:[^:]*:/var/lib/outpost:/usr/sbin/nologin$' "$R/etc/passwd" ||
    fail "postinst did not create the outpost system user: $(cat "$R/etc/passwd")"
gid=$(awk -F: '$1 == "outpost" { print $3 }' "$R/etc/group")
[ "$(stat -c '%a %g' "$R/etc/outpost.d/outpost-workspace-proxy.env")" = "640 $gid" ] ||
    fail "env file mode/group: $(stat -c '%a %G' "$R/etc/outpost.d/outpost-workspace-proxy.env")"
"$R/usr/bin/outpost" --version | grep -qx "outpost $version" || fail "installed outpost --version"
ok "dpkg --root installs it; $("$R/usr/bin/outpost" --version) runs from the throwaway root"

# The example env file as an operator fills it in: uncomment, token and certificate paths replaced,
# ports made free (80/443 would need the unit's capability).
env_file=$R/etc/outpost.d/outpost-workspace-proxy.env
grep -q '^#CODER_PROXY_SESSION_TOKEN=$' "$env_file" || fail "the example has no token line to fill in"
grep -q '^CODER_' "$env_file" && fail "the shipped example sets a variable (it must be all comments)"
TOKEN="00000000-1111-4222-8333-444444444444:$(printf 'a%.0s' {1..64})"
hp=$(free_port) tp=$(free_port)
sed -i -e 's/^#\(CODER_[A-Z_]*=\)/\1/' -e "s#^CODER_PROXY_SESSION_TOKEN=\$#CODER_PROXY_SESSION_TOKEN=$TOKEN#" \
    -e "s#^CODER_HTTP_ADDRESS=.*#CODER_HTTP_ADDRESS=127.0.0.1:$hp#" -e "s#^CODER_TLS_ADDRESS=.*#CODER_TLS_ADDRESS=127.0.0.1:$tp#" \
    -e "s#/etc/outpost/cert.pem#$T/certs/server.pem#" -e "s#/etc/outpost/key.pem#$T/certs/server.key#" "$env_file"
for k in CODER_PRIMARY_ACCESS_URL CODER_TLS_ENABLE CODER_TLS_CLIENT_AUTH CODER_ACCESS_URL CODER_WILDCARD_ACCESS_URL; do
    grep -q "^$k=" "$env_file" || fail "the example lacks $k"
done
env -i PATH=/usr/bin:/bin "$R/usr/bin/outpost" wsproxy server --check --env-file "$env_file" >"$T/check.log" 2>&1 ||
    fail "--check on the filled-in example: $(cat "$T/check.log")"
sed -i "s#^CODER_TLS_CERT_FILE=.*#CODER_TLS_CERT_FILE=$T/missing.pem#" "$env_file"
env -i PATH=/usr/bin:/bin "$R/usr/bin/outpost" wsproxy server --check --env-file "$env_file" >"$T/check2.log" 2>&1
[ $? -eq 78 ] || fail "--check with a missing certificate: want 78, $(cat "$T/check2.log")"
ok "the example env file, filled in, passes outpost wsproxy server --check from the root (78 with a bad cert path)"

if command -v systemd-analyze >/dev/null; then
    mkdir -p "$T/units"
    for u in outpost.service outpost-workspace-proxy.service; do
        sed "s#/usr/bin/outpost#$R/usr/bin/outpost#g" "$R/lib/systemd/system/$u" >"$T/units/$u"
    done
    MANPATH=$R/usr/share/man systemd-analyze verify "$T"/units/*.service >"$T/verify.log" 2>&1 ||
        fail "systemd-analyze verify of the installed units: $(cat "$T/verify.log")"
    [ -s "$T/verify.log" ] && fail "systemd-analyze verify printed: $(cat "$T/verify.log")"
    ok "the installed units verify, their Documentation= man pages included"
fi

# Reinstalling (an upgrade to the same version) keeps the operator's edits of the conffile and the user.
cp "$env_file" "$T/filled.env"
dpkg --root="$R" --force-depends --force-script-chrootless --log=/dev/null --install "$deb" >"$T/dpkg2.log" 2>&1 ||
    fail "dpkg --install again: $(cat "$T/dpkg2.log")"
cmp -s "$env_file" "$T/filled.env" || fail "reinstalling replaced the edited env file"
[ "$(grep -c '^outpost:' "$R/etc/passwd")" = 1 ] || fail "reinstalling: $(grep '^outpost:' "$R/etc/passwd")"
dpkg --root="$R" --force-script-chrootless --log=/dev/null --purge outpost >"$T/dpkg3.log" 2>&1 ||
    fail "dpkg --purge: $(cat "$T/dpkg3.log")"
grep -q '^outpost:' "$R/etc/passwd" && fail "purge left the outpost user"
[ -e "$R/usr/bin/outpost" ] || [ -e "$env_file" ] && fail "purge left files behind"
cmp -s /etc/passwd "$T/host-passwd" || fail "the maintainer scripts changed the host's /etc/passwd"
ok "reinstall keeps the edited conffile and the one user; purge removes files and user; the host is untouched"
