#!/usr/bin/env bash
# End-to-end: a real `outpost server` process with a real SQLite file, driven by the CLI and curl.
# Covers the issue's "done" path (create then ls: proxy unregistered, primary ok), the API's auth errors,
# proxy registration and health transitions against a loopback Python proxy (ok -> unreachable), CLI
# errors and exit codes, token hashing in the database, and a restart that keeps everything.
set -u
. "$(dirname "$0")/../lib/common.sh" # $T, sanitizer reports in $T/*.log fail the test
: "${OUTPOST_BIN:?}"
command -v curl >/dev/null || { echo "curl missing"; exit 77; }
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
SERVER_PID= PY_PID=
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
export CODER_CONFIG_DIR=$T/cfg
unset CODER_URL CODER_SESSION_TOKEN
start_server() {
    "$OUTPOST_BIN" server --http-address "127.0.0.1:$PORT" --data-dir "$T/data" --proxy-health-interval 1s \
        >>"$T/server.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 1 100); do
        curl -fsS "$URL/api/v2/buildinfo" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server did not start"; cat "$T/server.log"; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID"; local rc=$?; SERVER_PID=; return $rc; }
start_server

# --- first user and login ---
out=$("$OUTPOST_BIN" login "$URL" --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Correct-Horse-1' 2>&1)
check "login creates the first user: $out" test "$out" = "Welcome to Outpost, admin! You're authenticated."
check "config files are mode 0600" test "$(stat -c %a "$T/cfg/session") $(stat -c %a "$T/cfg/url")" = "600 600"
check "config dir holds the URL" test "$(cat "$T/cfg/url")" = "$URL"
SESSION=$(cat "$T/cfg/session")
out=$("$OUTPOST_BIN" login "$URL" --first-user-username x --first-user-email x@example.com \
    --first-user-password 'Correct-Horse-1' --username admin --password 'wrong-one' </dev/null 2>&1); rc=$?
check "login with a wrong password fails with EX_NOPERM (77): $out" test $rc -eq 77
echo "$out" | grep -q "Incorrect email or password." && ok "wrong password message" || bad "wrong password message: $out"
out=$("$OUTPOST_BIN" login "$URL" --username admin --password 'Correct-Horse-1' --global-config "$T/cfg2" 2>&1)
check "password login into another config dir" test -s "$T/cfg2/session"
out=$("$OUTPOST_BIN" login "$URL" --token "$SESSION" --global-config "$T/cfg3" 2>&1)
check "login --token verifies and stores the token" test "$(cat "$T/cfg3/session" 2>/dev/null)" = "$SESSION"

# --- the issue's done path ---
out=$("$OUTPOST_BIN" wsproxy create --name eu --display-name Europe --icon /emojis/1f1ea.png 2>&1); rc=$?
check "wsproxy create exits 0" test $rc -eq 0
echo "$out" | head -1 | grep -qx 'Workspace Proxy "eu" created successfully. Save this token, it will not be shown again.' \
    && ok "create message" || bad "create message: $out"
TOKEN=$(echo "$out" | sed -n 2p)
check "token is <uuid>:<64 alphanumerics>" bash -c "[[ '$TOKEN' =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[A-Za-z0-9]{64}$ ]]"
echo "$out" | grep -q "CODER_PROXY_SESSION_TOKEN=$TOKEN outpost wsproxy server --primary-access-url $URL" \
    && ok "create explains how to start the proxy" || bad "start hint: $out"
ls_out=$("$OUTPOST_BIN" wsproxy ls)
echo "$ls_out" | grep -Eq "^primary +$URL +ok$" && ok "ls: primary ok" || bad "ls primary: $ls_out"
echo "$ls_out" | grep -Eq "^eu +unregistered$" && ok "ls: eu unregistered" || bad "ls eu: $ls_out"
check "ls alias list works" bash -c "'$OUTPOST_BIN' wsproxy list | grep -q unregistered"
T2=$("$OUTPOST_BIN" wsproxy create --name us --only-token)
check "--only-token prints just the token" bash -c "[[ '$T2' =~ ^[0-9a-f-]{36}:[A-Za-z0-9]{64}$ ]]"
"$OUTPOST_BIN" wsproxy create --name eu >/dev/null 2>"$T/err"; rc=$?
check "duplicate name exits EX_DATAERR (65)" test $rc -eq 65
grep -q 'Workspace proxy with name "eu" already exists.' "$T/err" && ok "duplicate message" || bad "dup: $(cat "$T/err")"
"$OUTPOST_BIN" wsproxy create --name primary >/dev/null 2>"$T/err"; rc=$?
grep -q 'The name "primary" is reserved for the primary region.' "$T/err" && test $rc -eq 65 \
    && ok "reserved name refused" || bad "reserved: rc=$rc $(cat "$T/err")"
"$OUTPOST_BIN" wsproxy create </dev/null >/dev/null 2>"$T/err"; rc=$?
check "create without --name on a non-TTY: EX_USAGE and 'proxy name is required'" \
    bash -c "test $rc -eq 64 && grep -q 'proxy name is required' '$T/err'"

# --- API over HTTP: auth errors ---
body=$(curl -s "$URL/api/v2/workspaceproxies")
echo "$body" | grep -q '"message":"You are signed out or your session has expired. Please sign in again to continue."' \
    && ok "unauthenticated list -> signed-out message" || bad "401: $body"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceproxies")
check "unauthenticated list -> 401" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -b "coder_session_token=$SESSION" "$URL/api/v2/workspaceproxies")
check "session cookie works -> 200" test "$code" = 200
body=$(curl -s -X POST "$URL/api/v2/workspaceproxies/me/register" -d '{}')
check "register without a proxy token -> message" test "$body" = '{"message":"Missing required external proxy token"}'
body=$(curl -s "$URL/api/v2/workspaceproxies/me/crypto-keys" -H "Coder-External-Proxy-Token: $TOKEN")
check "crypto-keys without feature" test "$body" = '{"message":"Missing feature query parameter."}'
body=$(curl -s "$URL/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_token" -H "Coder-External-Proxy-Token: $TOKEN")
echo "$body" | python3 -c 'import json,sys; k=json.load(sys.stdin)["crypto_keys"][0]; assert len(k["secret"])==128 and k["sequence"]==1' \
    && ok "crypto-keys signing key over HTTP" || bad "crypto keys: $body"

# --- registration and health against a loopback proxy ---
PYPORT=$(free_port)
python3 "$SERVERS" healthreport $PYPORT & PY_PID=$!
PIDS+=("$PY_PID")
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PYPORT/healthz-report" >/dev/null && break; sleep 0.1; done
REPLICA=$(python3 -c 'import uuid;print(uuid.uuid4())')
code=$(curl -s -o "$T/reg.json" -w '%{http_code}' -X POST "$URL/api/v2/workspaceproxies/me/register" \
    -H "Coder-External-Proxy-Token: $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"access_url\":\"http://127.0.0.1:$PYPORT\",\"wildcard_hostname\":\"\",\"derp_enabled\":true,\"derp_only\":false,\"replica_id\":\"$REPLICA\",\"hostname\":\"e2e\",\"version\":\"v0.1.0\"}")
check "register over HTTP -> 201" test "$code" = 201
wait_status() { # name status seconds
    for _ in $(seq 1 $(($3 * 10))); do
        "$OUTPOST_BIN" wsproxy ls | grep -Eq "^$1 .* $2\$" && return 0
        sleep 0.1
    done
    return 1
}
check "eu becomes ok after registration (forced refresh)" wait_status eu ok 5
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/v2/workspaceproxies/me/app-stats" \
    -H "Coder-External-Proxy-Token: $TOKEN" -d '{"stats":[]}')
check "app-stats over HTTP -> 204" test "$code" = 204
body=$(curl -s -H "Coder-Session-Token: $SESSION" "$URL/api/v2/regions")
echo "$body" | python3 -c 'import json,sys; r=json.load(sys.stdin)["regions"]; assert [x["name"] for x in r]==["primary","eu","us"] and r[1]["healthy"] is True and r[1]["path_app_url"].startswith("http://127.0.0.1:")' \
    && ok "regions over HTTP: primary, eu (healthy), us" || bad "regions: $body"
body=$(curl -s -H "Coder-Session-Token: $SESSION" "$URL/api/v2/workspaceproxies/eu")
echo "$body" | python3 -c 'import json,sys; p=json.load(sys.stdin); assert p["status"]["status"]=="ok" and p["version"]=="v0.1.0"' \
    && ok "get proxy by name over HTTP" || bad "get: $body"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/v2/workspaceproxies/me/deregister" \
    -H "Coder-External-Proxy-Token: $TOKEN" -d "{\"replica_id\":\"$REPLICA\"}")
check "deregister over HTTP -> 204" test "$code" = 204
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/v2/workspaceproxies/me/register" \
    -H "Coder-External-Proxy-Token: $TOKEN" \
    -d "{\"access_url\":\"http://127.0.0.1:$PYPORT\",\"derp_enabled\":true,\"replica_id\":\"$REPLICA\",\"hostname\":\"e2e\"}")
check "a deregistered replica cannot register again -> 500" test "$code" = 500
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v2/nope")
check "unknown route -> 404" test "$code" = 404
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Coder-Session-Token: $SESSION" "$URL/api/v2/workspaceproxies")
check "wrong method -> 405" test "$code" = 405
kill "$PY_PID"; wait "$PY_PID" 2>/dev/null; PY_PID=
check "eu becomes unreachable within an interval after its server dies" wait_status eu unreachable 5
out=$("$OUTPOST_BIN" wsproxy ls -o text)
echo "$out" | grep -q "    Err: request to proxy failed: " && ok "ls -o text shows the error" || bad "text errors: $out"
check "the error is printed once" test "$(echo "$out" | grep -c 'Err: request to proxy failed')" = 1

# --- CLI errors name their cause ---
"$OUTPOST_BIN" wsproxy ls --token AAAAAAAAAA-BBBBBBBBBBBBBBBBBBBBBB >/dev/null 2>"$T/err"; rc=$?
check "invalid token: EX_NOPERM and the reason" bash -c "test $rc -eq 77 && grep -q 'API key is invalid' '$T/err'"
"$OUTPOST_BIN" wsproxy ls --url "http://127.0.0.1:$(free_port)" >/dev/null 2>"$T/err"; rc=$?
check "primary unreachable: EX_UNAVAILABLE and the reason" bash -c "test $rc -eq 69 && grep -q 'cannot reach the primary' '$T/err'"
"$OUTPOST_BIN" wsproxy delete nope -y >/dev/null 2>"$T/err"; rc=$?
check "unknown proxy: EX_DATAERR and 'not found'" bash -c "test $rc -eq 65 && grep -q 'workspace proxy \"nope\" not found' '$T/err'"
"$OUTPOST_BIN" wsproxy ls --global-config "$T/empty" >/dev/null 2>"$T/err"; rc=$?
check "not logged in: EX_CONFIG and a hint" bash -c "test $rc -eq 78 && grep -q \"outpost login\" '$T/err'"
"$OUTPOST_BIN" wsproxy edit eu >/dev/null 2>"$T/err"; rc=$?
check "edit without fields: EX_USAGE" bash -c "test $rc -eq 64 && grep -q 'specify at least one field to update' '$T/err'"

# --- edit, regenerate-token, delete ---
out=$("$OUTPOST_BIN" wsproxy edit eu --display-name "Europe West")
check "edit message: $out" test "$out" = 'Workspace Proxy "eu" updated successfully.'
NEW=$("$OUTPOST_BIN" wsproxy regenerate-token eu --only-token)
body=$(curl -s "$URL/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_token" -H "Coder-External-Proxy-Token: $TOKEN")
check "old token refused after regenerate-token" test "$body" = '{"message":"Invalid external proxy token","detail":"Invalid proxy token secret."}'
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_api_key" -H "Coder-External-Proxy-Token: $NEW")
check "new token accepted" test "$code" = 200
"$OUTPOST_BIN" wsproxy delete us </dev/null >/dev/null 2>"$T/err"; rc=$?
check "delete without -y on a non-TTY refuses (EX_USAGE)" test $rc -eq 64
out=$("$OUTPOST_BIN" wsproxy rm us -y)
check "rm alias deletes: $out" test "$out" = 'Workspace proxy "us" deleted successfully'
body=$(curl -s "$URL/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_token" -H "Coder-External-Proxy-Token: $T2")
check "deleted proxy's token refused" test "$body" = '{"message":"Invalid external proxy token","detail":"Proxy has been deleted."}'

# --- secrets never stored in plaintext ---
leak=0
for s in "${TOKEN#*:}" "${T2#*:}" "${NEW#*:}" "${SESSION#*-}" "Correct-Horse-1"; do
    for f in "$T"/data/outpost.db*; do grep -qF -- "$s" "$f" && { echo "  secret found in $f"; leak=1; }; done
done
check "no token, session secret or password in the database files" test $leak -eq 0

# --- restart keeps everything ---
check "server stops cleanly on SIGTERM" stop_server
start_server
out=$("$OUTPOST_BIN" wsproxy ls -c "name,display name")
echo "$out" | grep -Eq '^eu +Europe West$' && ok "after restart: eu and its edit are kept (same session)" || bad "restart: $out"
echo "$out" | grep -q '^us ' && bad "after restart: us reappeared" || ok "after restart: us stays deleted"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_token" -H "Coder-External-Proxy-Token: $NEW")
check "after restart: the proxy token still works" test "$code" = 200
out=$("$OUTPOST_BIN" logout)
echo "$out" | grep -q 'no longer logged in' && test ! -e "$T/cfg/session" && ok "logout" || bad "logout: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Coder-Session-Token: $SESSION" "$URL/api/v2/users/me")
check "the logged-out session is revoked" test "$code" = 401

echo "$fails failures"
[ $fails -eq 0 ]
