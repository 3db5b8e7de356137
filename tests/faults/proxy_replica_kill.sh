#!/usr/bin/env bash
# A workspace-proxy replica killed under load: proxy eu runs as two replicas (A, the deployment's proxy,
# and B, started with the same token), each with its own relay URL, and the agent keeps a control
# connection to both. An anonymous visitor of a public path app keeps 4 keep-alive connections busy
# through B while A is killed with SIGKILL: every request through B must be answered right (none lost),
# eu must stay ok (B is healthy), and A, restarted on its port, must rejoin: the agent connects to it
# again and requests through A are answered again. Short form: 3,000 requests; full: 20,000.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/faults.sh"
N=3000
[ "$FAULTS" = full ] && N=20000
QB=$(free_port)
FAULT_PROXY_RELAY=1 fault_deploy
A_PID=$EU_PID
CODER_PROXY_SESSION_TOKEN=$EU_TOKEN bg proxy-b "$OUTPOST" wsproxy server --primary-access-url $URL \
    --http-address 127.0.0.1:$QB --access-url $EU --derp-server-relay-url http://127.0.0.1:$QB --workers 1
wait_port $QB
for ((i = 0; i < 120; i++)); do
    grep -q "(http://127.0.0.1:$QB): connected" "$T/agent.log" && break
    sleep 0.25
done
grep -q "(http://127.0.0.1:$QB): connected" "$T/agent.log" || fail "the agent did not connect to replica B: $(grep region "$T/agent.log" | tail -5)"
APP_B=http://127.0.0.1:$QB/@admin/ws/apps/pub/
HB='{"users": [{"name": "alice", "url": "'$APP_B'", "cookie": "", "app_path": "/"}]'
"${CLIENT[@]}" hammer "$HB"', "n": 40, "conns": 1}' >"$T/warm.out" 2>&1 || fail "warm-up through B: $(cat "$T/warm.out")"

hammer_start "$HB"', "n": '$N', "conns": 4}'
sleep 1
kill -9 "$A_PID"
t_kill=$(date +%s.%N)
[ -f "$T/hammer.rc" ] && fail "the load ended before replica A was killed (raise N): $(cat "$T/hammer.out")"
hammer_wait 120 "through replica B while A was killed"
grep -q "$N/$N right" "$T/hammer.out" || fail "not every request through B was answered right"
st=$("$OUTPOST" wsproxy ls -o json 2>/dev/null | python3 -c '
import json,sys
print([p for p in json.load(sys.stdin) if p["name"] == "eu"][0]["status"]["status"])')
[ "$st" = ok ] || fail "eu is $st with replica B alive"
ok "replica A killed (SIGKILL) under load: $N/$N requests through B right, 0 failed; eu stays ok"

# A restarted on its port rejoins: the agent connects to it again, requests through it are answered.
n_before=$(grep -c "(http://127.0.0.1:$Q): connected" "$T/agent.log")
CODER_PROXY_SESSION_TOKEN=$EU_TOKEN bg proxy-a2 "$OUTPOST" wsproxy server --primary-access-url $URL \
    --http-address 127.0.0.1:$Q --access-url $EU --derp-server-relay-url http://127.0.0.1:$Q --workers 1
wait_port $Q
for ((i = 0; i < 240; i++)); do
    [ "$(grep -c "(http://127.0.0.1:$Q): connected" "$T/agent.log")" -gt "$n_before" ] && break
    sleep 0.25
done
[ "$(grep -c "(http://127.0.0.1:$Q): connected" "$T/agent.log")" -gt "$n_before" ] ||
    fail "the agent did not reconnect to the restarted replica A: $(grep region "$T/agent.log" | tail -5)"
t_back=$(date +%s.%N)
"${CLIENT[@]}" hammer "$HAMMER"', "n": 200, "conns": 2}' >"$T/after.out" 2>&1 ||
    fail "requests through the restarted replica A: $(cat "$T/after.out")"
grep -q "200/200 right" "$T/after.out" || fail "through A after the restart: $(cat "$T/after.out")"
ok "replica A restarted: the agent reconnected to it $(python3 -c "print(round($t_back - $t_kill, 1))") s after the kill (restart included); 200/200 requests through it right"
