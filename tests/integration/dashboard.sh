#!/usr/bin/env bash
# tests/integration/dashboard.sh — the dashboard in a real browser: Debian's chromium driven by
# playwright-core (scripts/deps.sh installs both) through tests/browser/dashboard.mjs, against real
# processes on loopback:
#   - the primary, seen by the browser through a delaying relay (80 ms each way) at http://127.0.0.1:PR
#     (its access URL; wildcard *.primary.localhost:PR);
#   - workspace proxy "fast" at http://localhost:FR (a relay with no delay, so its latency can be raised
#     later; wildcard *.fast.localhost:FR) and "slow" at http://127.0.0.2:SR (a relay holding 250 ms each
#     way, also on 127.0.0.1 for its wildcard *.slow.localhost:SR); three hosts, so that no cookie of one is
#     sent to another; the delays are far apart so that one latency sample each orders them even on a busy
#     machine;
#   - the workspace ws of admin: the real `outpost agent` with a path app "web" and a subdomain app "sub"
#     (tests/lib/app_server.py, which is also a listening port of the workspace).
# The browser script walks: first-owner setup, sign-out and sign-in, the agent connected, the picker with
# every region and its latency, the fast proxy auto-selected on first load and kept across reloads even after
# its latency grew, the app opened through it, a second tab following a selection change, the fast proxy
# killed while the primary is frozen (SIGSTOP: its health checker and API cannot tell the page anything, so
# only the page's own failed probes can make it fall back to primary, within 10 s; the port menu still
# there), then the primary resumed and fast restarted (the choice back), the
# deployment page (status, create with the token shown once, regenerate, delete), the terminal through fast
# and the primary, no console errors. Then, with curl: the same-origin rule and the CSP and cache headers.
# The processes are started and stopped here, when the browser script asks (a request file, see ctl below).
# Screenshots of every page: $BUILD_DIR/test-logs/dashboard-shots/.
. "$(dirname "$0")/../lib/common.sh"
command -v node >/dev/null || { echo "node missing (scripts/deps.sh)"; exit 77; }
[ -x /usr/bin/chromium ] || { echo "chromium missing (scripts/deps.sh)"; exit 77; }
NODE_MODULES=$("$ROOT/scripts/deps.sh" --print-node-modules)
[ -d "$NODE_MODULES/playwright-core" ] || { echo "playwright-core missing (scripts/deps.sh)"; exit 77; }
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy
export CODER_CONFIG_DIR=$T/cli
P=$(free_port) PR=$(free_port) F=$(free_port) FR=$(free_port) S=$(free_port) SR=$(free_port) A=$(free_port)
TP=$(free_port)
DASH=http://127.0.0.1:$PR FAST=http://localhost:$FR SLOW=http://127.0.0.2:$SR THIRD=http://127.0.0.3:$TP
PW='Dash-Owner-Pass-1'
SHOTS=${BUILD_DIR:-$T}/test-logs/dashboard-shots
rm -rf "$SHOTS" && mkdir -p "$SHOTS" "$T/ctl"
echo 80 >"$T/primary.delay"
echo 0 >"$T/fast.delay"
echo 250 >"$T/slow.delay"

bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $DASH --data-dir "$T/data" \
    --wildcard-access-url "*.primary.localhost:$PR" --proxy-health-interval 1s --agent-heartbeat-interval 2s
PRIMARY_PID=$LAST_PID
bg relay-primary python3 "$ROOT/tests/lib/delay_relay.py" 127.0.0.1 $PR $P "$T/primary.delay"
bg relay-fast python3 "$ROOT/tests/lib/delay_relay.py" 127.0.0.1 $FR $F "$T/fast.delay"
bg relay-slow python3 "$ROOT/tests/lib/delay_relay.py" 127.0.0.2,127.0.0.1 $SR $S "$T/slow.delay"
wait_port $P
wait_port $PR
bg app python3 "$ROOT/tests/lib/app_server.py" $A admin /dev/null
wait_port $A

start_proxy() { # start_proxy NAME PORT ACCESS_URL WILDCARD: sets PROXY_PID
    CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/$1.token") bg "proxy-$1-$SECONDS" "$OUTPOST" wsproxy server \
        --primary-access-url $DASH --http-address 127.0.0.1:$2 --access-url "$3" --wildcard-access-url "$4" --workers 1
    PROXY_PID=$LAST_PID
    wait_port $2
}

# Everything the browser did not do itself: the owner it created signs in on the CLI, both proxies are
# created and started, the workspace and its agent start; done when every region is ok and the agent is
# connected to all three with its apps.
provision() {
    "$OUTPOST" login http://127.0.0.1:$P --username admin --password "$PW" >"$T/login.log" 2>&1 || return 1
    "$OUTPOST" wsproxy create --name fast --display-name "Fast Proxy" --icon /emojis/1f680.png --only-token \
        >"$T/fast.token" 2>>"$T/cli.log" || return 1
    "$OUTPOST" wsproxy create --name slow --display-name "Slow Proxy" --icon /emojis/1f40c.png --only-token \
        >"$T/slow.token" 2>>"$T/cli.log" || return 1
    start_proxy fast $F $FAST "*.fast.localhost:$FR"
    FAST_PID=$PROXY_PID
    start_proxy slow $S $SLOW "*.slow.localhost:$SR"
    "$OUTPOST" create ws >"$T/create-ws.out" 2>&1 || return 1
    mkdir -p "$T/ws"
    (cd "$T/ws" && CODER_AGENT_URL=http://127.0.0.1:$P \
        CODER_AGENT_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-ws.out") exec "$OUTPOST" agent \
        --data-dir "$T/agent-data" --app "slug=web,url=http://127.0.0.1:$A,name=Demo Web,share=owner" \
        --app "slug=sub,url=http://127.0.0.1:$A,name=Sub App,share=owner,subdomain=true") >"$T/agent.log" 2>&1 &
    PIDS+=($!)
    wait_all_ok 40
}

# A third proxy, created and started after the pages loaded (their CSP does not name it): done when the
# primary lists it ok.
start_third() {
    "$OUTPOST" wsproxy create --name third --display-name "Third Proxy" --icon /emojis/1f6f0.png --only-token \
        >"$T/third.token" 2>>"$T/cli.log" || return 1
    CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/third.token") bg proxy-third "$OUTPOST" wsproxy server \
        --primary-access-url $DASH --http-address 127.0.0.3:$TP --access-url $THIRD \
        --wildcard-access-url "*.third.localhost:$TP" --workers 1
    local i
    for ((i = 0; i < 160; i++)); do
        "$OUTPOST" wsproxy ls >"$T/ls.out" 2>&1 && grep -qE '^third .* ok *$' "$T/ls.out" && return 0
        sleep 0.25
    done
    cat "$T/ls.out" >&2
    return 1
}

wait_all_ok() { # wait_all_ok SECONDS: every region ok and the agent connected to all of them with 2 apps
    local i
    for ((i = 0; i < $1 * 4; i++)); do
        if "$OUTPOST" wsproxy ls >"$T/ls.out" 2>&1 && [ "$(grep -cE '^(primary|fast|slow) .* ok *$' "$T/ls.out")" = 3 ] &&
            "$OUTPOST" list -o json 2>/dev/null | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
sys.exit(0 if a["status"]=="connected" and sorted(a["regions"])==["fast","primary","slow"] and len(a["apps"])==2 else 1)'; then
            return 0
        fi
        sleep 0.25
    done
    cat "$T/ls.out" >&2
    return 1
}

# ctl: serves the browser script's requests (one at a time: $T/ctl/req holds the command, the answer goes to
# $T/ctl/ack as "ok" or "error ...") until the script exits; its exit status ends up in $rc.
ctl() {
    local cmd i
    while kill -0 "$NODE_PID" 2>/dev/null; do
        if [ -f "$T/ctl/req" ]; then
            cmd=$(cat "$T/ctl/req")
            rm -f "$T/ctl/req"
            echo "$(date +%T) ctl: $cmd" >>"$T/ctl.log"
            local answer=ok
            case $cmd in
            provision) provision || answer="error provisioning (see logs)" ;;
            fast-latency-*) echo "${cmd#fast-latency-}" >"$T/fast.delay" ;;
            stop-fast) # the primary frozen, then fast killed: only the page's own probes can notice now
                kill -STOP "$PRIMARY_PID"
                kill -KILL "$FAST_PID"
                for ((i = 0; i < 50; i++)); do kill -0 "$FAST_PID" 2>/dev/null || break; sleep 0.1; done
                kill -0 "$FAST_PID" 2>/dev/null && answer="error: fast still running"
                ;;
            resume-primary) kill -CONT "$PRIMARY_PID" ;;
            start-fast) start_proxy fast $F $FAST "*.fast.localhost:$FR" && FAST_PID=$PROXY_PID ;;
            hang-fast) kill -STOP "$FAST_PID" ;; # accepts connections (the kernel's backlog), answers nothing
            resume-fast) kill -CONT "$FAST_PID" ;;
            kill-fast) # refuses connections from now on
                kill -KILL "$FAST_PID"
                for ((i = 0; i < 50; i++)); do kill -0 "$FAST_PID" 2>/dev/null || break; sleep 0.1; done
                kill -0 "$FAST_PID" 2>/dev/null && answer="error: fast still running"
                ;;
            start-third) start_third || answer="error starting the third proxy (see logs)" ;;
            *) answer="error: unknown request $cmd" ;;
            esac
            echo "$answer" >"$T/ctl/ack.tmp" && mv "$T/ctl/ack.tmp" "$T/ctl/ack"
        fi
        sleep 0.1
    done
    wait "$NODE_PID"
    rc=$?
}

DASH=$DASH FAST=$FAST SLOW=$SLOW THIRD=$THIRD PW=$PW SHOTS=$SHOTS CTL=$T/ctl NODE_MODULES=$NODE_MODULES \
    node "$ROOT/tests/browser/dashboard.mjs" >"$T/browser.log" 2>&1 &
NODE_PID=$!
PIDS+=($NODE_PID)
ctl
grep -E '^(ok|FAIL|note) ' "$T/browser.log"
[ $rc = 0 ] || fail "browser scenario failed (rc $rc): $(tail -n 30 "$T/browser.log")"
n=$(ls "$SHOTS"/*.png 2>/dev/null | wc -l)
[ "$n" -ge 8 ] || fail "only $n screenshots in $SHOTS"
ok "browser scenario passed; $n screenshots in $SHOTS"

# The same-origin rule on cookie-authenticated changes (a browser always sends Origin on a POST; a page of
# another site cannot forge it): the dashboard's origin passes, another origin or a cross-site fetch is 403.
SESSION=$(cat "$T/cli/session")
post() { # post ARGS...: the status of an invalid proxy creation (400 once past the check) with the cookie
    curl -s -o /dev/null -w '%{http_code}' -X POST -H "Cookie: coder_session_token=$SESSION" \
        -H 'Content-Type: application/json' --data '{}' "$@" "$DASH/api/v2/workspaceproxies"
}
[ "$(post -H "Origin: $FAST")" = 403 ] || fail "a cookie POST with a foreign Origin is not refused"
[ "$(post -H 'Sec-Fetch-Site: cross-site')" = 403 ] || fail "a cross-site cookie POST is not refused"
[ "$(post -H 'Sec-Fetch-Site: same-site')" = 403 ] || fail "a same-site (other port or subdomain) cookie POST is not refused"
[ "$(post -H "Origin: $FAST" -H "Coder-Session-Token: $SESSION")" = 400 ] || fail "a header-token POST is refused"
[ "$(post -H "Origin: $DASH" -H 'Sec-Fetch-Site: same-origin')" = 400 ] || fail "a same-origin cookie POST is refused"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Origin: $FAST" --data 'email=admin%40example.com&password=x' "$DASH/login")
[ "$code" = 403 ] || fail "a cross-origin sign-in form post answers $code"
ok "cookie-authenticated changes: foreign Origin and cross-site 403, header tokens and the dashboard's origin pass"

# The headers of the pages and of the hashed files.
curl -s -D "$T/page.head" -o "$T/page.html" "$DASH/login" >/dev/null
grep -qi "^content-security-policy: default-src 'none'; script-src 'self'; style-src 'self';" "$T/page.head" || fail "no strict CSP on /login"
grep -qi "connect-src 'self' $FAST ws://${FAST#http://} $SLOW ws://${SLOW#http://} $THIRD ws://${THIRD#http://};" "$T/page.head" ||
    fail "the CSP does not let the picker probe the three proxies: $(grep -i content-security "$T/page.head")"
asset=$(grep -o '/assets/app\.[0-9a-f]*\.css' "$T/page.html" | head -n 1)
[ -n "$asset" ] || fail "no hashed stylesheet on /login"
curl -s -D "$T/asset.head" -o /dev/null "$DASH$asset"
grep -qi '^cache-control: public, max-age=31536000, immutable' "$T/asset.head" || fail "hashed asset not cached long: $(cat "$T/asset.head")"
grep -qi '^etag: "' "$T/asset.head" || fail "no ETag on $asset"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$DASH/assets/app.000000000000.css")" = 404 ] || fail "an unknown asset is not 404"
curl -s -D "$T/term.head" -o "$T/term.html" -H "Cookie: coder_session_token=$(cat "$T/cli/session")" "$DASH/@admin/ws.main/terminal"
grep -qF "<meta name=\"outpost-connect-src\" content=\"$FAST ws://${FAST#http://} $SLOW ws://${SLOW#http://} $THIRD ws://${THIRD#http://}\">" "$T/term.html" ||
    fail "the shell does not repeat the CSP's origins: $(grep -o '<meta name="outpost-connect-src"[^>]*>' "$T/term.html")"
grep -qi "^content-security-policy: default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';" "$T/term.head" ||
    fail "the terminal page's CSP: $(grep -i content-security "$T/term.head")"
grep -qi "^content-security-policy: .*style-src 'self';" "$T/page.head" || fail "inline styles allowed outside the terminal page"
ok "strict CSP (connect-src: the primary and the three proxies, http and ws; inline styles on the terminal page only), the shell repeats connect-src's origins; hashed assets cached for a year with an ETag"
