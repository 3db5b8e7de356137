#!/usr/bin/env bash
# tests/integration/tcp_ws.sh — the tcp endpoint's WebSocket variant (docs/agent-protocol.md §5) through
# the primary and a workspace proxy, with the real `outpost agent` and a Python echo server: a round trip
# (fragments, a ping), 8 MiB each way with matching SHA-256 and the close frame as the half-close; a
# missing, bad or mismatched connect token answers 401/403/404 JSON and nothing reaches the agent; a
# foreign Origin is refused with 403 while the region's own is accepted; a closed port answers 502 JSON
# before the upgrade.
. "$(dirname "$0")/../lib/common.sh"
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
export CODER_CONFIG_DIR=$T/cli
CLIENT=$ROOT/tests/lib/tcp_ws_client.py
P=$(free_port) Q=$(free_port) E=$(free_port)
primary_eu_workspace
bg echo python3 "$SERVERS" echo $E
wait_port $E
mkdir -p "$T/ws"
(cd "$T/ws" && CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN CODER_AGENT_LOG_LEVEL=debug \
    exec "$OUTPOST" agent >"$T/agent.log" 2>&1) &
PIDS+=($!)
AGENT=
for i in $(seq 100); do
    AGENT=$("$OUTPOST" list -o json 2>/dev/null | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(a["id"] if a["status"]=="connected" and sorted(a["regions"])==["eu","primary"] else "")' 2>/dev/null)
    [ -n "$AGENT" ] && break
    sleep 0.2
done
[ -n "$AGENT" ] || fail "the agent did not connect to primary and eu: $(tail -5 "$T/agent.log")"
SESSION=$(cat "$T/cli/session")
tok() { python3 "$CLIENT" token $URL "$SESSION" "$AGENT" "$1" "$2" || fail "connect token: port $1 region $2"; }
declare -A BASE=([primary]=ws://127.0.0.1:$P [eu]=ws://127.0.0.1:$Q)
declare -A ACCESS=([primary]=http://127.0.0.1:$P [eu]=http://127.0.0.1:$Q)
served() { grep -c 'tcp-ws: a stream for port' "$T/agent.log"; }

head -c $((8 << 20)) /dev/urandom >"$T/in"
SUM=$(sha256sum <"$T/in" | cut -d' ' -f1)
for region in primary eu; do
    u="${BASE[$region]}/api/v2/workspaceagents/$AGENT/tcp?port=$E"
    out=$(python3 "$CLIENT" echo "$u&coder_connect_token=$(tok $E $region)" 2>&1) || fail "$region: echo: $out"
    ok "$region: a WebSocket stream echoes a fragmented binary message (and answers a ping): $out"
    start=$(date +%s.%N)
    read -r n sum code < <(python3 "$CLIENT" bulk "$u&coder_connect_token=$(tok $E $region)" "$T/in" 2>"$T/bulk.err")
    secs=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $start))")
    [ "$n" = $((8 << 20)) ] && [ "$sum" = "$SUM" ] || fail "$region: 8 MiB each way: got $n bytes, $sum: $(cat "$T/bulk.err")"
    [ "$code" = 1000 ] || fail "$region: the stream ended with close $code, want 1000 (the port's FIN)"
    ok "$region: 8 MiB each way in binary messages, SHA-256 matches, ${secs}s; the client's close became the port's FIN and the port's FIN our close 1000"
    # The Origin rule of the terminal: this region's own origin passes, a foreign one does not.
    out=$(python3 "$CLIENT" echo "$u&coder_connect_token=$(tok $E $region)" --origin "${ACCESS[$region]}" 2>&1) ||
        fail "$region: the region's own Origin was refused: $out"
    before=$(served)
    out=$(python3 "$CLIENT" status "$u&coder_connect_token=$(tok $E $region)" --origin https://evil.example.com)
    [[ $out == "403 "*'"message":"The Origin of this request is neither the dashboard nor this region."'* ]] ||
        fail "$region: a foreign Origin: $out"
    ok "$region: a foreign Origin is refused: $out"
    # Token rules: nothing reaches the agent.
    other=$(tok $((E + 1)) $region)
    [ $region = primary ] && elsewhere=eu || elsewhere=primary
    while IFS='|' read -r want query what; do
        out=$(python3 "$CLIENT" status "${BASE[$region]}/api/v2/workspaceagents/$AGENT/tcp?port=$E$query")
        [[ $out == "$want "*'{"message":'* ]] || fail "$region: $what: $out (want $want)"
    done <<EOT
401||no token
403|&coder_connect_token=abc.def.ghi|a malformed token
403|&coder_connect_token=$other|a token for another port
403|&coder_connect_token=$(tok $E $elsewhere)|a token for another region
EOT
    out=$(python3 "$CLIENT" status "${BASE[$region]}/api/v2/workspaceagents/00000000-0000-4000-8000-000000000000/tcp?port=$E&coder_connect_token=$(tok $E $region)")
    [[ $out == "403 "*"another agent"* ]] || fail "$region: a token for another agent: $out"
    [ "$(served)" = "$before" ] || fail "$region: a refused request reached the agent"
    ok "$region: no token 401, malformed / other port / other region / other agent 403 (JSON), none reached the agent"
    # A closed port: the agent answers 502 before the upgrade.
    DEAD=$(free_port)
    out=$(python3 "$CLIENT" status "${BASE[$region]}/api/v2/workspaceagents/$AGENT/tcp?port=$DEAD&coder_connect_token=$(tok $DEAD $region)")
    [[ $out == "502 "*"\"message\":\"The agent could not connect to port $DEAD: Connection refused\""* ]] ||
        fail "$region: a closed port: $out"
    ok "$region: a closed port answers before the upgrade: $out"
done

# An agent not connected to the region: 404 (the workspace's agent stops).
kill -TERM "${PIDS[-1]}"
for i in $(seq 100); do grep -q 'agent: region eu' "$T/proxy.log" >/dev/null; [ "$(ss -tnH state established "( dport = :$Q )" 2>/dev/null | wc -l)" = 0 ] && break; sleep 0.1; done
out=$(python3 "$CLIENT" status "${BASE[eu]}/api/v2/workspaceagents/$AGENT/tcp?port=$E&coder_connect_token=$(tok $E eu)")
[[ $out == "404 "*"not connected to this region"* ]] || fail "an agent gone: $out"
ok "an agent not connected: $out"
