#!/usr/bin/env bash
# tests/integration/proxy_replicas.sh — two `outpost wsproxy server` processes started with the same token
# are replicas of one proxy (eu): both register, the agent manifest lists both with their relay URLs, and
# the real `outpost agent` keeps a control connection to each, so traffic through either replica reaches
# the workspace: echo streams, a public subdomain app, ssh to the agent's SSH server and the web terminal.
# The region's access URL is replica A's; replica B is reached at its own port. `wsproxy ls` shows eu ok
# with 2 replicas and its report names both. Replica A is killed (SIGKILL): traffic through B keeps working
# and eu stays ok (its report names A's failure as a warning); A restarted on its port rejoins and the agent
# reconnects to it within the reconnect backoff bound. A third replica without a relay URL gets a warning.
. "$(dirname "$0")/../lib/common.sh"
command -v curl >/dev/null || { echo "curl missing"; exit 77; }
SC() { python3 "$ROOT/tests/lib/stream_client.py" "$@"; }

P=$(free_port)
QA=$(free_port)
QB=$(free_port)
E=$(free_port)
A=$(free_port)
URL=http://127.0.0.1:$P
export CODER_CONFIG_DIR=$T/cli
bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
    --proxy-health-interval 1s --agent-heartbeat-interval 2s
wait_port $P
"$OUTPOST" login $URL --first-user-username admin --first-user-email a@b.c \
    --first-user-password 'Sup3rSecret!pw' >"$T/login.log" 2>&1 || fail "login"
SESSION=$(cat "$T/cli/session")
"$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>"$T/create.log" || fail "wsproxy create eu"
export CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token")

# replica NAME PORT [bare]: a replica of eu (log replica-NAME.log) listening on PORT, whose relay URL is
# http://127.0.0.1:PORT (none with "bare"). Replicas share the access URL (replica A's port, standing in for
# a load balancer) and the wildcard.
replica() {
    local relay=(--derp-server-relay-url http://127.0.0.1:$2)
    [ "${3:-}" = bare ] && relay=()
    bg "replica-$1" "$OUTPOST" wsproxy server --primary-access-url $URL --http-address 127.0.0.1:$2 \
        --access-url http://127.0.0.1:$QA --wildcard-access-url "*.apps.test:$QA" "${relay[@]}" --workers 1
}
replica a $QA
A_PID=$LAST_PID
replica b $QB
wait_port $QA
wait_port $QB

new_workspace dev $URL
bg echo python3 "$SERVERS" echo $E
head -c $((1 << 20)) /dev/urandom >"$T/app.bin"
bg app python3 "$ROOT/tests/lib/app_server.py" $A admin "$T/app.bin"
wait_port $E
wait_port $A

# The manifest: eu with both replicas, each with its own relay URL.
manifest_replicas() {
    curl -sf -H "Coder-Session-Token: $ATOKEN" $URL/api/v2/workspaceagents/me/manifest | python3 -c '
import json, sys
m = json.load(sys.stdin)
eu = [r for r in m["regions"] if r["name"] == "eu"]
print(" ".join(sorted(x["relay_url"] for x in eu[0].get("replicas", []))) if eu else "no-eu")'
}
want="http://127.0.0.1:$QA http://127.0.0.1:$QB"
want=$(tr ' ' '\n' <<<"$want" | sort | tr '\n' ' ' | sed 's/ $//')
for i in $(seq 100); do [ "$(manifest_replicas)" = "$want" ] && break; sleep 0.1; done
[ "$(manifest_replicas)" = "$want" ] || fail "manifest replicas of eu: '$(manifest_replicas)', want '$want'"
ok "the agent manifest lists eu with both replicas and their relay URLs ($want)"

mkdir -p "$T/ws"
(cd "$T/ws" && CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$ATOKEN exec "$OUTPOST" agent \
    --reconnect-backoff-max 2s --app "slug=pub,url=http://127.0.0.1:$A,share=public,subdomain=true") >"$T/agent.log" 2>&1 &
PIDS+=($!)
connected() { grep -c "agent $AGENT connected (control" "$T/replica-$1.log"; }
for i in $(seq 150); do
    [ "$(connected a)" -ge 1 ] && [ "$(connected b)" -ge 1 ] && break
    sleep 0.1
done
[ "$(connected a)" -ge 1 ] || fail "no control connection from the agent on replica A"
[ "$(connected b)" -ge 1 ] || fail "no control connection from the agent on replica B"
grep -q "region eu replica [0-9a-f]\{8\} (http://127.0.0.1:$QB): connected" "$T/agent.log" ||
    fail "the agent's log does not name replica B"
ok "the agent holds a control connection on each replica (its log names region and replica)"

# streams PORT WHAT: 20 concurrent echo streams and 4 MiB each way through the replica on PORT.
streams() {
    local tok out
    tok=$(SC token $URL "$SESSION" "$AGENT" $E eu) || fail "connect token for eu"
    out=$(SC many http://127.0.0.1:$1 "$AGENT" $E "$tok" 20) || fail "$2: 20 concurrent streams: $out"
    out=$(SC bulk http://127.0.0.1:$1 "$AGENT" $E "$tok" 4) || fail "$2: 4 MiB: $out"
    ok "$2: 20 concurrent streams and 4 MiB each way through the agent ($out)"
}
streams $QA "replica A"
streams $QB "replica B"

# app PORT WHAT: the public subdomain app (host on the shared access URL's port) through the replica on
# PORT: every request of the redirect dance goes to that replica (curl --connect-to).
H=pub--main--dev--admin.apps.test
app() {
    local code got
    code=$(curl -s -m 20 -L --max-redirs 5 -c "$T/app.jar" -b "$T/app.jar" -o "$T/app.body" -w "%{http_code}" \
        --connect-to "$H:$QA:127.0.0.1:$1" "http://$H:$QA/") || fail "$2: app request failed"
    [ "$code" = 200 ] && grep -q "hello from admin's app: GET /" "$T/app.body" ||
        fail "$2: app: $code $(head -c 300 "$T/app.body")"
    got=$(curl -s -m 60 -L --max-redirs 5 -c "$T/app.jar" -b "$T/app.jar" --connect-to "$H:$QA:127.0.0.1:$1" \
        "http://$H:$QA/big" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$(sha256sum <"$T/app.bin" | cut -d' ' -f1)" ] || fail "$2: app /big: SHA-256 differs"
    ok "$2: the public subdomain app answered 200 and 1 MiB (SHA-256 matches)"
}
app $QA "replica A"
app $QB "replica B"

# ssh_via PORT WHAT: ssh to the agent's SSH server (stream port 1) through the replica on PORT; the
# ProxyCommand opens the stream there with a connect token for eu.
cat >"$T/bridge.py" <<'PY'
import os, select, socket, sys
sys.path.insert(0, sys.argv[1])
from stream_client import open_stream
st, body, s = open_stream(sys.argv[2], sys.argv[3], 1, sys.argv[4])
if st != 101:
    sys.exit("stream: %d %s" % (st, body[:200]))
s.settimeout(None)
fds = [0, s]
while fds:
    for r in select.select(fds, [], [])[0]:
        if r == 0:
            b = os.read(0, 65536)
            if b:
                s.sendall(b)
            else:
                s.shutdown(socket.SHUT_WR); fds.remove(0)
        else:
            b = s.recv(65536)
            if not b:
                sys.exit(0)
            os.write(1, b)
PY
ssh_via() {
    command -v ssh >/dev/null || return 0
    local tok out rc
    tok=$(SC token $URL "$SESSION" "$AGENT" 1 eu) || fail "$2: connect token for port 1"
    out=$(ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        -o ProxyCommand="python3 $T/bridge.py $ROOT/tests/lib http://127.0.0.1:$1 $AGENT $tok" \
        outpost.dev 'echo $((6*7)); exit 4' 2>"$T/ssh.err"); rc=$?
    [ "$out" = 42 ] && [ $rc = 4 ] || fail "$2: ssh through the agent: '$out' rc $rc: $(cat "$T/ssh.err")"
    ok "$2: ssh to the agent's SSH server ran a command (printed 42, exit 4)"
}
ssh_via $QA "replica A"
ssh_via $QB "replica B"

# term PORT WHAT: the web terminal (the agent's PTY server) through the replica on PORT, with a terminal
# token issued for the shared access URL.
PC="python3 $ROOT/tests/lib/pty_client.py"
term() {
    local q tok
    q="api/v2/workspaceagents/$AGENT/pty?reconnect=$(python3 -c 'import uuid; print(uuid.uuid4())')&width=80&height=24"
    tok=$($PC token $URL "$SESSION" "ws://127.0.0.1:$QA/$q" "$AGENT") || fail "$2: terminal token: $tok"
    $PC run "ws://127.0.0.1:$1/$q&coder_signed_app_token_23db1dde=$tok" status:101 send:'echo T-$((6*7))' \
        expect:'T-42' >"$T/pty.out" 2>&1 || fail "$2: terminal: $(cat "$T/pty.out")"
    ok "$2: the web terminal ran a command"
}
term $QA "replica A"
term $QB "replica B"

# eu_view: "STATUS NREPLICAS" of eu from `wsproxy ls -o json` (the replicas its report names).
eu_view() {
    "$OUTPOST" wsproxy ls -o json 2>/dev/null | python3 -c '
import json, sys
eu = [p for p in json.load(sys.stdin) if p["name"] == "eu"][0]
st = eu["status"]
print(st["status"], len(st["report"].get("replicas", [])))'
}
for i in $(seq 100); do [ "$(eu_view)" = "ok 2" ] && break; sleep 0.1; done
[ "$(eu_view)" = "ok 2" ] || fail "wsproxy ls: eu is '$(eu_view)', want 'ok 2'"
"$OUTPOST" wsproxy ls >"$T/ls.out" 2>&1 || fail "wsproxy ls"
grep -q "2 replicas" "$T/ls.out" || fail "wsproxy ls does not show the replica count: $(cat "$T/ls.out")"
ok "wsproxy ls: eu ok, its report names both replicas, the table shows \"2 replicas\""

# Replica A dies without deregistering.
kill -9 $A_PID
wait $A_PID 2>/dev/null
streams $QB "replica B, A killed"
app $QB "replica B, A killed"
ssh_via $QB "replica B, A killed"
term $QB "replica B, A killed"
for i in $(seq 60); do
    out=$("$OUTPOST" wsproxy ls -o json 2>/dev/null | python3 -c '
import json, sys
eu = [p for p in json.load(sys.stdin) if p["name"] == "eu"][0]
r = eu["status"]["report"]
print(eu["status"]["status"], " ".join(sorted(x["status"] for x in r.get("replicas", []))),
      any("127.0.0.1:'$QA'" in w for w in r["warnings"]))')
    [ "$out" = "ok ok unreachable True" ] && break
    sleep 0.1
done
[ "$out" = "ok ok unreachable True" ] || fail "after A was killed: eu is '$out', want 'ok ok unreachable True'"
ok "after SIGKILL of replica A: eu stays ok, its report shows A unreachable (a warning names it), B ok"
# Once A's registration is older than 3 heartbeats it leaves the manifest; eu stays ok through B alone.
for i in $(seq 250); do [ "$(manifest_replicas)" = "http://127.0.0.1:$QB" ] && break; sleep 0.1; done
[ "$(manifest_replicas)" = "http://127.0.0.1:$QB" ] || fail "manifest after A died: '$(manifest_replicas)'"
for i in $(seq 100); do [ "$(eu_view)" = "ok 0" ] && break; sleep 0.1; done
[ "$(eu_view)" = "ok 0" ] || fail "eu with replica B alone is '$(eu_view)', want 'ok 0'"
streams $QB "replica B alone"
ok "A's registration expired: the manifest lists B only, eu is ok, probed at B's relay URL"

# A restarts on its port with a new replica id; the agent reconnects within the backoff bound (2 s) plus
# the manifest interval (5 s).
replica a2 $QA
wait_port $QA
t0=$(date +%s)
for i in $(seq 200); do [ "$(connected a2)" -ge 1 ] && break; sleep 0.1; done
[ "$(connected a2)" -ge 1 ] || fail "the agent did not reconnect to the restarted replica A"
dt=$(($(date +%s) - t0))
[ $dt -le 12 ] || fail "the agent took ${dt}s to reconnect to replica A"
streams $QA "restarted replica A"
streams $QB "replica B, after A's restart"
for i in $(seq 100); do [ "$(eu_view)" = "ok 2" ] && break; sleep 0.1; done
[ "$(eu_view)" = "ok 2" ] || fail "after A's restart eu is '$(eu_view)', want 'ok 2'"
ok "restarted replica A rejoined: the agent reconnected in ${dt}s, eu ok with 2 replicas"

# A third replica without a relay URL: agents could reach it only through the access URL, which the
# primary's report says.
QC=$(free_port)
replica c $QC bare
wait_port $QC
for i in $(seq 100); do
    "$OUTPOST" wsproxy ls -o json >"$T/ls.json" 2>/dev/null
    grep -q "has no relay URL (--derp-server-relay-url)" "$T/ls.json" && break
    sleep 0.1
done
grep -q "has no relay URL (--derp-server-relay-url)" "$T/ls.json" ||
    fail "no warning for a replica without a relay URL: $(head -c 600 "$T/ls.json")"
ok "a replica without a relay URL among several: eu's report warns about it"
