#!/usr/bin/env bash
# tests/integration/deploy_systemd.sh — the shipped systemd units (deploy/systemd/*.service):
#   `systemd-analyze verify` accepts both, with ExecStart= pointing at the binary under test (copies in a
#   temporary directory); the notify/reload/user/capability/limit settings the packaging relies on are
#   there; `systemd-analyze security --offline=yes` scores the proxy at 2.5 ("OK") or better and the
#   primary at 3.0 or better, with io_uring allowed by the syscall filter.
. "$(dirname "$0")/../lib/common.sh"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is not installed (scripts/deps.sh installs systemd)"; exit 1; }
UNITS=$ROOT/deploy/systemd
mkdir -p "$T/units"
for u in outpost.service outpost-workspace-proxy.service; do
    [ -f "$UNITS/$u" ] || fail "missing $UNITS/$u"
    sed "s#/usr/bin/outpost#$OUTPOST#g" "$UNITS/$u" >"$T/units/$u"
done
# Documentation=man: pages are checked when the package is built (deploy_deb.sh); here only the unit.
systemd-analyze verify --man=no "$T"/units/*.service >"$T/verify.log" 2>&1 || fail "systemd-analyze verify: $(cat "$T/verify.log")"
[ -s "$T/verify.log" ] && fail "systemd-analyze verify printed warnings: $(cat "$T/verify.log")"
ok "systemd-analyze verify accepts both units"

for u in outpost.service outpost-workspace-proxy.service; do
    f=$UNITS/$u
    for want in '^Type=notify$' '^User=outpost$' '^Group=outpost$' '^ExecReload=/bin/kill -HUP \$MAINPID$' \
        '^AmbientCapabilities=CAP_NET_BIND_SERVICE$' '^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$' \
        '^LimitNOFILE=1048576$' '^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^MemoryDenyWriteExecute=yes$' \
        '^SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register$' \
        '^RestartPreventExitStatus=78$' '^EnvironmentFile=-?/etc/outpost.d/outpost(-workspace-proxy)?.env$'; do
        grep -Eq "$want" "$f" || fail "$u lacks $want"
    done
done
grep -q '^ExecStart=/usr/bin/outpost wsproxy server --env-file /etc/outpost.d/outpost-workspace-proxy.env$' \
    "$UNITS/outpost-workspace-proxy.service" || fail "the proxy unit does not pass its env file with --env-file"
ok "both units: notify, reload by SIGHUP, user outpost, CAP_NET_BIND_SERVICE only, LimitNOFILE, io_uring allowed"

if ! systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    echo "this systemd-analyze has no security --offline"; exit 77
fi
score() { # unit -> the exposure number
    systemd-analyze security --offline=yes --no-pager "$T/units/$1" >"$T/security-$1.log" 2>&1
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$T/security-$1.log"
}
ps=$(score outpost-workspace-proxy.service)
pp=$(score outpost.service)
[ -n "$ps" ] && [ -n "$pp" ] || fail "no exposure score: $(tail -n 3 "$T"/security-*.log)"
echo "exposure: outpost-workspace-proxy.service $ps, outpost.service $pp"
awk -v s="$ps" 'BEGIN { exit !(s <= 2.5) }' || fail "proxy exposure $ps > 2.5: $(grep '✗' "$T/security-outpost-workspace-proxy.service.log")"
awk -v s="$pp" 'BEGIN { exit !(s <= 3.0) }' || fail "primary exposure $pp > 3.0"
ok "systemd-analyze security: proxy $ps, primary $pp"
