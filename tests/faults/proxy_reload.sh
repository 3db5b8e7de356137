#!/usr/bin/env bash
# SIGHUP reloads of a workspace proxy under app load: an anonymous visitor of a public path app keeps 4
# keep-alive connections busy through proxy eu while the proxy is sent SIGHUP 20 times (full form: 100),
# 50 ms apart. Every request must be answered right (its own body), none may fail, and the connections
# must survive the reloads (a reload does not close keep-alive connections).
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/faults.sh"
RELOADS=20 N=6000
[ "$FAULTS" = full ] && RELOADS=100 N=30000
fault_deploy
"${CLIENT[@]}" hammer "$HAMMER"', "n": 40, "conns": 1}' >"$T/warm.out" 2>&1 || fail "warm-up: $(cat "$T/warm.out")"
hammer_start "$HAMMER"', "n": '$N', "conns": 4}'
sleep 0.3
for ((i = 0; i < RELOADS; i++)); do
    kill -HUP "$EU_PID" || fail "the proxy is gone after $i reloads"
    sleep 0.05
done
[ -f "$T/hammer.rc" ] && fail "the load ended before the last reload (raise N): $(cat "$T/hammer.out")"
hammer_wait 60 "during $RELOADS reloads"
grep -q "$N/$N right (4 connections opened" "$T/hammer.out" || fail "connections were closed by the reloads"
kill -0 "$EU_PID" || fail "the proxy died"
reloaded=$(grep -c "reload" "$T/proxy.log")
[ "$reloaded" -ge 1 ] || fail "the proxy logged no reload"
ok "$RELOADS reloads under load: $N/$N requests right, 0 failed, the 4 keep-alive connections kept ($reloaded reload lines logged)"
