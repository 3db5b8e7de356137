#!/usr/bin/env bash
# tests/integration/quickstart.sh — the README's first command: scripts/quickstart.sh reaches "both regions
# ok", starts the demo workspace (its agent connected to both regions with the demo app), prints the tables,
# the demo app answers through the proxy with outpost tcp and, after signing in at the primary as a
# browser would (curl with a cookie jar, following redirects), at the printed path and subdomain app URLs,
# and the printed dashboard URL shows the dashboard;
# it stops cleanly on a signal (the agent reports
# itself disconnected, the proxy deregisters, every process exits), and a second run over the same data
# directory works again (tokens regenerated, password reused, no new owner).
. "$(dirname "$0")/../lib/common.sh"

export XDG_DATA_HOME=$T/xdg HOME=$T/home
mkdir -p "$HOME"
export OUTPOST_QS_PRIMARY_PORT=$(free_port) OUTPOST_QS_PROXY_PORT=$(free_port) OUTPOST_QS_APP_PORT=$(free_port)
export OUTPOST_QS_TIMEOUT=30
DATA=$XDG_DATA_HOME/outpost-quickstart

run_quickstart() { # run_quickstart N
    local log=$T/qs$1.log i
    OUTPOST_BIN=$OUTPOST bash "$ROOT/scripts/quickstart.sh" >"$log" 2>&1 &
    QS_PID=$!
    for ((i = 0; i < 160; i++)); do
        grep -q 'Press Ctrl-C to stop everything' "$log" && break
        kill -0 $QS_PID 2>/dev/null || { cat "$log"; fail "quickstart run $1 exited early"; }
        sleep 0.25
    done
    grep -q 'Press Ctrl-C to stop everything' "$log" || { cat "$log"; fail "quickstart run $1 did not finish within 40s"; }
    grep -qE '^primary +http://127.0.0.1:[0-9]+ +ok' "$log" || { cat "$log"; fail "run $1: primary not ok in the table"; }
    grep -qE '^demo-proxy +http://127.0.0.1:[0-9]+ +ok' "$log" || { cat "$log"; fail "run $1: demo-proxy not ok in the table"; }
    grep -qE '^admin/demo +main +connected +web +' "$log" || { cat "$log"; fail "run $1: the demo agent is not connected"; }
    out=$(printf 'GET / HTTP/1.0\r\n\r\n' | CODER_CONFIG_DIR=$DATA/cli "$OUTPOST" tcp demo "$OUTPOST_QS_APP_PORT" --proxy demo-proxy 2>&1)
    grep -q 'Hello from the demo workspace' <<<"$out" || fail "run $1: the demo app through demo-proxy: $out"
    # The printed app URLs, as a browser walks them: signed out, the path app on the proxy sends it to the
    # primary's sign-in page; after signing in there, the redirects lead back to the app through the proxy.
    local app sub jar=$T/jar$1 page=$T/page$1
    app=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/@admin/demo/apps/web/' "$log" | head -n 1)
    sub=$(grep -oE 'http://web--main--demo--admin\.proxy\.localhost:[0-9]+/' "$log" | head -n 1)
    [ -n "$app" ] && [ -n "$sub" ] || { cat "$log"; fail "run $1: the app URLs are not printed"; }
    local last
    last=$(curl -s -L --max-redirs 10 -c "$jar" -b "$jar" -o "$page" -w '%{url_effective}' "$app")
    case $last in */login\?redirect=*) ;; *) fail "run $1: signed out, $app ended at $last, not the sign-in page" ;; esac
    grep -q '<form' "$page" || fail "run $1: no sign-in form at $last"
    local redirect=${last#*login?redirect=}
    redirect=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))' "$redirect")
    curl -s -L --max-redirs 10 -c "$jar" -b "$jar" -o "$page" "${last%%/login*}/login" \
        --data-urlencode email=admin@example.com --data-urlencode "password=$(cat "$DATA/admin-password")" \
        --data-urlencode "redirect=$redirect"
    grep -q 'Hello from the demo workspace' "$page" || fail "run $1: after signing in, $app shows: $(head -c 300 "$page")"
    curl -s -L --max-redirs 10 -c "$jar" -b "$jar" -o "$page" "$sub"
    grep -q 'Hello from the demo workspace' "$page" || fail "run $1: the subdomain app $sub shows: $(head -c 300 "$page")"
    # The printed dashboard URL: signed in (the jar above), it is the dashboard's page.
    local dash
    dash=$(grep -oE '^Dashboard: http://127\.0\.0\.1:[0-9]+/' "$log" | head -n 1 | cut -d' ' -f2)
    [ -n "$dash" ] || { cat "$log"; fail "run $1: no dashboard URL printed"; }
    curl -s -L --max-redirs 5 -c "$jar" -b "$jar" -o "$page" "$dash"
    grep -q '<script type="module" src="/assets/app\.' "$page" || fail "run $1: the dashboard at $dash shows: $(head -c 300 "$page")"
    # What the user sees after Ctrl-C (SIGINT is ignored by background jobs of a script, so use TERM here).
    kill -TERM $QS_PID
    for ((i = 0; i < 100; i++)); do kill -0 $QS_PID 2>/dev/null || break; sleep 0.1; done
    kill -0 $QS_PID 2>/dev/null && fail "run $1: quickstart still running 10s after the signal"
    wait $QS_PID
    local rc=$?
    [ $rc = 0 ] || { cat "$log"; fail "run $1: exit $rc after the signal"; }
    grep -q 'deregistered replica' "$DATA/proxy.log" || fail "run $1: the proxy did not deregister"
    grep -q 'reported the agent disconnected' "$DATA/agent.log" || fail "run $1: the agent did not report itself disconnected"
    pgrep -f -- "http.server $OUTPOST_QS_APP_PORT" >/dev/null && fail "run $1: the demo app is still running"
    pgrep -f -- "--data-dir $DATA/primary" >/dev/null && fail "run $1: the primary is still running"
    cp "$DATA/proxy.log" "$T/proxy$1.log"
    cp "$DATA/primary.log" "$T/primary$1.log"
}

run_quickstart 1
grep -q 'Created the first owner: username admin, password Qs-' "$T/qs1.log" || fail "password not printed once"
grep -q 'Created workspace proxy demo-proxy' "$T/qs1.log" || fail "proxy not created"
[ "$(stat -c %a "$DATA/admin-password")" = 600 ] || fail "password file mode"
grep -q 'Created workspace demo' "$T/qs1.log" || fail "demo workspace not created"
ok "first run: owner created (password printed), demo-proxy and workspace demo created, both regions ok, the demo agent connected to both, its app reached through demo-proxy (outpost tcp; path and subdomain app URLs after signing in), clean stop"

run_quickstart 2
grep -q 'password Qs-' "$T/qs2.log" && fail "second run printed the password again"
grep -q 'Workspace proxy demo-proxy exists: issued it a new token' "$T/qs2.log" || fail "second run did not regenerate"
grep -q 'Workspace demo exists: issued its agent a new token' "$T/qs2.log" || fail "second run did not renew the agent token"
ok "second run: same data, tokens regenerated, both regions ok, the demo agent connected again, clean stop"
