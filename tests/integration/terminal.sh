#!/usr/bin/env bash
# tests/integration/terminal.sh — the web terminal (reconnecting PTY) end to end: a primary, workspace proxy
# eu and the real `outpost agent`, with tests/lib/pty_client.py as the browser. Through eu with a signed
# terminal token from POST /api/v2/applications/reconnecting-pty-signed-token and through the primary with
# the session: `echo` comes back, a reconnect with the same UUID replays the scrollback into the same shell
# ($$ unchanged), resize reaches `stty size`, `exit 3` closes with 1000 "… code 3". Refusals: no, bad,
# tampered or another agent's token → 404, an agent not connected → 404; a token for the primary's own
# host → 400; a wrong Origin → 403; no session on the primary → 401; an unmasked client frame → 1002. A
# proxy restart in the middle of a session: the reconnect through the new proxy finds the same shell with
# its scrollback; on an app host of the restarted proxy (now with a wildcard) the path belongs to the app.
. "$(dirname "$0")/../lib/common.sh"
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
export CODER_CONFIG_DIR=$T/cli
PC="python3 $ROOT/tests/lib/pty_client.py"
P=$(free_port) Q=$(free_port)
primary_eu_workspace
EU=http://127.0.0.1:$Q
SESSION=$(cat "$T/cli/session")
[ -n "$SESSION" ] || fail "no CLI session"
AGENT=$(python3 "$ROOT/tests/lib/stream_client.py" agent-id "$URL" "$TOKEN") || fail "agent id"
new_workspace other "$URL" # an agent that never runs: its token must not open ws's terminal
OTHER=$AGENT
AGENT=$(python3 "$ROOT/tests/lib/stream_client.py" agent-id "$URL" "$TOKEN") || fail "agent id"
mkdir -p "$T/ws"
cd "$T/ws"
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN SHELL=/bin/sh bg agent "$OUTPOST" agent --data-dir "$T/agent-data"
AGENT_PID=$LAST_PID
cd "$ROOT"
regions() {
    "$OUTPOST" list -o json | python3 -c '
import json,sys
for w in json.load(sys.stdin):
    if w["name"] == "ws":
        print(",".join(sorted(w["latest_build"]["resources"][0]["agents"][0]["regions"])))'
}
wait_regions() {
    local i
    for ((i = 0; i < 100; i++)); do [ "$(regions)" = eu,primary ] && return 0; sleep 0.2; done
    fail "the agent is not connected to primary and eu (regions: $(regions))"
}
wait_regions

PTY=/api/v2/workspaceagents/$AGENT/pty
uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }
# eu_url UUID [AGENT]: a fresh token for the eu URL of the terminal with that reconnect id
eu_url() {
    local a=${2:-$AGENT} u tok
    u="ws://127.0.0.1:$Q/api/v2/workspaceagents/$a/pty?reconnect=$1&width=80&height=24"
    tok=$($PC token "$URL" "$SESSION" "$u" "$a") || fail "token for $u: $tok"
    echo "$u&coder_signed_app_token_23db1dde=$tok"
}

# --- the token endpoint's host checks ---
out=$($PC token "$URL" "$SESSION" "ws://127.0.0.1:$P$PTY?reconnect=$(uuid)" "$AGENT")
[[ $out == "400 "*primary* ]] || fail "a token for the primary's host: $out"
out=$($PC token "$URL" "$SESSION" "http://127.0.0.1:$Q$PTY" "$AGENT")
[[ $out == "400 "*scheme* ]] || fail "an http:// URL: $out"
out=$($PC token "$URL" "$SESSION" "ws://127.0.0.1:$Q/api/v2/workspaceagents/$OTHER/pty" "$AGENT")
[[ $out == "400 "*path* ]] || fail "a URL for another agent: $out"
ok "reconnecting-pty-signed-token: 400 for the primary's own host, http://, and another agent's path"

# --- through eu: echo, reconnect (scrollback, same shell), resize, exit 3 ---
U1=$(uuid)
out=$($PC run "$(eu_url "$U1")" status:101 send:'echo MARK-$((40+2))' expect:'MARK-(42)' \
    send:'echo PID=$$' expect:'PID=([0-9]+)') || fail "eu: echo"
pid1=$(sed -n 2p <<<"$out")
[ "$(head -n 1 <<<"$out")" = 42 ] && [ -n "$pid1" ] || fail "eu: echo printed '$out'"
pid2=$($PC run "$(eu_url "$U1")" status:101 expect:'MARK-42' send:'echo PID2=$$' expect:'PID2=([0-9]+)') ||
    fail "eu: reconnect"
[ "$pid2" = "$pid1" ] || fail "eu: the reconnect reached shell $pid2, not $pid1"
ok "eu: echo came back; the reconnect with the same UUID replayed MARK-42 and reached the same shell ($pid1)"
size=$($PC run "$(eu_url "$U1")" status:101 resize:132:41 send:'echo SZ=$(stty size)' expect:'SZ=([0-9]+ [0-9]+)') ||
    fail "eu: resize"
[ "$size" = "41 132" ] || fail "eu: stty size says '$size' after a resize to 132x41"
reason=$($PC run "$(eu_url "$U1")" status:101 send:'exit 3' close:1000:'code 3') || fail "eu: exit 3"
ok "eu: resize to 132x41 reached stty ($size); exit 3 closed the socket with 1000 '$reason'"

# --- refusals on eu ---
U2=$(uuid)
good=$(eu_url "$U2")
base=${good%%&coder_signed_app_token_23db1dde=*}
tok=${good##*=}
$PC run "$base" status:404:'not found' || fail "eu: no token"
$PC run "$base&coder_signed_app_token_23db1dde=garbage" status:404 || fail "eu: a garbage token"
tampered=$(python3 -c '
import base64,json,sys
h,p,s=sys.argv[1].split(".")
c=json.loads(base64.urlsafe_b64decode(p+"="*(-len(p)%4)))
c["exp"]=1
print(h+"."+base64.urlsafe_b64encode(json.dumps(c).encode()).decode().rstrip("=")+"."+s)' "$tok")
$PC run "$base&coder_signed_app_token_23db1dde=$tampered" status:404 || fail "eu: a tampered (expired-looking) token"
otok=$(eu_url "$U2" "$OTHER")
$PC run "$base&coder_signed_app_token_23db1dde=${otok##*=}" status:404 || fail "eu: another agent's token"
$PC run "$(eu_url "$U2" "$OTHER")" status:404:'not connected to this region' || fail "eu: an agent that is not connected"
$PC run "$good" --origin http://evil.example.com status:403 || fail "eu: a foreign Origin"
$PC run "$good" --origin "$URL" status:101 send:'echo ORIGIN-OK' expect:'ORIGIN-OK' || fail "eu: the dashboard's Origin"
$PC run "$(eu_url "$U2")" --origin "$EU" status:101 raw-unmasked close:1002 >/dev/null || fail "eu: an unmasked frame"
ok "eu: 404 without a token, for a garbage, a tampered and another agent's token, for an agent that is not connected here; 403 for a foreign Origin; the dashboard's Origin opens; an unmasked frame closes with 1002"

# --- through the primary, with the session ---
U3=$(uuid)
PURL="ws://127.0.0.1:$P$PTY?reconnect=$U3&width=100&height=30"
$PC run "$PURL" status:401 || fail "primary: no session"
$PC run "$PURL&coder_signed_app_token_23db1dde=$tok" status:401 || fail "primary: a token instead of a session"
$PC run "ws://127.0.0.1:$P/api/v2/workspaceagents/$OTHER/pty?reconnect=$U3" --header "Coder-Session-Token: $SESSION" \
    status:404:'not connected to this region' || fail "primary: an agent that is not connected"
$PC run "$PURL" --header "Coder-Session-Token: $SESSION" --origin http://evil.example.com status:403 ||
    fail "primary: a foreign Origin"
ppid1=$($PC run "$PURL" --header "Coder-Session-Token: $SESSION" status:101 send:'echo P-MARK' expect:'P-MARK' \
    send:'echo PID=$$' expect:'PID=([0-9]+)' send:'echo SZ=$(stty size)' expect:'SZ=([0-9]+ [0-9]+)') ||
    fail "primary: echo"
[ "$(sed -n 2p <<<"$ppid1")" = "30 100" ] || fail "primary: the initial size is '$(sed -n 2p <<<"$ppid1")', not 30 100"
ppid2=$($PC run "$PURL" --header "Cookie: coder_session_token=$SESSION" status:101 expect:'P-MARK' \
    send:'echo PID2=$$' expect:'PID2=([0-9]+)') || fail "primary: reconnect with the cookie"
[ "$ppid2" = "$(head -n 1 <<<"$ppid1")" ] || fail "primary: the reconnect reached $ppid2, not $(head -n 1 <<<"$ppid1")"
$PC run "$PURL" --header "Coder-Session-Token: $SESSION" status:101 send:'exit 3' close:1000:'code 3' >/dev/null ||
    fail "primary: exit 3"
ok "primary: 401 without a session (a token does not count), 404 for an agent not connected, 403 for a foreign Origin; with the session header: echo, 100x30 from the query; the cookie reconnects to the same shell; exit 3 closes with 1000"

# --- a proxy restart during a session ---
U4=$(uuid)
before=$($PC run "$(eu_url "$U4")" status:101 send:'echo BEFORE=$$' expect:'BEFORE=([0-9]+)' drop) ||
    fail "restart: first session"
PROXY_PID=${PIDS[1]}
kill "$PROXY_PID"
for ((i = 0; i < 50; i++)); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") bg proxy2 "$OUTPOST" wsproxy server \
    --primary-access-url $URL --http-address 127.0.0.1:$Q --access-url $EU --workers 1 \
    --wildcard-access-url "*.eu.localhost:$Q"
wait_port $Q
wait_regions
for ((i = 0; i < 20; i++)); do # the agent reconnects to the new proxy within a few seconds
    after=$($PC run "$(eu_url "$U4")" status:101 expect:"BEFORE=$before" send:'echo AFTER=$$' \
        expect:'AFTER=([0-9]+)' 2>"$T/restart.err") && break
    sleep 0.5
done
[ -n "$after" ] || fail "restart: reconnect through the new proxy: $(cat "$T/restart.err")"
[ "$after" = "$before" ] || fail "restart: the reconnect reached shell $after, not $before"
ok "proxy eu restarted during a session: the reconnect through the new proxy replayed the scrollback into the same shell ($before)"
$PC run "$(eu_url "$(uuid)")" --host "app--main--ws--admin.EU.localhost:$Q" status:404:'Application Not Found' ||
    fail "the terminal path on an app host of eu"
ok "on an app host of eu (wildcard *.eu.localhost) the terminal's path is the app's (its 404 page for a missing app), no terminal"

# --- keys eu has not fetched (a key row added to the primary's database, which signs with it at once) ---
refetches() { grep -c 'fetching the crypto keys again' "$T/proxy2.log"; }
R0=$(refetches)
seqs=$(python3 "$ROOT/tests/lib/add_crypto_key.py" "$T/data" workspace_apps_token) || fail "adding a key: $seqs"
for i in 1 2 3; do # three terminals at once with tokens signed with the new key: one refetch for all
    $PC run "$(eu_url "$(uuid)")" status:101 send:"echo REKEY-\$((6*$i))" expect:"REKEY-($((6 * i)))" >"$T/rekey.$i" 2>&1 &
    pids[$i]=$!
done
for i in 1 2 3; do wait "${pids[$i]}" || fail "eu: a terminal token signed with key $seqs, which eu had not fetched: $(cat "$T/rekey.$i")"; done
R1=$(refetches)
[ $((R1 - R0)) = 1 ] || fail "three terminal tokens with the new key $seqs: $((R1 - R0)) refetches of eu's keys, want 1"
ok "eu: three terminal tokens at once signed with a key eu had not fetched (sequence $seqs) open after one refetch of its keys"
sleep 1.1 # refetches are at most one a second
seqs=$(python3 "$ROOT/tests/lib/add_crypto_key.py" "$T/data" workspace_apps_token) || fail "adding a key: $seqs"
kill "$AGENT_PID"
for ((i = 0; i < 50; i++)); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
cd "$T/ws"
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN SHELL=/bin/sh bg agent2 "$OUTPOST" agent --data-dir "$T/agent-data"
cd "$ROOT"
for ((i = 0; i < 100; i++)); do [ "$(regions)" = eu,primary ] && break; sleep 0.2; done
for ((i = 0; i < 100; i++)); do [ "$(regions)" = eu,primary ] && break; sleep 0.2; done # the primary's region: 10 s
[ "$(regions)" = eu,primary ] || fail "the restarted agent (a credential signed with key $seqs) is not connected to eu: $(regions)"
R2=$(refetches)
[ $((R2 - R1)) = 1 ] || fail "the agent's credential with key $seqs: $((R2 - R1)) refetches of eu's keys, want 1"
$PC run "$(eu_url "$(uuid)")" status:101 send:'echo AFTER-AGENT' expect:'AFTER-AGENT' >/dev/null || fail "eu: the terminal after the agent's restart"
ok "the agent restarted with a credential signed with a key eu had not fetched (sequence $seqs): refused once, eu fetched its keys, the agent's retry connected"
