#!/usr/bin/env bash
# tests/integration/agent_revoke.sh — the primary closes a revoked agent's control connection at once
# (docs/agent-protocol.md §1): a real `outpost agent` per workspace; regenerating one's token, or deleting
# the other's workspace, gets its primary control connection a GOAWAY `revoked` within 2 s (not at the
# credential's expiry, minutes later), and the agent exits 77 once the primary refuses its token; the
# other agent is untouched. A proxy is not involved: it has no database.
. "$(dirname "$0")/../lib/common.sh"
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
export CODER_CONFIG_DIR=$T/cli
P=$(free_port)
URL=http://127.0.0.1:$P
bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
    --agent-heartbeat-interval 2s
wait_port $P
"$OUTPOST" login $URL --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Admin-Pass-1' >/dev/null 2>&1 || fail "login"
declare -A APID AID
for w in one two; do
    new_workspace $w $URL
    AID[$w]=$AGENT
    mkdir -p "$T/ws-$w"
    (cd "$T/ws-$w" && CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$ATOKEN exec "$OUTPOST" agent >"$T/agent-$w.log" 2>&1) &
    PIDS+=($!)
    APID[$w]=$!
done
for w in one two; do
    for i in $(seq 100); do grep -q "agent ${AID[$w]} connected (control" "$T/primary.log" && break; sleep 0.1; done
    grep -q "agent ${AID[$w]} connected (control" "$T/primary.log" || fail "agent $w did not connect: $(tail -3 "$T/agent-$w.log")"
done
ok "two agents connected to the primary"

# revoked T0 AGENT: waits up to 2 s for the GOAWAY `revoked` of AGENT's control connection; the delay since
# T0 goes to $D (not a command substitution: fail must end the test).
revoked() {
    local t0=$1 i
    for i in $(seq 40); do
        grep -q "agent $2 control connection: GOAWAY (the agent was revoked" "$T/primary.log" && break
        sleep 0.05
    done
    grep -q "agent $2 control connection: GOAWAY (the agent was revoked" "$T/primary.log" ||
        fail "no GOAWAY revoked for agent $2 within 2 s: $(grep "$2" "$T/primary.log" | tail -3)"
    D=$(python3 -c "import time; print('%.2f' % (time.time() - $t0))")
}
exits77() {
    local i
    # The GOAWAY makes the agent ask the primary at once (not at its next manifest fetch, 5 s later).
    for i in $(seq 25); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && fail "agent $2 still runs 2.5 s after its GOAWAY revoked"
    wait "$1"
    rc=$?
    [ $rc = 77 ] || fail "agent $2 exited $rc, want 77: $(tail -3 "$T/agent-$2.log")"
}

# --- a regenerated token ---
t0=$(python3 -c 'import time; print(time.time())')
"$OUTPOST" agent-token one >/dev/null 2>&1 || fail "agent-token one"
revoked "$t0" "${AID[one]}"
exits77 "${APID[one]}" one
ok "a regenerated token: GOAWAY revoked on the primary's control connection after ${D}s, the agent exited 77"
grep -q "agent ${AID[two]} control connection: GOAWAY" "$T/primary.log" && fail "the other agent was revoked too"

# --- a deleted workspace ---
t0=$(python3 -c 'import time; print(time.time())')
"$OUTPOST" delete two -y >/dev/null 2>&1 || fail "delete two"
revoked "$t0" "${AID[two]}"
exits77 "${APID[two]}" two
ok "a deleted workspace: GOAWAY revoked on its agent's control connection after ${D}s, the agent exited 77"
