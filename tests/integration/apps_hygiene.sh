#!/usr/bin/env bash
# tests/integration/apps_hygiene.sh — what workspace apps add to and take from the browser's traffic, with
# real processes: a primary (--app-token-lifetime 3s, wildcard *.primary.localhost:P), a workspace proxy eu
# (wildcard *.eu.localhost:Q; curl resolves *.localhost to loopback), alice (the first user) with her agent
# and a Python app (tests/lib/app_server.py) as the subdomain apps own (owner), other (owner), auth
# (authenticated) and pub (public), and bob (a member). curl with cookie jars walks the sign-in like a browser.
#  1. token lifetime: a signed token expires after its lifetime (3 s) plus a leeway no longer than that;
#     the jar's next request gets a new coder_signed_app_token (307) and the app's page; the old token,
#     sent again after 7 s, no longer opens the app;
#  2. visitor headers: the app gets X-Coder-User-Id / -Username / -User-Email of the visitor (alice, bob),
#     a client's forged copies never (also not for an anonymous visitor of a public app, who gets none);
#  3. CORS of subdomain apps: an Origin of another of alice's apps gets Access-Control-Allow-Origin (exact),
#     -Credentials and Vary: Origin on alice's app (the app's own CORS headers removed); Origins of bob's apps,
#     of the primary's wildcard or elsewhere get none; preflights (no cookies) are answered 204 by the proxy,
#     with the Allow-* headers (the requested headers echoed) for alice's origins only.
#  4. port sharing: the port-share API (owner only; list, upsert, delete, bad bodies) and the share levels of
#     a port URL for alice (owner), bob (a member) and anonymous visitors as rows come and go.
#  5. app stats: requests through eu show up in the primary's app_usage_stats (eu reports every heartbeat).
#     A report that fails (the primary stopped) is sent again once the primary is back.
. "$(dirname "$0")/../lib/common.sh"
for c in curl python3; do command -v $c >/dev/null || { echo "$c missing"; exit 77; }; done
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
unset CODER_WILDCARD_ACCESS_URL CODER_DISABLE_PATH_APPS CODER_DANGEROUS_ALLOW_PATH_APP_SHARING
unset CODER_APP_TOKEN_LIFETIME http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy
export CODER_CONFIG_DIR=$T/cli
P=$(free_port) Q=$(free_port) A=$(free_port)
URL=http://127.0.0.1:$P
EU=http://localhost:$Q
PW_A='Alice-Pass-1' PW_B='Bob-Pass-12'
mkdir -p "$T/h"

N=0
req() { # req JAR URL [curl args...]: sets ST, H (head file), B (body file)
    local jar=$1 url=$2
    shift 2
    N=$((N + 1))
    H=$T/h/$N.head B=$T/h/$N.body
    ST=$(curl -4 -s -m 20 -b "$jar" -c "$jar" -D "$H" -o "$B" -w '%{http_code}' "$@" "$url") || ST=000
}
hdr() { grep -i -m1 "^$1:" "${2:-$H}" | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'; }
hdr_count() { grep -ic "^$1:" "${2:-$H}"; }
setcookie() { grep -i "^set-cookie: *$1=" "$H" | head -1 | cut -d: -f2- | sed 's/^ *//' | cut -d';' -f1 | tr -d '\r'; }
body() { head -c "${1:-300}" "$B"; }
want() { [ "$ST" = "$1" ] || fail "$2: status $ST, want $1 (request $N): $(tr -d '\r' <"$H" 2>/dev/null | head -12) $(body 2>/dev/null)"; }
abs_url() { case $2 in http://*) echo "$2" ;; /*) echo "$(sed -E 's#^(https?://[^/]+).*#\1#' <<<"$1")$2" ;; *) echo "BAD:$2" ;; esac; }
# walk JAR URL [curl args]: follows redirects by hand (at most 8), the args on every request; TRAIL = the
# statuses. With a 3 s token lifetime a token may expire between two requests: walks re-issue it.
walk() {
    local jar=$1 url=$2 i
    shift 2
    TRAIL=''
    for ((i = 0; i < 8; i++)); do
        req "$jar" "$url" "$@"
        TRAIL+="$ST "
        case $ST in 303 | 307) url=$(abs_url "$url" "$(hdr Location)") ;; *) return 0 ;; esac
    done
    fail "walk $2: more than 8 redirects: $TRAIL"
}
jar_cookie() { awk -F'\t' -v n="$2" '$6 == n { v = $7 } END { print v }' "$1"; }
echo_header() { # echo_header NAME: the values of header NAME the app got (from the /echo-headers body B)
    python3 -c 'import json,sys; print("|".join(v for k, v in json.load(open(sys.argv[1]))["headers"] if k.lower() == sys.argv[2].lower()))' "$B" "$1"
}
signin() { # signin JAR EMAIL PASSWORD: the dashboard session in JAR
    req "$1" "$URL/login" --data-urlencode "email=$2" --data-urlencode "password=$3" --data-urlencode "redirect=/"
    want 303 "POST /login as $2"
}

# ---- set-up ----
bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
    --wildcard-access-url "*.primary.localhost:$P" --proxy-health-interval 1s --agent-heartbeat-interval 2s \
    --app-token-lifetime 3s
PRIMARY_PID=$LAST_PID
wait_port $P
"$OUTPOST" login $URL --first-user-username alice --first-user-email alice@example.com \
    --first-user-password "$PW_A" >"$T/login.out" 2>&1 || fail "login: $(cat "$T/login.out")"
"$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>&1 || fail "wsproxy create eu"
CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") bg proxy-eu "$OUTPOST" wsproxy server \
    --primary-access-url $URL --http-address 127.0.0.1:$Q --access-url $EU \
    --wildcard-access-url "*.eu.localhost:$Q" --workers 2
wait_port $Q
"$OUTPOST" users create -u bob -e bob@example.com -p "$PW_B" >/dev/null 2>&1 || fail "users create bob"
head -c 1024 /dev/urandom >"$T/big"
bg app python3 "$ROOT/tests/lib/app_server.py" $A alice "$T/big"
wait_port $A
"$OUTPOST" create ws >"$T/create-ws.out" 2>&1 || fail "create ws: $(cat "$T/create-ws.out")"
mkdir -p "$T/ws"
(cd "$T/ws" && CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-ws.out") \
    exec "$OUTPOST" agent --data-dir "$T/agent-data" \
    --app "slug=own,url=http://127.0.0.1:$A,share=owner,subdomain=true" \
    --app "slug=other,url=http://127.0.0.1:$A,share=owner,subdomain=true" \
    --app "slug=auth,url=http://127.0.0.1:$A,share=authenticated,subdomain=true" \
    --app "slug=pub,url=http://127.0.0.1:$A,share=public,subdomain=true") >"$T/agent.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 120; i++)); do
    st=$("$OUTPOST" list -o json | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])) + "/" + str(len(a.get("apps") or [])) if a["status"]=="connected" else "-")')
    [ "$st" = eu,primary/4 ] && break
    sleep 0.25
done
[ "$st" = eu,primary/4 ] || fail "the agent is not connected to primary and eu with 4 apps: $st"
JA=$T/alice.jar JB=$T/bob.jar
signin "$JA" alice@example.com "$PW_A"
signin "$JB" bob@example.com "$PW_B"
ALICE_ID=$(curl -s -b "$JA" "$URL/api/v2/users/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
BOB_ID=$(curl -s -b "$JB" "$URL/api/v2/users/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
[ -n "$ALICE_ID" ] && [ -n "$BOB_ID" ] || fail "user ids: '$ALICE_ID' '$BOB_ID'"
sub() { echo "http://$1--main--ws--$2.eu.localhost:$Q"; } # sub SLUG USER: an app origin on eu
OWN=$(sub own alice)
ok "set-up: primary (--app-token-lifetime 3s), eu, alice's agent with own/other/auth/pub, alice and bob signed in"

# ---- 1. token lifetime ----
walk "$JA" "$OWN/"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "hello from alice's app: GET /" ] || fail "alice's own app: $TRAIL $(body)"
OLD=$(jar_cookie "$JA" coder_signed_app_token)
[ -n "$OLD" ] || fail "no signed token in the jar after $TRAIL"
python3 - "$OLD" <<'EOF' || fail "the token's lifetime is not 3 s"
import base64, json, sys
p = sys.argv[1].split(".")[1]
c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
sys.exit(0 if c["exp"] - c["iat"] == 3 else 1)
EOF
req "$JA" "$OWN/"
want 200 "the app with a fresh token"
sleep 7
req /dev/null "$OWN/" -H "Cookie: coder_signed_app_token=$OLD"
[ "$ST" = 200 ] && fail "a token 7 s old (lifetime 3 s) still opens the app"
want 303 "an expired token alone"
req "$JA" "$OWN/x"
want 307 "after expiry, with the app session cookie"
NEW=$(setcookie coder_signed_app_token)
NEW=${NEW#coder_signed_app_token=}
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] || fail "no new coder_signed_app_token after expiry: $(tr -d '\r' <"$H")"
req "$JA" "$OWN/x"
want 200 "the app with the re-issued token"
[ "$(cat "$B")" = "hello from alice's app: GET /x" ] || fail "after re-issue: $(body)"
ok "token lifetime 3 s: exp - iat = 3; 7 s later the old token alone gets 303 (no 60 s leeway); the jar's next request gets 307 with a new coder_signed_app_token, then the app's page"

# ---- 2. visitor headers ----
FORGE=(-H "X-Coder-User-Id: 00000000-0000-4000-8000-000000000000" -H "X-Coder-Username: mallory"
    -H "x-coder-user-email: mallory@evil.example")
walk "$JA" "$(sub auth alice)/echo-headers"
want 200 "alice on her auth app"
walk "$JA" "$(sub auth alice)/echo-headers" "${FORGE[@]}"
want 200 "alice with forged visitor headers"
[ "$(echo_header X-Coder-User-Id)" = "$ALICE_ID" ] && [ "$(echo_header X-Coder-Username)" = alice ] &&
    [ "$(echo_header X-Coder-User-Email)" = alice@example.com ] ||
    fail "alice's visitor headers: id '$(echo_header X-Coder-User-Id)' name '$(echo_header X-Coder-Username)' email '$(echo_header X-Coder-User-Email)'"
walk "$JB" "$(sub auth alice)/echo-headers"
want 200 "bob on alice's auth app"
walk "$JB" "$(sub auth alice)/echo-headers" "${FORGE[@]}"
[ "$(echo_header X-Coder-User-Id)" = "$BOB_ID" ] && [ "$(echo_header X-Coder-Username)" = bob ] &&
    [ "$(echo_header X-Coder-User-Email)" = bob@example.com ] ||
    fail "bob's visitor headers: id '$(echo_header X-Coder-User-Id)' name '$(echo_header X-Coder-Username)' email '$(echo_header X-Coder-User-Email)'"
JN=$T/anon.jar
walk "$JN" "$(sub pub alice)/echo-headers"
want 200 "anonymous on alice's public app"
walk "$JN" "$(sub pub alice)/echo-headers" "${FORGE[@]}"
want 200 "anonymous with forged visitor headers"
[ -z "$(echo_header X-Coder-User-Id)$(echo_header X-Coder-Username)$(echo_header X-Coder-User-Email)" ] ||
    fail "an anonymous visitor's request reached the app with visitor headers: $(body 600)"
ok "visitor headers: alice and bob reach the app as themselves (id, username, email), forged copies removed; an anonymous visitor of a public app: none at all"

# ---- 3. CORS of subdomain apps ----
walk "$JA" "$OWN/echo-headers"
want 200 "alice's own app"
ORIG=$(sub other alice)
walk "$JA" "$OWN/echo-headers" -H "Origin: $ORIG"
want 200 "alice's app with the Origin of her other app"
[ "$(hdr Access-Control-Allow-Origin)" = "$ORIG" ] && [ "$(hdr_count Access-Control-Allow-Origin)" = 1 ] &&
    [ "$(hdr Access-Control-Allow-Credentials)" = true ] && [ "$(hdr_count Access-Control-Allow-Methods)" = 0 ] ||
    fail "CORS for alice's own origin: $(tr -d '\r' <"$H")"
grep -qi '^vary: *origin' "$H" || fail "no Vary: Origin: $(tr -d '\r' <"$H")"
[ "$(hdr X-App)" = alice ] || fail "the app's other headers were lost: $(tr -d '\r' <"$H")"
for o in "$(sub own bob)" "$(sub x-y bob)" "http://other--main--ws--alice.primary.localhost:$P" "http://evil.example" \
    "$ORIG/path" "http://alice@other--main--ws--alice.eu.localhost:$Q" "null"; do
    walk "$JA" "$OWN/echo-headers" -H "Origin: $o"
    want 200 "alice's app with Origin $o"
    [ "$(hdr_count 'Access-Control-Allow-[A-Za-z]*')" = 0 ] || fail "CORS headers for Origin $o: $(tr -d '\r' <"$H")"
done
PRE=(-X OPTIONS -H "Origin: $ORIG" -H "Access-Control-Request-Method: PUT" -H "Access-Control-Request-Headers: x-foo, content-type")
req /dev/null "$OWN/echo-headers" "${PRE[@]}"
want 204 "a preflight from alice's other app (no cookies)"
[ "$(hdr Access-Control-Allow-Origin)" = "$ORIG" ] && [ "$(hdr Access-Control-Allow-Credentials)" = true ] &&
    [ "$(hdr Access-Control-Allow-Headers)" = "x-foo, content-type" ] &&
    [[ "$(hdr Access-Control-Allow-Methods)" == *PUT* ]] || fail "preflight answer: $(tr -d '\r' <"$H")"
req /dev/null "$OWN/echo-headers" -X OPTIONS -H "Origin: $(sub own bob)" -H "Access-Control-Request-Method: PUT"
want 204 "a preflight from bob's app"
[ "$(hdr_count 'Access-Control-Allow-[A-Za-z]*')" = 0 ] || fail "CORS headers for bob's preflight: $(tr -d '\r' <"$H")"
req /dev/null "$OWN/echo-headers" -X OPTIONS -H "Origin: $ORIG" -H "Access-Control-Request-Method: CONNECT"
want 204 "a preflight for CONNECT"
[ "$(hdr_count 'Access-Control-Allow-[A-Za-z]*')" = 0 ] || fail "CORS headers for a CONNECT preflight: $(tr -d '\r' <"$H")"
req /dev/null "$OWN/echo-headers" -X OPTIONS -H "Origin: $ORIG"
want 303 "OPTIONS without Access-Control-Request-Method (not a preflight: needs a token)"
ok "CORS: alice's other app's origin gets Allow-Origin (exact, once), -Credentials, Vary: Origin; bob's, the primary's wildcard, other hosts, a path, userinfo, null: none; preflights 204 from the proxy (Allow-* for alice's origin and allowed methods only)"

# ---- 4. port sharing ----
WSID=$("$OUTPOST" list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
ATOK=$(cat "$T/cli/session")
api() { # api METHOD [JSON] [curl args]: alice's port-share call; ST and B as req
    local m=$1 d=${2:-}
    shift 2 2>/dev/null || shift
    req /dev/null "$URL/api/v2/workspaces/$WSID/port-share" -X "$m" -H "Coder-Session-Token: ${TOK:-$ATOK}" \
        ${d:+-H 'Content-Type: application/json' --data "$d"} "$@"
}
PORT=$(sub "$A" alice)/p
JN2=$T/anon2.jar
walk "$JA" "$PORT"
want 200 "alice on her own port"
[ "$(cat "$B")" = "hello from alice's app: GET /p" ] || fail "alice's port: $(body)"
walk "$JB" "$PORT"
want 404 "bob on alice's unshared port"
walk "$JN2" "$PORT"
grep -q "login" "$B" && ! grep -q "hello from" "$B" || fail "anonymous on an unshared port: $TRAIL $(body)"
api GET
want 200 "list shares (none)"
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["shares"]))' "$B")" = 0 ] || fail "shares: $(body)"
api POST "{\"agent_name\":\"MAIN\",\"port\":$A,\"share_level\":\"authenticated\",\"protocol\":\"http\"}"
want 200 "share the port (authenticated)"
python3 - "$B" "$WSID" "$A" <<'PY' || fail "the share answer: $(body)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s == {"workspace_id": sys.argv[2], "agent_name": "main", "port": int(sys.argv[3]),
             "share_level": "authenticated", "protocol": "http"}, s
PY
walk "$JB" "$PORT"
want 200 "bob on the authenticated port"
walk "$JN2" "$PORT"
grep -q "login" "$B" && ! grep -q "hello from" "$B" || fail "anonymous on an authenticated port: $TRAIL $(body)"
api POST "{\"agent_name\":\"main\",\"port\":$A,\"share_level\":\"public\",\"protocol\":\"http\"}"
want 200 "share the port (public)"
api GET
[ "$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["shares"]; print(len(s), s[0]["share_level"])' "$B")" = "1 public" ] ||
    fail "after the upsert: $(body)"
walk "$JN2" "$PORT"
want 200 "anonymous on the public port"
[ "$(cat "$B")" = "hello from alice's app: GET /p" ] || fail "anonymous on the public port: $(body)"
# refusals: bob may not share alice's ports nor see them; bad bodies
"$OUTPOST" login $URL --global-config "$T/bob" --username bob --password "$PW_B" >/dev/null 2>&1 || fail "bob's CLI login"
TOK=$(cat "$T/bob/session")
api GET
want 404 "bob lists alice's shares"
api POST "{\"agent_name\":\"main\",\"port\":$A,\"share_level\":\"public\"}"
want 404 "bob shares alice's port"
TOK=
for bad in "{\"agent_name\":\"main\",\"port\":8,\"share_level\":\"public\"}" \
    "{\"agent_name\":\"main\",\"port\":70000,\"share_level\":\"public\"}" \
    "{\"agent_name\":\"nope\",\"port\":$A,\"share_level\":\"public\"}" \
    "{\"agent_name\":\"main\",\"port\":$A,\"share_level\":\"everyone\"}" \
    "{\"agent_name\":\"main\",\"port\":$A,\"share_level\":\"public\",\"protocol\":\"ftp\"}" \
    "{\"agent_name\":\"main\",\"port\":\"$A\",\"share_level\":\"public\"}"; do
    api POST "$bad"
    want 400 "a bad share $bad"
done
api DELETE "{\"agent_name\":\"main\",\"port\":$A}"
want 200 "delete the share"
api DELETE "{\"agent_name\":\"main\",\"port\":$A}"
want 404 "delete it again"
sleep 7 # the signed tokens issued while the port was shared expire (lifetime 3 s, leeway 3 s)
walk "$JB" "$PORT"
want 404 "bob on the port after the share is gone"
walk "$JN2" "$PORT"
grep -q "login" "$B" && ! grep -q "hello from" "$B" || fail "anonymous on the port after the share is gone: $TRAIL $(body)"
walk "$JA" "$PORT"
want 200 "alice on her port after the share is gone"
"$OUTPOST" port-share add ws.main $A --level organization >"$T/ps.out" 2>&1 || fail "port-share add: $(cat "$T/ps.out")"
"$OUTPOST" port-share ls ws -o json >"$T/ps.json" 2>&1 || fail "port-share ls: $(cat "$T/ps.json")"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert [(x["agent_name"], x["port"], x["share_level"], x["protocol"]) for x in s] == [("main", int(sys.argv[2]), "organization", "http")], s' \
    "$T/ps.json" "$A" || fail "port-share ls after add: $(cat "$T/ps.json")"
"$OUTPOST" port-share ls ws | grep -Eq "^main +$A +organization +http" || fail "port-share ls table: $("$OUTPOST" port-share ls ws)"
"$OUTPOST" port-share add ws 8 >/dev/null 2>&1 && fail "port-share add of port 8 succeeded"
"$OUTPOST" port-share rm ws $A >"$T/ps.out" 2>&1 || fail "port-share rm: $(cat "$T/ps.out")"
[ "$("$OUTPOST" port-share ls ws -o json | tr -d ' \n')" = "[]" ] || fail "port-share ls after rm: $("$OUTPOST" port-share ls ws -o json)"
"$OUTPOST" port-share rm ws $A >/dev/null 2>&1 && fail "port-share rm of a share that is gone succeeded"
ok "port sharing: port $A is owner-only (bob 404, anonymous sign-in); shared authenticated: bob 200, anonymous not; public (an upsert): anonymous 200; bob may neither list nor share (404); bad port/agent/level/protocol 400; deleted (again: 404): back to owner-only once the issued tokens expire; outpost port-share add/ls (json, table)/rm"

# ---- 5. app stats: eu's workers count, its control thread reports with each heartbeat (5 s) ----
stats_of() { # stats_of SLUG: "<rows> <sum of requests> <distinct proxies>" the primary stored for alice's app
    PYTHONPATH=$ROOT/tests/lib python3 - "$T/data" "$1" "$ALICE_ID" "$WSID" <<'PY'
import sys, testdb
db = testdb.connect(sys.argv[1])
r = db.query("SELECT count(*), coalesce(sum(requests), 0), count(DISTINCT proxy_id) FROM app_usage_stats"
               " WHERE slug_or_port = ? AND user_id = ? AND workspace_id = ? AND access_method = 'subdomain'"
               " AND agent_id != '' AND proxy_id != '' AND session_ended_at >= session_started_at",
               sys.argv[2:5])[0]
print(*r)
PY
}
[ "$(stats_of other | cut -d' ' -f2)" = 0 ] || fail "stats for 'other' before any request: $(stats_of other)"
for i in 1 2 3 4 5; do
    walk "$JA" "$(sub other alice)/s$i"
    want 200 "alice's other app, request $i"
done
for ((i = 0; i < 60; i++)); do
    set -- $(stats_of other)
    [ "${2:-0}" -ge 5 ] && break
    sleep 0.5
done
[ "${2:-0}" = 5 ] && [ "$3" = 1 ] || fail "app stats for alice's 'other' app: $(stats_of other) (rows, requests, proxies), want 5 requests from one proxy"
ok "app stats: 5 requests to alice's other app through eu reached the primary's app_usage_stats ($1 row(s), 5 requests) within $((i / 2)) s"
# a report the primary does not take is sent again: the primary stopped, 3 requests on a live token, the
# failed report, the primary back (same data): the sum reaches 5 + 2 + 3
walk "$JA" "$(sub other alice)/t"
want 200 "alice's other app before the primary stops"
for ((i = 0; i < 60; i++)); do
    set -- $(stats_of other)
    [ "${2:-0}" -ge 6 ] && break
    sleep 0.5
done
[ "${2:-0}" = 6 ] || fail "app stats before the primary stops: $(stats_of other)"
walk "$JA" "$(sub other alice)/u" # a fresh token for the requests while the primary is away
want 200 "a fresh token"
kill "$PRIMARY_PID"
wait "$PRIMARY_PID" 2>/dev/null
for i in 1 2 3; do
    req "$JA" "$(sub other alice)/v$i"
    want 200 "a live token while the primary is stopped ($i)"
done
for ((i = 0; i < 40; i++)); do
    grep -q "app stats report failed (retried later)" "$T/proxy-eu.log" && break
    sleep 0.5
done
grep -q "app stats report failed (retried later)" "$T/proxy-eu.log" || fail "no failed app stats report while the primary is stopped: $(tail -5 "$T/proxy-eu.log")"
bg primary2 "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
    --wildcard-access-url "*.primary.localhost:$P" --proxy-health-interval 1s --agent-heartbeat-interval 2s \
    --app-token-lifetime 3s
wait_port $P
for ((i = 0; i < 60; i++)); do
    set -- $(stats_of other)
    [ "${2:-0}" -ge 10 ] && break
    sleep 0.5
done
[ "${2:-0}" = 10 ] || fail "app stats after the primary is back: $(stats_of other) (rows, requests, proxies), want 10 requests"
ok "app stats: a report that failed while the primary was stopped was sent again once it was back (10 requests stored, none twice)"
