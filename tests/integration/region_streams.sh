#!/usr/bin/env bash
# tests/integration/region_streams.sh — agent streams through both kinds of region, with real processes on
# loopback: a primary, one workspace proxy, an agent speaking the agent wire protocol (tests/lib/fake_agent.py:
# control connection + spares; it opens no listening port) and a Python echo server "in the workspace".
# Through the primary and through the proxy: 64 MiB each way with matching SHA-256, 200 concurrent streams;
# no token -> 401, wrong port / other region / bad token -> 403, unknown agent -> 404, the agent's ERR ->
# 502 before the upgrade; a stream through the proxy survives the primary being stopped. The streams, the 502
# for a closed port and the set-up measurement run again with `outpost agent` itself. The configured limits
# (spares, wait, heartbeat) are checked too. Also measures
# stream set-up (p50/p99 over sequential streams) and throughput through the proxy.
. "$(dirname "$0")/../lib/common.sh"
command -v curl >/dev/null || { echo "curl missing"; exit 77; }
SC() { python3 "$ROOT/tests/lib/stream_client.py" "$@"; }
SETUP_N=${REGION_SETUP_STREAMS:-500}

P=$(free_port)
Q=$(free_port)
E=$(free_port)
R=$(free_port) # the port the agent refuses (ERR 2)
export CODER_CONFIG_DIR=$T/cli
bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url http://127.0.0.1:$P --data-dir "$T/data" \
    --proxy-health-interval 1s --agent-stream-limits spares=5,heartbeat=1s
PRIMARY_PID=$LAST_PID
wait_port $P
"$OUTPOST" login http://127.0.0.1:$P --first-user-username admin --first-user-email a@b.c \
    --first-user-password 'Sup3rSecret!pw' >"$T/login.log" 2>&1 || fail "login"
SESSION=$(cat "$T/cli/session")
"$OUTPOST" wsproxy create --name eu --only-token >"$T/token" 2>"$T/create.log" || fail "wsproxy create"
PTOKEN=$(tail -n 1 "$T/token")
CODER_PROXY_SESSION_TOKEN=$PTOKEN CODER_AGENT_STREAM_LIMITS=spares=3,wait=1s bg proxy "$OUTPOST" wsproxy server --primary-access-url http://127.0.0.1:$P \
    --http-address 127.0.0.1:$Q --access-url http://127.0.0.1:$Q --workers 2
PROXY_PID=$LAST_PID
wait_port $Q
new_workspace dev http://127.0.0.1:$P

bg echo python3 "$SERVERS" echo $E
wait_port $E
bg agent python3 "$ROOT/tests/lib/fake_agent.py" --primary http://127.0.0.1:$P --token "$ATOKEN" \
    --region http://127.0.0.1:$P --region http://127.0.0.1:$Q --refuse-port $R
AGENT_PID=$LAST_PID
for i in $(seq 100); do
    [ "$(grep -c '^control up' "$T/agent.log")" = 2 ] && break
    sleep 0.1
done
grep -q "^control up http://127.0.0.1:$P primary spares=5$" "$T/agent.log" || fail "no control connection to the primary"
grep -q "^control up http://127.0.0.1:$Q eu spares=3$" "$T/agent.log" || fail "no control connection to the proxy (named eu)"
ok "the agent's control connections are up: WELCOME names the regions primary and eu, with the spares each was configured to want (--agent-stream-limits, CODER_AGENT_STREAM_LIMITS)"
if command -v ss >/dev/null; then
    ss -ltnp 2>/dev/null | grep -q "pid=$AGENT_PID," && fail "the agent listens on a port"
    ok "the agent has no listening socket"
fi

for region in primary eu; do
    [ $region = primary ] && URL=http://127.0.0.1:$P || URL=http://127.0.0.1:$Q
    TOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $E $region) || fail "connect token for $region"
    out=$(SC bulk $URL "$AGENT" $E "$TOK" 64) || fail "$region: 64 MiB: $out"
    ok "$region: 64 MiB each way through the agent, SHA-256 matches ($out)"
    out=$(SC many $URL "$AGENT" $E "$TOK" 200) || fail "$region: 200 concurrent streams: $out"
    ok "$region: $out"

    out=$(SC status $URL "$AGENT" $E -)
    [[ $out == "401 "*"connect token is required"* ]] || fail "$region: no token: $out"
    ok "$region: no token -> 401 ($out)"
    out=$(SC status $URL "$AGENT" $((E + 1)) "$TOK")
    [[ $out == "403 "*"another port"* ]] || fail "$region: wrong port: $out"
    other=$([ $region = primary ] && echo eu || echo primary)
    OTOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $E $other)
    out2=$(SC status $URL "$AGENT" $E "$OTOK")
    [[ $out2 == "403 "*"another region"* ]] || fail "$region: token for $other: $out2"
    bad_sig="${TOK%.*}.$(printf 'A%.0s' {1..86})"
    out3=$(SC status $URL "$AGENT" $E "$bad_sig")
    [[ $out3 == "403 "*"Invalid connect token"* ]] || fail "$region: bad signature: $out3"
    ok "$region: wrong port, other region, bad signature -> 403"
    out=$(SC status $URL "00000000-0000-4000-8000-000000000000" $E "$TOK")
    [[ $out == "403 "*"another agent"* ]] || fail "$region: token for another agent: $out"
    RTOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $R $region)
    out=$(SC status $URL "$AGENT" $R "$RTOK")
    [[ $out == "502 "*"could not connect to port $R"*"forbidden by the test agent"* ]] || fail "$region: ERR: $out"
    ok "$region: the agent's ERR -> 502 before the upgrade ($out)"
done

# Expired tokens: re-signed here with the primary's own key (read from its database) with exp 2 minutes in
# the past (beyond the 60 s leeway); the same re-signing with exp in the future works, so the refusal is the
# expiry's. Connect tokens -> 403 at both regions, agent credentials -> 401.
resign() { # resign TOKEN EXP_OFFSET_SECONDS
    PYTHONPATH=$ROOT/tests/lib python3 - "$T/data" "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, sys, time, testdb
db, tok, off = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
e = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
h, p, _ = tok.split(".")
kid = int(json.loads(d(h))["kid"])
row = testdb.connect(db).query("SELECT secret FROM crypto_keys WHERE feature = 'workspace_apps_token' AND sequence = ?", (kid,))[0]
claims = json.loads(d(p))
claims["exp"] = int(time.time()) + off
p2 = e(json.dumps(claims, separators=(",", ":")).encode())
print(h + "." + p2 + "." + e(hmac.new(bytes.fromhex(row[0]), (h + "." + p2).encode(), hashlib.sha512).digest()))
PY
}
for region in primary eu; do
    [ $region = primary ] && URL=http://127.0.0.1:$P || URL=http://127.0.0.1:$Q
    TOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $E $region)
    out=$(SC status $URL "$AGENT" $E "$(resign "$TOK" -120)")
    [[ $out == "403 "*"expired"* ]] || fail "$region: expired connect token: $out"
    out=$(SC many $URL "$AGENT" $E "$(resign "$TOK" 30)" 1) || fail "$region: re-signed token refused: $out"
    CRED=$(curl -s -X POST -H "Coder-Session-Token: $ATOKEN" http://127.0.0.1:$P/api/v2/workspaceagents/me/credential |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])')
    code=$(curl -s -o "$T/cred.out" -w '%{http_code}' -H "Authorization: Bearer $(resign "$CRED" -120)" \
        -H "Connection: Upgrade" -H "Upgrade: outpost-agent/1" $URL/api/v2/workspaceagents/me/control)
    [ "$code" = 401 ] && grep -q expired "$T/cred.out" || fail "$region: expired credential: $code $(cat "$T/cred.out")"
    code=$(curl -s -o "$T/cred.out" -w '%{http_code}' -H "Connection: Upgrade" -H "Upgrade: outpost-stream/1" \
        $URL/api/v2/workspaceagents/me/stream)
    [ "$code" = 401 ] || fail "$region: spare without credential: $code $(cat "$T/cred.out")"
    ok "$region: expired connect token -> 403 (a fresh signature with a future exp works), expired credential -> 401, none -> 401"
done

# A valid token for an agent that has no control connection: 404, nothing reaches any agent.
"$OUTPOST" create idle >"$T/create-idle.log" 2>&1 || fail "create idle: $(cat "$T/create-idle.log")"
IDLE=$(SC agent-id http://127.0.0.1:$P "$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-idle.log")")
for region in primary eu; do
    [ $region = primary ] && URL=http://127.0.0.1:$P || URL=http://127.0.0.1:$Q
    out=$(SC status $URL "$IDLE" $E "$(SC token http://127.0.0.1:$P "$SESSION" "$IDLE" $E $region)")
    [[ $out == "404 "*"not connected to this region"* ]] || fail "$region: agent not connected: $out"
done
ok "an agent without a control connection -> 404 at both regions"

# The wait bound (the proxy runs with wait=1s): an agent that keeps its control connection but never opens a
# spare. (The waiters bound is checked by test_region_broker.)
bg idle-agent python3 "$ROOT/tests/lib/fake_agent.py" --primary http://127.0.0.1:$P \
    --token "$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-idle.log")" --region http://127.0.0.1:$Q --no-spares
for i in $(seq 100); do grep -q '^control up' "$T/idle-agent.log" && break; sleep 0.1; done
ITOK=$(SC token http://127.0.0.1:$P "$SESSION" "$IDLE" $E eu)
W=()
for i in 1 2; do
    SC status http://127.0.0.1:$Q "$IDLE" $E "$ITOK" >"$T/wait$i.out" 2>&1 &
    W+=($!)
done
wait "${W[@]}"
res=$(cat "$T"/wait?.out | sort)
[ "$(grep -c '^502 .*no stream connection within 1000 ms' <<<"$res")" = 2 ] || fail "wait bound: $res"
ok "no spare within the configured wait (1 s) -> 502 for both waiting clients"

# The heartbeat (the primary runs with heartbeat=1s): a control connection that never answers PING is
# closed after three silent heartbeats, while the answering agents' connections stay up.
t0=$(date +%s%N)
bg silent-agent python3 "$ROOT/tests/lib/fake_agent.py" --primary http://127.0.0.1:$P \
    --token "$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-idle.log")" --region http://127.0.0.1:$P --no-spares --no-pong
for i in $(seq 100); do grep -q 'lost' "$T/silent-agent.log" && break; sleep 0.1; done
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "^control up" "$T/silent-agent.log" && grep -q 'lost' "$T/silent-agent.log" || fail "silent agent not closed: $(cat "$T/silent-agent.log")"
grep -q "agent $IDLE: no frame for three heartbeats" "$T/primary.log" || fail "no heartbeat log line"
grep -q 'lost' "$T/agent.log" && fail "the answering agent lost a control connection: $(grep lost "$T/agent.log")"
ok "a control connection that answers no PING is closed after three heartbeats (${ms} ms with heartbeat=1s)"

# Set-up time through the proxy.
TOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $E eu)
out=$(SC setup http://127.0.0.1:$Q "$AGENT" $E "$TOK" "$SETUP_N") || fail "set-up: $out"
ok "through the proxy (test agent): $out"

# The same through `outpost agent` (the real one), when this build has it.
if "$OUTPOST" agent --help >/dev/null 2>&1; then
    kill $AGENT_PID
    wait $AGENT_PID 2>/dev/null
    before_p=$(grep -c "agent $AGENT connected (control" "$T/primary.log")
    before_q=$(grep -c "agent $AGENT connected (control" "$T/proxy.log")
    mkdir -p "$T/ws"
    (cd "$T/ws" && CODER_AGENT_URL=http://127.0.0.1:$P CODER_AGENT_TOKEN=$ATOKEN exec "$OUTPOST" agent) \
        >"$T/outpost-agent.log" 2>&1 &
    PIDS+=($!)
    for i in $(seq 150); do
        [ "$(grep -c "agent $AGENT connected (control" "$T/primary.log")" -gt "$before_p" ] &&
            [ "$(grep -c "agent $AGENT connected (control" "$T/proxy.log")" -gt "$before_q" ] && break
        sleep 0.1
    done
    [ "$(grep -c "agent $AGENT connected (control" "$T/proxy.log")" -gt "$before_q" ] ||
        fail "outpost agent: no control connection to the proxy"
    [ "$(grep -c "agent $AGENT connected (control" "$T/primary.log")" -gt "$before_p" ] ||
        fail "outpost agent: no control connection to the primary"
    ok "outpost agent: control connections to primary and eu are up"
    for region in primary eu; do
        [ $region = primary ] && URL=http://127.0.0.1:$P || URL=http://127.0.0.1:$Q
        TOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $E $region)
        out=$(SC bulk $URL "$AGENT" $E "$TOK" 64) || fail "outpost agent, $region: 64 MiB: $out"
        ok "outpost agent, $region: 64 MiB each way, SHA-256 matches ($out)"
        out=$(SC many $URL "$AGENT" $E "$TOK" 200) || fail "outpost agent, $region: 200 concurrent: $out"
        ok "outpost agent, $region: $out"
        RTOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $R $region)
        out=$(SC status $URL "$AGENT" $R "$RTOK")
        [[ $out == "502 "*"could not connect to port $R"* ]] || fail "outpost agent, $region: closed port: $out"
        ok "outpost agent, $region: a port nobody listens on -> 502 ($out)"
    done
    TOK=$(SC token http://127.0.0.1:$P "$SESSION" "$AGENT" $E eu)
    out=$(SC setup http://127.0.0.1:$Q "$AGENT" $E "$TOK" "$SETUP_N") || fail "set-up: $out"
    ok "through the proxy (outpost agent): $out"
fi

# A stream through the proxy survives the primary being stopped.
rm -f "$T/flag"
SC survive http://127.0.0.1:$Q "$AGENT" $E "$TOK" "$T/flag" >"$T/survive.out" 2>&1 &
SURV=$!
for i in $(seq 100); do grep -q ready "$T/survive.out" && break; sleep 0.1; done
grep -q ready "$T/survive.out" || fail "survive: no stream: $(cat "$T/survive.out")"
kill -TERM $PRIMARY_PID
for i in $(seq 100); do kill -0 $PRIMARY_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $PRIMARY_PID 2>/dev/null && fail "the primary did not stop"
touch "$T/flag"
wait $SURV || fail "the stream did not survive the primary stopping: $(cat "$T/survive.out")"
ok "a stream through the proxy keeps working after the primary stopped"
exit 0
