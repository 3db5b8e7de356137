# tests/lib/faults.sh — the deployment most fault scenarios start from (sourced after common.sh):
#   fault_deploy   a primary ($URL, path-app sharing allowed so that a public path app needs no sign-in),
#                  proxy eu ($EU, one worker, pid $EU_PID), workspace ws of the first owner admin with its
#                  real agent and one app, "pub" (share public) served by tests/lib/app_server.py as
#                  "alice"; returns once the agent is connected to both regions. $APP is the app's path URL
#                  on eu, $HAMMER the JSON prefix of app_client.py hammer for an anonymous visitor.
#                  Its arguments go to the proxy; FAULT_PROXY_RELAY=1 gives it its own URL as relay URL
#                  (--derp-server-relay-url), as a replica of several needs.
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy
FAULTS=${OUTPOST_FAULTS:-short}
CLIENT=(python3 "$ROOT/tests/lib/app_client.py")

# fault_workspace AGENT_URL: the app server "alice" on port $A and workspace ws with its real agent, which
# dials AGENT_URL and serves the app as "pub" (share public); the agent's pid in $AGENT_PID.
fault_workspace() {
    : >"$T/big"
    bg app python3 "$ROOT/tests/lib/app_server.py" $A alice "$T/big"
    wait_port $A
    "$OUTPOST" create ws >"$T/create-ws.out" 2>&1 || fail "create ws: $(cat "$T/create-ws.out")"
    mkdir -p "$T/ws"
    (cd "$T/ws" && CODER_AGENT_URL=$1 CODER_AGENT_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-ws.out") \
        exec "$OUTPOST" agent --data-dir "$T/agent-data" --app "slug=pub,url=http://127.0.0.1:$A,share=public") \
        >"$T/agent.log" 2>&1 &
    PIDS+=($!)
    AGENT_PID=$!
}

# hammer_start SPEC: app_client.py hammer SPEC in the background (output $T/hammer.out, exit code in
# $T/hammer.rc once it ends). hammer_wait SECONDS WHAT: waits for it (bounded), prints its output and fails
# unless every request was answered right.
hammer_start() {
    ( "${CLIENT[@]}" hammer "$1" >"$T/hammer.out" 2>&1; echo $? >"$T/hammer.rc" ) &
    PIDS+=($!)
}
hammer_wait() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do [ -f "$T/hammer.rc" ] && break; sleep 0.1; done
    [ -f "$T/hammer.rc" ] || fail "the load did not finish in $1 s"
    cat "$T/hammer.out"
    [ "$(cat "$T/hammer.rc")" = 0 ] || fail "requests failed: $2"
}

fault_deploy() {
    export CODER_CONFIG_DIR=$T/cli
    P=$(free_port) Q=$(free_port) A=$(free_port)
    URL=http://127.0.0.1:$P EU=http://127.0.0.1:$Q
    bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
        --proxy-health-interval 1s --agent-heartbeat-interval 2s --dangerous-allow-path-app-sharing
    PRIMARY_PID=$LAST_PID
    wait_port $P
    "$OUTPOST" login $URL --first-user-username admin --first-user-email admin@example.com \
        --first-user-password 'Admin-Pass-1' >/dev/null 2>&1 || fail "login"
    "$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>&1 || fail "wsproxy create eu"
    EU_TOKEN=$(tail -n 1 "$T/eu.token")
    local relay=()
    [ -n "${FAULT_PROXY_RELAY:-}" ] && relay=(--derp-server-relay-url $EU)
    CODER_PROXY_SESSION_TOKEN=$EU_TOKEN bg proxy "$OUTPOST" wsproxy server --primary-access-url $URL \
        --http-address 127.0.0.1:$Q --access-url $EU --workers 1 "${relay[@]}" "$@"
    EU_PID=$LAST_PID
    wait_port $Q
    fault_workspace $URL
    local i st=""
    for ((i = 0; i < 120; i++)); do
        st=$("$OUTPOST" list -o json 2>/dev/null | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])) if a["status"]=="connected" else "-")' 2>/dev/null)
        [ "$st" = eu,primary ] && break
        sleep 0.25
    done
    [ "$st" = eu,primary ] || fail "the agent did not connect to primary and eu (state: $st)"
    APP=$EU/@admin/ws/apps/pub/
    HAMMER='{"users": [{"name": "alice", "url": "'$APP'", "cookie": "", "app_path": "/"}]'
}
