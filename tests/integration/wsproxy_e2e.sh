#!/usr/bin/env bash
# tests/integration/wsproxy_e2e.sh — `outpost wsproxy server` against a real primary, on loopback:
#   create -> ls unregistered -> start the proxy (through a tcp relay to the primary) -> ls ok ->
#   kill the relay -> ls unhealthy with the proxy's error -> stop the proxy (deregisters) -> ls unreachable ->
#   restart -> delete on the primary -> the running proxy exits non-zero.
# Also: the proxy's own endpoints and headers, start-up failures with actionable messages (bad token,
# unreachable primary, a proxy given as the primary).
. "$(dirname "$0")/../lib/common.sh"

P=$(free_port)
export CODER_CONFIG_DIR=$T/cli
bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url http://127.0.0.1:$P --data-dir "$T/data" \
    --proxy-health-interval 1s
PRIMARY_PID=$LAST_PID
wait_port $P
"$OUTPOST" login http://127.0.0.1:$P --first-user-username admin --first-user-email a@b.c \
    --first-user-password 'Sup3rSecret!pw' >"$T/login.log" 2>&1 || fail "login"
"$OUTPOST" wsproxy create --name eu --only-token >"$T/token" 2>"$T/create.log" || fail "create"
TOKEN=$(tail -n 1 "$T/token")
[[ $TOKEN == *:* ]] || fail "no token from create: $(cat "$T/token")"

ls_eu() { "$OUTPOST" wsproxy ls 2>&1; }
# wait_ls PATTERN SECONDS: until the eu line of `wsproxy ls` matches
wait_ls() {
    local pat=$1 limit=$2 i
    for ((i = 0; i < limit * 4; i++)); do
        ls_eu >"$T/ls.out"
        grep -E "^eu +.*$pat" "$T/ls.out" >/dev/null && return 0
        sleep 0.25
    done
    cat "$T/ls.out" >&2
    fail "wsproxy ls did not show eu $pat within ${limit}s"
}

wait_ls 'unregistered' 5
ok "ls: eu unregistered before the proxy ever started"

# --- start-up failures are explained ---
Q=$(free_port)
CODER_PROXY_SESSION_TOKEN="${TOKEN%%:*}:$(printf 'x%.0s' {1..64})" timeout 20 "$OUTPOST" wsproxy server \
    --primary-access-url http://127.0.0.1:$P --http-address 127.0.0.1:$Q >"$T/badtoken.log" 2>&1
rc=$?
[ $rc = 78 ] || fail "bad token: exit $rc, want 78"
grep -q 'the proxy session token was refused by the primary' "$T/badtoken.log" || fail "bad token message"
ok "bad token: exit 78, 'the proxy session token was refused by the primary'"

DEAD=$(free_port)
CODER_PROXY_SESSION_TOKEN=$TOKEN timeout 20 "$OUTPOST" wsproxy server --primary-access-url http://127.0.0.1:$DEAD \
    --http-address 127.0.0.1:$Q >"$T/unreach.log" 2>&1
rc=$?
[ $rc = 69 ] || fail "unreachable primary: exit $rc, want 69"
grep -q "cannot reach the primary at http://127.0.0.1:$DEAD" "$T/unreach.log" || fail "unreachable message"
ok "unreachable primary: exit 69, 'cannot reach the primary at ...'"

# --- the proxy, reaching the primary through a tcp relay ---
R=$(free_port)
bg relay "$OUTPOST" relay --listen 127.0.0.1:$R --upstream 127.0.0.1:$P --workers 1
RELAY_PID=$LAST_PID
wait_port $R
M=$(free_port)
start_proxy() { # start_proxy PRIMARY_URL
    CODER_PROXY_SESSION_TOKEN=$TOKEN bg proxy$1 "$OUTPOST" wsproxy server --primary-access-url "$2" \
        --http-address 127.0.0.1:$Q --prometheus-enable --prometheus-address 127.0.0.1:$M --workers 2
    PROXY_PID=$LAST_PID
    wait_port $Q
}
start_proxy 1 http://127.0.0.1:$R
wait_ls ' ok' 8
ok "ls: eu ok after the proxy registered"

# --- the proxy's own endpoints ---
curl -s -D "$T/h" http://127.0.0.1:$Q/healthz >"$T/b" || fail "healthz"
[ "$(cat "$T/b")" = OK ] || fail "healthz body"
grep -qi '^X-Coder-Build-Version: v' "$T/h" || fail "X-Coder-Build-Version missing"
grep -qi '^X-Content-Type-Options: nosniff' "$T/h" || fail "nosniff missing"
[ "$(curl -s http://127.0.0.1:$Q/healthz-report)" = '{"errors":[],"warnings":[]}' ] || fail "healthz-report not clean"
curl -s http://127.0.0.1:$Q/api/v2/buildinfo | grep -q '"workspace_proxy":true' || fail "buildinfo"
curl -s -D "$T/h" -o /dev/null http://127.0.0.1:$Q/latency-check
grep -qi '^Timing-Allow-Origin: \*' "$T/h" && grep -qi '^Access-Control-Allow-Origin: \*' "$T/h" || fail "latency-check headers"
code=$(curl -s -o "$T/b" -w '%{http_code}' http://127.0.0.1:$Q/some/page)
[ "$code" = 400 ] && grep -q 'Head to the Dashboard' "$T/b" && grep -q "href=\"http://127.0.0.1:$R\">Back to site" "$T/b" || fail "dashboard page ($code)"
ok "endpoints: /healthz, /healthz-report, /api/v2/buildinfo, /latency-check, dashboard page, headers"
curl -s -D "$T/h" -o /dev/null -H "Origin: http://127.0.0.1:$R" http://127.0.0.1:$Q/healthz-report
grep -qi "^Access-Control-Allow-Origin: http://127.0.0.1:$R" "$T/h" || fail "CORS for the dashboard origin"
curl -s -D "$T/h" -o /dev/null -H "Origin: http://evil.example" http://127.0.0.1:$Q/healthz-report
grep -qi '^Access-Control-Allow-Origin' "$T/h" && fail "CORS granted to a foreign origin"
code=$(curl -s -D "$T/h" -o /dev/null -w '%{http_code}' -X OPTIONS -H "Origin: http://127.0.0.1:$R" \
    -H 'Access-Control-Request-Method: GET' http://127.0.0.1:$Q/api/v2/buildinfo)
[ "$code" = 200 ] && grep -qi '^Access-Control-Allow-Methods: GET, OPTIONS' "$T/h" || fail "preflight ($code)"
ok "CORS: the dashboard's origin only, preflight answered"

# A proxy is not a primary.
CODER_PROXY_SESSION_TOKEN=$TOKEN timeout 20 "$OUTPOST" wsproxy server --primary-access-url http://127.0.0.1:$Q \
    --http-address 127.0.0.1:$(free_port) >"$T/notprimary.log" 2>&1
rc=$?
[ $rc = 78 ] && grep -q 'is a workspace proxy' "$T/notprimary.log" || fail "pointing at a proxy: exit $rc"
ok "a proxy given as the primary is refused (exit 78)"

# --- the primary becomes unreachable for the proxy ---
kill "$RELAY_PID"
wait_ls 'unhealthy' 15
"$OUTPOST" wsproxy ls >"$T/ls.out" 2>&1
grep -q 'failed to get build info' "$T/ls.out" || { cat "$T/ls.out"; fail "ls does not show the proxy's error"; }
ok "ls: eu unhealthy with 'failed to get build info' after the relay to the primary died"
curl -s http://127.0.0.1:$M/metrics >"$T/metrics" || fail "metrics scrape"
grep -qE '^outpost_wsproxy_registration_failures_total [1-9]' "$T/metrics" || fail "registration failures not counted"
ok "metrics count the registration failures"

kill -TERM "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
[ $rc = 0 ] || fail "proxy exit $rc after SIGTERM"
wait_ls 'unreachable' 8
ok "stopped proxy: exit 0, ls shows unreachable"

# --- restart directly, then delete it on the primary ---
start_proxy 2 http://127.0.0.1:$P
wait_ls ' ok' 8
ok "restarted proxy is ok again"

# --- the primary restarts under a running proxy: the heartbeat recovers by itself ---
kill -TERM "$PRIMARY_PID"
wait "$PRIMARY_PID"
for ((i = 0; i < 40; i++)); do grep -q 'registration with the primary failed' "$T/proxy2.log" && break; sleep 0.25; done
grep -q 'registration with the primary failed' "$T/proxy2.log" || fail "proxy did not notice the primary going away"
bg primary2 "$OUTPOST" server --http-address 127.0.0.1:$P --access-url http://127.0.0.1:$P --data-dir "$T/data" \
    --proxy-health-interval 1s
PRIMARY_PID=$LAST_PID
wait_port $P
wait_ls ' ok' 15
grep -q 'registered with the primary again after' "$T/proxy2.log" || fail "recovery not logged"
ok "primary restart: the proxy's heartbeat failed, then recovered on its own; ls ok"
"$OUTPOST" wsproxy delete eu -y >"$T/delete.log" 2>&1 || fail "delete"
wait_fatal_exit "$PROXY_PID" 15 "the proxy's deletion"
grep -q 'has been deleted' "$T/proxy2.log" || fail "deletion not logged"
ok "deleted on the primary: the running proxy exited with $rc"

# --- the primary unreachable: more than 10 failed heartbeats in a row, and the proxy keeps serving ---
TOKEN2=$("$OUTPOST" wsproxy create --name eu2 --only-token 2>>"$T/create.log" | tail -n 1)
bg relay2 "$OUTPOST" relay --listen 127.0.0.1:$R --upstream 127.0.0.1:$P --workers 1
RELAY_PID=$LAST_PID
wait_port $R
CODER_PROXY_SESSION_TOKEN=$TOKEN2 bg proxy3 "$OUTPOST" wsproxy server --primary-access-url http://127.0.0.1:$R \
    --http-address 127.0.0.1:$Q --heartbeat-interval 200ms
PROXY_PID=$LAST_PID
wait_port $Q
kill "$RELAY_PID"
for ((i = 0; i < 60; i++)); do
    [ "$(grep -c 'registration with the primary failed' "$T/proxy3.log")" -ge 11 ] && break
    sleep 0.25
done
[ "$(grep -c 'registration with the primary failed' "$T/proxy3.log")" -ge 11 ] || fail "fewer than 11 failures logged"
sleep 1
kill -0 "$PROXY_PID" 2>/dev/null || fail "the proxy exited because the primary was unreachable"
grep -q 'still serving, retrying on every heartbeat' "$T/proxy3.log" || fail "the unreachable primary is not named"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$Q/healthz)" = 200 ] || fail "healthz while unreachable"
ok "the primary unreachable for more than 10 heartbeats: the proxy keeps serving and retrying"

# --- a primary that answers and refuses (the token was regenerated): exit after more than 10 refusals ---
bg relay3 "$OUTPOST" relay --listen 127.0.0.1:$R --upstream 127.0.0.1:$P --workers 1
wait_port $R
for ((i = 0; i < 40; i++)); do grep -q 'registered with the primary again' "$T/proxy3.log" && break; sleep 0.25; done
grep -q 'registered with the primary again' "$T/proxy3.log" || fail "eu2 did not register again"
"$OUTPOST" wsproxy regenerate-token eu2 >"$T/regen.log" 2>&1 || fail "regenerate-token: $(cat "$T/regen.log")"
wait_fatal_exit "$PROXY_PID" 15 "its token was regenerated"
grep -q 'registration failed more than 10 times in a row' "$T/proxy3.log" || fail "fatal reason not logged"
grep -q 'deregistering failed' "$T/proxy3.log" || fail "no deregistration attempt before exiting"
ok "more than 10 refused heartbeats (regenerated token): deregistration attempted, exit $rc"
for tok in "$TOKEN" "$TOKEN2"; do
    secret=${tok#*:}
    grep -lF "$secret" "$T"/proxy*.log "$T"/primary*.log "$T"/badtoken.log "$T"/unreach.log "$T"/notprimary.log &&
        fail "a proxy token secret appears in a log"
done
ok "no token secret in any proxy or primary log"
kill "$PRIMARY_PID"
