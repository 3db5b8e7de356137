#!/usr/bin/env bash
# tests/integration/streams_tls.sh — agent stream legs over TLS: a primary and a workspace proxy (eu) whose
# access URLs are https only (the test CA of tests/lib/certs.sh), the real `outpost agent` with
# CODER_AGENT_CA_FILE, so every spare it parks is a TLS connection the region detaches with its session.
# Through eu and through the primary: `outpost tcp` 16 MiB each way with matching SHA-256 and 50 concurrent
# streams (all open at once), a half-close passed on; through eu: `ssh` with config-ssh's ProxyCommand and
# `outpost ssh` run a command (the agent's SSH server behind a TLS leg), the web terminal over wss:// runs one
# (its PTY server), and a public subdomain app answers.
# The regions answer every spare with 101 (no 501) and the agent logs no spare failure.
. "$(dirname "$0")/../lib/common.sh"
for c in ss ssh curl openssl; do command -v $c >/dev/null || { echo "$c missing"; exit 77; }; done
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS \
    SSL_CERT_FILE
export CODER_CONFIG_DIR=$T/cli
bash "$ROOT/tests/lib/certs.sh" "$T/pki" || fail "certs"
C=$T/pki
export CURL_CA_BUNDLE=$C/ca.pem # the CLI's trust anchor (outpost tcp, ssh --stdio, login)
P=$(free_port) S=$(free_port) QH=$(free_port) Q=$(free_port) E=$(free_port) A=$(free_port)
URL=https://127.0.0.1:$S
bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --tls-enable --tls-address 127.0.0.1:$S \
    --tls-cert-file "$C/server.pem" --tls-key-file "$C/server.key" --access-url $URL --data-dir "$T/data" \
    --proxy-health-interval 1s --agent-heartbeat-interval 2s
wait_port $S
"$OUTPOST" login $URL --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Admin-Pass-1' >"$T/login.out" 2>&1 || fail "login: $(cat "$T/login.out")"
"$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>&1 || fail "wsproxy create eu"
# eu: https only for clients and agents (two certificates: 127.0.0.1, and *.apps.test for subdomain apps)
CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") CODER_TLS_CERT_FILE="$C/server.pem,$C/wild.pem" \
    CODER_TLS_KEY_FILE="$C/server.key,$C/wild.key" bg proxy "$OUTPOST" wsproxy server --primary-access-url $URL \
    --tls-client-ca-file "$C/ca.pem" --http-address 127.0.0.1:$QH --tls-enable --tls-address 127.0.0.1:$Q \
    --access-url https://127.0.0.1:$Q --wildcard-access-url "*.apps.test:$Q" --workers 2
wait_port $Q
"$OUTPOST" create ws >"$T/create.out" 2>&1 || fail "create ws: $(cat "$T/create.out")"
TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create.out")
bg echo python3 "$SERVERS" echo $E
head -c $((1 << 20)) /dev/urandom >"$T/app.bin"
bg app python3 "$ROOT/tests/lib/app_server.py" $A admin "$T/app.bin"
wait_port $E
wait_port $A
mkdir -p "$T/ws"
cd "$T/ws"
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN CODER_AGENT_CA_FILE=$C/ca.pem SHELL=/bin/sh bg agent "$OUTPOST" agent \
    --data-dir "$T/agent-data" --app "slug=pub,url=http://127.0.0.1:$A,share=public,subdomain=true"
AGENT_PID=$LAST_PID
cd "$ROOT"
agent_regions() {
    "$OUTPOST" list -o json | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])) if a["status"]=="connected" else "-")'
}
for ((i = 0; i < 100; i++)); do [ "$(agent_regions)" = eu,primary ] && break; sleep 0.2; done
[ "$(agent_regions)" = eu,primary ] || fail "the agent is not connected to primary and eu: $(tail -5 "$T/agent.log")"
# spares are parked at both regions over TLS: the regions' stream endpoints answer 101, not 501
for ((i = 0; i < 50; i++)); do
    [ "$(ss -tnH state established "( dport = :$Q )" | wc -l)" -ge 3 ] &&
        [ "$(ss -tnH state established "( dport = :$S )" | wc -l)" -ge 3 ] && break
    sleep 0.2
done
[ "$(ss -tnH state established "( dport = :$Q )" | wc -l)" -ge 3 ] || fail "no spares parked at eu: $(tail -5 "$T/agent.log")"
grep -q 'spare stream connection failed' "$T/agent.log" && fail "spares refused: $(grep -m3 'spare stream' "$T/agent.log")"
ok "the agent (CODER_AGENT_CA_FILE) is connected to the https primary and the https proxy eu; its TLS spares are parked at both"

# --- 16 MiB each way, a half-close, 50 concurrent streams, through each region ---
head -c $((16 << 20)) /dev/urandom >"$T/in"
SUM=$(sha256sum <"$T/in" | cut -d' ' -f1)
for region in eu primary; do
    start=$(date +%s.%N)
    got=$("$OUTPOST" tcp ws $E --proxy $region -v <"$T/in" 2>"$T/tcp-$region.err" | sha256sum | cut -d' ' -f1)
    secs=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $start))")
    [ "$got" = "$SUM" ] || fail "$region: SHA-256 differs after 16 MiB each way: $(cat "$T/tcp-$region.err")"
    grep -q "through region $region" "$T/tcp-$region.err" || fail "$region: not through $region: $(cat "$T/tcp-$region.err")"
    ok "$region (https): 16 MiB each way through outpost tcp and a TLS agent leg, SHA-256 matches, ${secs}s"
done
for region in eu primary; do
    concurrent_streams $region 50 $E "$region (https)"
    ok "$region (https): 50 concurrent streams over TLS agent legs (all open at once), each echoed back"
done

# --- the agent's SSH server (stream port 1) behind a TLS leg: ssh with ProxyCommand, outpost ssh ---
"$OUTPOST" config-ssh --ssh-config-file "$T/ssh_config" --proxy eu >"$T/cfg.out" 2>&1 || fail "config-ssh: $(cat "$T/cfg.out")"
out=$(ssh -F "$T/ssh_config" outpost.ws 'echo $((6*7))' 2>"$T/ssh.err"); rc=$?
[ "$out" = 42 ] && [ $rc = 0 ] || fail "ssh -F (ProxyCommand through eu): '$out' rc $rc: $(cat "$T/ssh.err")"
out=$("$OUTPOST" ssh ws --proxy eu -- 'echo $((6*7)); exit 5' 2>"$T/outpost-ssh.err"); rc=$?
[ "$out" = 42 ] && [ $rc = 5 ] || fail "outpost ssh --proxy eu: '$out' rc $rc: $(cat "$T/outpost-ssh.err")"
ok "eu (https): ssh -F with config-ssh's ProxyCommand printed 42; outpost ssh ws --proxy eu printed 42 and exited 5"

# --- a public subdomain app through eu: the request goes to the agent over a TLS leg ---
H=pub--main--ws--admin.apps.test
code=$(curl -s -m 20 -L --max-redirs 5 -c "$T/app.jar" -b "$T/app.jar" -o "$T/app.body" -w "%{http_code}" \
    --resolve "$H:$Q:127.0.0.1" "https://$H:$Q/") ||
    fail "app request: curl failed"
[ "$code" = 200 ] || fail "app through eu: $code $(head -c 300 "$T/app.body")"
grep -q "hello from admin's app: GET /" "$T/app.body" || fail "app body: $(head -c 300 "$T/app.body")"
got=$(curl -s -m 60 -L --max-redirs 5 -c "$T/app.jar" -b "$T/app.jar" --resolve "$H:$Q:127.0.0.1" "https://$H:$Q/big" | sha256sum | cut -d' ' -f1)
[ "$got" = "$(sha256sum <"$T/app.bin" | cut -d' ' -f1)" ] || fail "app /big through eu: SHA-256 differs"
ok "eu (https): a public subdomain app answered 200 and 1 MiB (SHA-256 matches) through a TLS agent leg"

# --- the web terminal (stream port 2, the agent's PTY server) through eu over a TLS leg ---
PC="python3 $ROOT/tests/lib/pty_client.py"
AGENT=$("$OUTPOST" list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]["id"])')
U=$(python3 -c 'import uuid; print(uuid.uuid4())')
u="wss://127.0.0.1:$Q/api/v2/workspaceagents/$AGENT/pty?reconnect=$U&width=80&height=24"
tok=$($PC token "$URL" "$(cat "$T/cli/session")" "$u" "$AGENT") || fail "terminal token: $tok"
$PC run "$u&coder_signed_app_token_23db1dde=$tok" status:101 send:'echo TLS-$((6*7))' expect:'TLS-42' \
    >"$T/pty.out" 2>&1 || fail "terminal through eu: $(cat "$T/pty.out")"
ok "eu (https): the web terminal over wss:// runs a command through a TLS agent leg"

# --- the tcp endpoint's WebSocket variant over wss:// (the agent's WebSocket server behind a TLS leg) ---
WSC="python3 $ROOT/tests/lib/tcp_ws_client.py"
for region in eu primary; do
    port=$Q
    [ $region = primary ] && port=$S
    ctok=$($WSC token "$URL" "$(cat "$T/cli/session")" "$AGENT" $E $region) || fail "connect token: $ctok"
    out=$($WSC echo "wss://127.0.0.1:$port/api/v2/workspaceagents/$AGENT/tcp?port=$E&coder_connect_token=$ctok" 2>&1) ||
        fail "$region: WebSocket stream over wss://: $out"
done
ok "eu and primary (https): the WebSocket variant of /tcp over wss:// echoes through a TLS agent leg"

grep -q 'spare stream connection failed' "$T/agent.log" && fail "spare failures: $(grep -m3 'spare stream' "$T/agent.log")"
grep -qi 'not supported by this region' "$T/agent.log" && fail "a region refused a TLS spare"
ok "no spare failure logged by the agent"
