#!/usr/bin/env bash
# tests/integration/quickstart.sh — the README's first command: scripts/quickstart.sh reaches "both regions
# ok", prints the table, stops cleanly on a signal (the proxy deregisters, both processes exit), and a second
# run over the same data directory works again (token regenerated, password reused, no new owner).
. "$(dirname "$0")/../lib/common.sh"

export XDG_DATA_HOME=$T/xdg HOME=$T/home
mkdir -p "$HOME"
export OUTPOST_QS_PRIMARY_PORT=$(free_port) OUTPOST_QS_PROXY_PORT=$(free_port) OUTPOST_QS_TIMEOUT=30
DATA=$XDG_DATA_HOME/outpost-quickstart

run_quickstart() { # run_quickstart N
    local log=$T/qs$1.log i
    OUTPOST_BIN=$OUTPOST bash "$ROOT/scripts/quickstart.sh" >"$log" 2>&1 &
    QS_PID=$!
    for ((i = 0; i < 160; i++)); do
        grep -q 'Press Ctrl-C to stop both' "$log" && break
        kill -0 $QS_PID 2>/dev/null || { cat "$log"; fail "quickstart run $1 exited early"; }
        sleep 0.25
    done
    grep -q 'Press Ctrl-C to stop both' "$log" || { cat "$log"; fail "quickstart run $1 did not finish within 40s"; }
    grep -qE '^primary +http://127.0.0.1:[0-9]+ +ok' "$log" || { cat "$log"; fail "run $1: primary not ok in the table"; }
    grep -qE '^demo-proxy +http://127.0.0.1:[0-9]+ +ok' "$log" || { cat "$log"; fail "run $1: demo-proxy not ok in the table"; }
    # What the user sees after Ctrl-C (SIGINT is ignored by background jobs of a script, so use TERM here).
    kill -TERM $QS_PID
    for ((i = 0; i < 100; i++)); do kill -0 $QS_PID 2>/dev/null || break; sleep 0.1; done
    kill -0 $QS_PID 2>/dev/null && fail "run $1: quickstart still running 10s after the signal"
    wait $QS_PID
    local rc=$?
    [ $rc = 0 ] || { cat "$log"; fail "run $1: exit $rc after the signal"; }
    grep -q 'deregistered replica' "$DATA/proxy.log" || fail "run $1: the proxy did not deregister"
    pgrep -f -- "--data-dir $DATA/primary" >/dev/null && fail "run $1: the primary is still running"
    cp "$DATA/proxy.log" "$T/proxy$1.log"
    cp "$DATA/primary.log" "$T/primary$1.log"
}

run_quickstart 1
grep -q 'Created the first owner: username admin, password Qs-' "$T/qs1.log" || fail "password not printed once"
grep -q 'Created workspace proxy demo-proxy' "$T/qs1.log" || fail "proxy not created"
[ "$(stat -c %a "$DATA/admin-password")" = 600 ] || fail "password file mode"
ok "first run: owner created (password printed), demo-proxy created, both regions ok, clean stop"

run_quickstart 2
grep -q 'password Qs-' "$T/qs2.log" && fail "second run printed the password again"
grep -q 'Workspace proxy demo-proxy exists: issued it a new token' "$T/qs2.log" || fail "second run did not regenerate"
ok "second run: same data, token regenerated, both regions ok, clean stop"
