#!/usr/bin/env bash
# tests/integration/apps.sh — workspace apps end to end with curl and cookie jars, the way a browser walks
# them (every redirect followed by hand and checked): a primary (dashboard http://127.0.0.1:P, wildcard
# *.primary.localhost:P), a workspace proxy eu (access URL http://localhost:Q — another host than the
# primary's, so no cookie is shared — wildcard *.eu.localhost:Q; curl resolves *.localhost to loopback),
# the real `outpost agent` of alice (the first user, a site owner) with a Python app (tests/lib/app_server.py)
# declared as apps own (share owner), auth (authenticated) and pub (public), and bob (a member) with his
# own workspace, agent and app.
#  1. a path app through eu, signed out: the 303 to the primary's auth redirect, its 303 to /login, POST
#     /login (coder_session_token: HttpOnly, SameSite=Lax, Path=/), the auth redirect's 303 back with the
#     app-connect key, eu's 303 without it (coder_path_app_session_token: HttpOnly, host-only, Path=/), the
#     307 with coder_signed_app_token (Path = the app's base path, Expires, SameSite=Lax, not HttpOnly), the
#     app's body (path and query under the app kept through every step);
#  2. subdomain apps on eu and on the primary (the subdomain session cookie on the wildcard's parent), a
#     path app on the primary (dashboard cookie, /login redirect when signed out), a port URL, the trailing
#     slash 307, @me 404, port 8 400, a forged key 400, a key on the dashboard host 400;
#  3. share levels owner/authenticated/public x alice/bob/anonymous on eu path apps (forced to owner by
#     default), eu and primary subdomain apps; a site owner on another user's path and subdomain app;
#  -  a signed token opens its own app only (not another app, tampered, another user's, a swapped payload,
#     in the query, or as the 5th coder_signed_app_token cookie);
#  4. hygiene: the app never sees coder_* cookies (other cookies kept) nor a forged X-Forwarded-For, gets the
#     client's; its CORS headers and Vary: Origin are removed (other headers and Vary values kept);
#  5. open redirects at the auth redirect: the dashboard host, other hosts, userinfo, backslashes,
#     scheme-relative, percent-escapes, other ports, a lookalike suffix: 400; eu and the primary wildcard:
#     303 (the scheme forced to the access URL's);
#  6. 100 MiB down and up through an app (SHA-256 checked, MiB/s printed), a chunked upload, WebSocket echoes
#     through eu and the primary;
#  7. alice and bob hammering eu at once (200 requests each on 8 keep-alive connections each), every body
#     checked; one keep-alive connection switching hosts, users and the proxy's own API; HEAD, chunked, 204,
#     pipelining, a streamed answer not held back; an app port nobody listens on: 502 HTML page with the agent's
#     reason and a link to the dashboard; an app URL with a path and a query (the default-query 307, the
#     app's path before the path under the app);
#  8. the primary hung (SIGSTOP): signed-token requests and /healthz go on, 20 concurrent sign-ins that need
#     the primary all get 502 after their 5 s issue timeout, in parallel (< 8 s in all); the primary stopped: a live signed token still serves, a request that needs the
#     primary gets the 502 "primary is unreachable" page within 3 s; restarted with
#     --dangerous-allow-path-app-sharing: path apps follow their share levels; bob's agent stopped: his app
#     answers 502 "Agent offline" though its server still runs.
# (Run order: 1, 2, 5, 3, tokens, 4, 6, 7, 8.) Prints time to first byte, the slow path's time, MiB/s both
# ways and the request rate.
. "$(dirname "$0")/../lib/common.sh"
for c in curl python3 sha256sum; do command -v $c >/dev/null || { echo "$c missing"; exit 77; }; done
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
unset CODER_WILDCARD_ACCESS_URL CODER_DISABLE_PATH_APPS CODER_DANGEROUS_ALLOW_PATH_APP_SHARING
unset CODER_DANGEROUS_ALLOW_PATH_APP_SITE_OWNER_ACCESS http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy
export CODER_CONFIG_DIR=$T/cli
P=$(free_port) Q=$(free_port) A=$(free_port) BA=$(free_port)
URL=http://127.0.0.1:$P # the primary (dashboard)
EU=http://localhost:$Q  # the proxy eu
PW_A='Alice-Pass-1' PW_B='Bob-Pass-12'
CLIENT=(python3 "$ROOT/tests/lib/app_client.py")
KEYP=coder_application_connect_api_key_35e783
mkdir -p "$T/h"

start_primary() { # logname [flags]
    bg "$1" "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
        --wildcard-access-url "*.primary.localhost:$P" --proxy-health-interval 1s --agent-heartbeat-interval 2s \
        "${@:2}"
    PRIMARY_PID=$LAST_PID
    wait_port $P
}

# ---- HTTP helpers: one request at a time, no redirect followed by curl ----
N=0
req() { # req JAR URL [curl args...]: sets ST (status), H (head file), B (body file), TT (time_total s)
    local jar=$1 url=$2 out
    shift 2
    N=$((N + 1))
    H=$T/h/$N.head B=$T/h/$N.body
    out=$(curl -4 -s -m 30 -b "$jar" -c "$jar" -D "$H" -o "$B" -w '%{http_code} %{time_total}' "$@" "$url") ||
        out="000 0"
    ST=${out% *} TT=${out#* }
    echo "$N $ST $url" >>"$T/requests.txt"
}
hdr() { grep -i -m1 "^$1:" "${2:-$H}" | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'; }
hdr_count() { grep -ic "^$1:" "${2:-$H}"; }
setcookie() { grep -i "^set-cookie: *$1=" "$H" | head -1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'; }
has_attr() { grep -qiE "; *$2(;|$)" <<<"$1"; } # has_attr COOKIE-LINE ATTR-REGEX
body() { head -c "${1:-300}" "$B"; }
abs_url() { # abs_url BASE LOCATION
    case $2 in
    http://* | https://*) echo "$2" ;;
    /*) echo "$(sed -E 's#^(https?://[^/]+).*#\1#' <<<"$1")$2" ;;
    *) echo "BAD-RELATIVE:$2" ;;
    esac
}
ms() { python3 -c "print('%.1f' % ($1 * 1000))"; } # seconds -> ms
qparam() { "${CLIENT[@]}" qparam "$1" "$2"; }
urlenc() { "${CLIENT[@]}" urlenc "$1"; }
want() { # want CODE WHAT
    [ "$ST" = "$1" ] || fail "$2: status $ST, want $1 (request $N): $(tr -d '\r' <"$H" 2>/dev/null | head -12) $(body 2>/dev/null)"
}
jar_cookie() { # jar_cookie JAR NAME [PATH [HOST]]: the cookie's value in a curl jar
    awk -F'\t' -v n="$2" -v p="${3:-}" -v h="${4:-}" '$6 == n && (p == "" || $3 == p) &&
        (h == "" || $1 == h || $1 == "#HttpOnly_" h) { v = $7 } END { print v }' "$1"
}
app_body() { echo "hello from $1's app: GET $2"; } # app_body USER PATH-UNDER-APP
sub_cookie_name() { echo "coder_subdomain_app_session_token_$(printf '%s' "$1" | sha256sum | cut -c1-32)"; }

# walk JAR URL: follows redirects by hand (at most 8) but not into the primary's sign-in page: the last answer
# in ST/H/B, TRAIL = the statuses, FIRST_LOC = the first redirect's target, LOGIN=1 if it stopped at /login.
walk() {
    local jar=$1 url=$2 i
    TRAIL='' LOGIN=0 FIRST_LOC=''
    for ((i = 0; i < 8; i++)); do
        req "$jar" "$url"
        TRAIL+="$ST "
        case $ST in 301 | 302 | 303 | 307 | 308) ;; *) return 0 ;; esac
        url=$(abs_url "$url" "$(hdr Location)")
        [ $i = 0 ] && FIRST_LOC=$url
        case $url in "$URL/login?"*) LOGIN=1 && return 0 ;; esac
    done
    fail "walk $2: more than 8 redirects: $TRAIL"
}

# check_auth_redirect_loc LOC APP_URL: LOC is the primary's auth redirect back to APP_URL
check_auth_redirect_loc() {
    case $1 in "$URL/api/v2/applications/auth-redirect?redirect_uri="*) ;; *) fail "not the auth redirect: $1" ;; esac
    [ "$(qparam "$1" redirect_uri)" = "$2" ] || fail "redirect_uri of $1 is not $2"
}

# from_auth_redirect JAR LOC APP_URL KIND COOKIE BASE BODY: the rest of the sign-in walk for a user signed in
# at the primary, from the auth redirect LOC: 303 to APP_URL with the key, 303 without it + the session
# cookie COOKIE (KIND path: host-only; subdomain: Domain = the wildcard's parent), 307 + the signed token
# (Path=BASE), then BODY. Sets T_ISSUE (the 307 step's time).
from_auth_redirect() {
    local jar=$1 loc=$2 app=$3 kind=$4 cname=$5 base=$6 want_body=$7 c
    req "$jar" "$loc"
    want 303 "auth redirect for $app"
    loc=$(hdr Location)
    case $loc in "$app?$KEYP="* | "$app&$KEYP="*) ;; *) fail "the auth redirect did not go back to $app with the key: $loc" ;; esac
    [ -n "$(qparam "$loc" $KEYP)" ] || fail "empty app-connect key in $loc"
    req "$jar" "$loc"
    want 303 "$app with the app-connect key"
    [ "$(abs_url "$app" "$(hdr Location)")" = "$app" ] || fail "after the key: Location $(hdr Location), want $app without the key"
    c=$(setcookie "$cname")
    [ -n "$c" ] || fail "no $cname cookie after the key: $(tr -d '\r' <"$H")"
    has_attr "$c" HttpOnly && has_attr "$c" 'SameSite=Lax' && has_attr "$c" 'Path=/' || fail "$cname attributes: $c"
    if [ "$kind" = subdomain ]; then
        local dom=${app#http://*.}
        dom=${dom%%[:/]*}
        has_attr "$c" "Domain=\.?${dom//./\\.}" || fail "$cname is not for Domain=$dom: $c"
    else
        has_attr "$c" 'Domain=[^;]*' && fail "the path app session cookie has a Domain (must be host-only): $c"
    fi
    req "$jar" "$app"
    want 307 "$app with the app session cookie"
    T_ISSUE=$TT
    [ "$(abs_url "$app" "$(hdr Location)")" = "$app" ] || fail "the 307 goes to $(hdr Location), not $app"
    c=$(setcookie coder_signed_app_token)
    [ -n "$c" ] || fail "no coder_signed_app_token with the 307: $(tr -d '\r' <"$H")"
    has_attr "$c" "Path=${base//./\\.}" && has_attr "$c" 'SameSite=Lax' && has_attr "$c" 'Expires=[^;]+' ||
        fail "coder_signed_app_token attributes (want Path=$base, Expires, SameSite=Lax): $c"
    has_attr "$c" HttpOnly && fail "coder_signed_app_token is HttpOnly: $c"
    req "$jar" "$app"
    want 200 "$app with the signed token"
    [ "$(cat "$B")" = "$want_body" ] || fail "$app: body '$(body)', want '$want_body'"
}

login_form() { # login_form JAR EMAIL PASSWORD REDIRECT: POST /login, checks the 303 and the cookie
    req "$1" "$URL/login" --data-urlencode "email=$2" --data-urlencode "password=$3" --data-urlencode "redirect=$4"
    want 303 "POST /login as $2"
    [ "$(hdr Location)" = "$4" ] || fail "POST /login went to $(hdr Location), want $4"
    local c
    c=$(setcookie coder_session_token)
    has_attr "$c" HttpOnly && has_attr "$c" 'SameSite=Lax' && has_attr "$c" 'Path=/' ||
        fail "coder_session_token attributes: $c"
}

# ---- set-up: primary, eu, alice (first user) and bob, their workspaces, agents and apps ----
start_primary primary
"$OUTPOST" login $URL --first-user-username alice --first-user-email alice@example.com \
    --first-user-password "$PW_A" >"$T/login.out" 2>&1 || fail "login: $(cat "$T/login.out")"
"$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>&1 || fail "wsproxy create eu"
start_proxy() {
    CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") bg proxy-eu "$OUTPOST" wsproxy server \
        --primary-access-url $URL --http-address 127.0.0.1:$Q --access-url $EU \
        --wildcard-access-url "*.eu.localhost:$Q" --workers 2
    PROXY_PID=$LAST_PID
    wait_port $Q
}
start_proxy
"$OUTPOST" users create -u bob -e bob@example.com -p "$PW_B" >/dev/null 2>&1 || fail "users create bob"
BOBCLI=(--global-config "$T/bob")
"$OUTPOST" login $URL "${BOBCLI[@]}" --username bob --password "$PW_B" >/dev/null 2>&1 || fail "bob login"

head -c $((100 << 20)) /dev/urandom >"$T/big"
BIGSUM=$(sha256sum <"$T/big" | cut -d' ' -f1)
bg app-alice python3 "$ROOT/tests/lib/app_server.py" $A alice "$T/big"
bg app-bob python3 "$ROOT/tests/lib/app_server.py" $BA bob "$T/big"
certs
AS=$(free_port) # an https app whose certificate names another host and comes from an unknown CA
bg app-tls python3 "$ROOT/tests/lib/app_server.py" $AS alice-tls "$T/big" "$T/certs/rsa.pem" "$T/certs/rsa.key"
wait_port $A
wait_port $BA
wait_port $AS
"$OUTPOST" create ws >"$T/create-ws.out" 2>&1 || fail "create ws: $(cat "$T/create-ws.out")"
"$OUTPOST" create bws "${BOBCLI[@]}" >"$T/create-bws.out" 2>&1 || fail "create bws: $(cat "$T/create-bws.out")"
mkdir -p "$T/ws-alice" "$T/ws-bob"
(cd "$T/ws-alice" && CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-ws.out") \
    exec "$OUTPOST" agent --data-dir "$T/agent-alice-data" \
    --app "slug=own,url=http://127.0.0.1:$A,share=owner" \
    --app "slug=auth,url=http://127.0.0.1:$A,share=authenticated" \
    --app "slug=pub,url=http://127.0.0.1:$A,share=public,subdomain=true" \
    --app "slug=sub,url=http://127.0.0.1:$A/sub?folder=/w,share=owner" \
    --app "slug=tls,url=https://127.0.0.1:$AS,share=owner" \
    --app "slug=notls,url=https://127.0.0.1:$A,share=owner") >"$T/agent-alice.log" 2>&1 &
PIDS+=($!)
(cd "$T/ws-bob" && CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-bws.out") \
    exec "$OUTPOST" agent --data-dir "$T/agent-bob-data" \
    --app "slug=own,url=http://127.0.0.1:$BA,share=owner") >"$T/agent-bob.log" 2>&1 &
PIDS+=($!)
BOB_AGENT_PID=$!
agent_state() { # agent_state [cli flags]: "<regions>/<number of apps>" of the caller's first workspace's agent
    "$OUTPOST" list -o json "$@" | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])) + "/" + str(len(a.get("apps") or [])) if a["status"]=="connected" else "-")'
}
wait_agents() { # wait_agents SECONDS
    local i
    for ((i = 0; i < $1 * 4; i++)); do
        [ "$(agent_state)" = eu,primary/6 ] && [ "$(agent_state "${BOBCLI[@]}")" = eu,primary/1 ] && return 0
        sleep 0.25
    done
    fail "agents not connected to primary and eu with their apps: alice $(agent_state), bob $(agent_state "${BOBCLI[@]}")"
}
wait_agents 30
ok "set-up: primary, eu, alice's agent (apps own/auth/pub) and bob's (app own) connected to primary and eu"

# ---- 1. a path app through eu, signed out, to the app's body ----
JA=$T/alice.jar
APP=$EU/@alice/ws/apps/own/
START="${APP}sub/dir?a=1&b=two"
req "$JA" "$START"
want 303 "signed out: $START"
LOC=$(hdr Location)
check_auth_redirect_loc "$LOC" "$START"
req "$JA" "$LOC"
want 303 "auth redirect signed out"
LOGIN_LOC=$(hdr Location)
case $LOGIN_LOC in /login\?redirect=*) ;; *) fail "the auth redirect signed out went to $LOGIN_LOC, not /login?redirect=" ;; esac
R=$(qparam "$LOGIN_LOC" redirect)
[ "$URL$R" = "$LOC" ] || fail "the login page's redirect $R is not the auth redirect $LOC"
req "$JA" "$URL$LOGIN_LOC"
want 200 "GET /login"
grep -q '<form method="post" action="/login"' "$B" || fail "no sign-in form: $(body)"
login_form "$JA" alice@example.com "$PW_A" "$R"
from_auth_redirect "$JA" "$URL$R" "$START" path coder_path_app_session_token /@alice/ws/apps/own/ \
    "$(app_body alice '/sub/dir?a=1&b=two')"
ok "path app via eu signed out: 303 auth-redirect (redirect_uri = the app URL) -> 303 /login -> POST /login 303 (coder_session_token HttpOnly, SameSite=Lax, Path=/) -> auth-redirect 303 with the key -> eu 303 without it (coder_path_app_session_token HttpOnly, host-only) -> 307 (coder_signed_app_token Path=/@alice/ws/apps/own/, Expires, SameSite=Lax, not HttpOnly) -> 200, path and query kept"

# ---- an https app (self-signed, another name): the agent speaks TLS to it without checking the cert ----
walk "$JA" "$EU/@alice/ws/apps/tls/x?y=1"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body alice-tls "/x?y=1")" ] ||
    fail "https app via eu: $TRAIL $(body)"
ok "an https app (certificate for rsa.test from a private CA) through eu: ${TRAIL}, the app's body"
walk "$JA" "$EU/@alice/ws/apps/notls/"
[ "$ST" = 502 ] || fail "an https app URL on a plain HTTP server: $TRAIL $(body)"
grep -q "TLS to the app" "$T/agent-alice.log" || fail "the agent does not say why: $(tail -3 "$T/agent-alice.log")"
ok "an https app URL whose server speaks plain HTTP: $TRAIL(the agent: $(grep -o 'TLS to the app[^"]*' "$T/agent-alice.log" | head -1 | cut -c1-80))"
req "$JA" "$APP"
want 200 "the app base with the signed token"
[ "$(cat "$B")" = "$(app_body alice /)" ] || fail "app base: $(body)"
for i in $(seq 20); do
    curl -4 -s -o /dev/null -b "$JA" -w '%{http_code} %{time_starttransfer}\n' "$APP"
done >"$T/ttfb.txt"
grep -vq '^200 ' "$T/ttfb.txt" && fail "fast path: $(sort "$T/ttfb.txt" | uniq -c | head -3)"
TTFB=$(awk '{printf "%.2f\n", $2 * 1000}' "$T/ttfb.txt" | sort -n | sed -n 10p)
ok "fast path (signed token cookie): 20 requests through eu, time to first byte median ${TTFB} ms; the slow path (eu asks the primary for a token, 307) took $(ms $T_ISSUE) ms"

# ---- 2. subdomain apps on eu and the primary, the primary's path apps, ports, refusals ----
SUB_E=http://own--main--ws--alice.eu.localhost:$Q/
CN_E=$(sub_cookie_name "*.eu.localhost:$Q")
req "$JA" "$SUB_E"
want 303 "subdomain app on eu, no app session"
check_auth_redirect_loc "$(hdr Location)" "$SUB_E"
LOC=$(hdr Location)
from_auth_redirect "$JA" "$LOC" "$SUB_E" subdomain "$CN_E" / "$(app_body alice /)"
ok "subdomain app on eu: 303 auth-redirect -> 303 with the key -> 303 ($CN_E, Domain=eu.localhost, HttpOnly) -> 307 (signed token Path=/) -> 200"
SUB_P=http://own--main--ws--alice.primary.localhost:$P/
CN_P=$(sub_cookie_name "*.primary.localhost:$P")
req "$JA" "$SUB_P"
want 303 "subdomain app on the primary"
check_auth_redirect_loc "$(hdr Location)" "$SUB_P"
from_auth_redirect "$JA" "$(hdr Location)" "$SUB_P" subdomain "$CN_P" / "$(app_body alice /)"
ok "subdomain app on the primary: the same walk ($CN_P on Domain=primary.localhost)"
APP_P=$URL/@alice/ws/apps/own/
JN=$T/anon-primary.jar
req "$JN" "${APP_P}x?y=1"
want 303 "path app on the primary signed out"
case $(hdr Location) in /login\?redirect=*) ;; *) fail "path app on the primary signed out: Location $(hdr Location)" ;; esac
[ "$(qparam "$(hdr Location)" redirect)" = "/@alice/ws/apps/own/x?y=1" ] || fail "path app on the primary signed out: Location $(hdr Location)"
walk "$JA" "${APP_P}x?y=1"
[ "$TRAIL" = "307 200 " ] && [ "$(cat "$B")" = "$(app_body alice '/x?y=1')" ] ||
    fail "path app on the primary with the dashboard session: $TRAIL $(body)"
ok "path app on the primary: signed out 303 to /login?redirect=<the app path>; with the dashboard cookie 307 (signed token) -> 200"
PORT_E=http://$A--main--ws--alice.eu.localhost:$Q/
walk "$JA" "${PORT_E}p?q=1"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body alice '/p?q=1')" ] || fail "port URL $PORT_E: $TRAIL $(body)"
ok "port URL $PORT_E: $TRAIL(the subdomain session cookie was reused)"
walk "$JA" "http://${AS}s--main--ws--alice.eu.localhost:$Q/p"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body alice-tls /p)" ] || fail "https port URL ${AS}s: $TRAIL $(body)"
ok "https port URL ${AS}s--main--ws--alice: $TRAIL(TLS from the agent to the app)"
CN_V=$(jar_cookie "$JA" "$CN_E")
req /dev/null "http://127.0.0.1:$Q/x" -H "Host: OWN--Main--WS--Alice.EU.localhost.:$Q" -H "Cookie: $CN_E=$CN_V"
want 307 "an upper-case app host with a trailing dot"
req /dev/null "http://127.0.0.1:$Q/x" -H "Host: OWN--Main--WS--Alice.EU.localhost.:$Q" -H "Cookie: $(setcookie coder_signed_app_token | cut -d';' -f1)"
want 200 "an upper-case app host with a trailing dot and its token"
[ "$(cat "$B")" = "$(app_body alice /x)" ] || fail "upper-case host: $(body)"
ok "an app host in upper case with a trailing dot (OWN--Main--WS--Alice.EU.localhost.) is the app own--main--ws--alice"
req "$JA" "$EU/@alice/ws/apps/own"
want 307 "path app base without the trailing slash"
[ "$(hdr Location)" = /@alice/ws/apps/own/ ] || fail "trailing slash: Location $(hdr Location)"
req "$JA" "$EU/@alice/ws/apps/own?k=v"
want 307 "path app base without the trailing slash, with a query"
[ "$(hdr Location)" = "/@alice/ws/apps/own/?k=v" ] || fail "trailing slash with a query: Location $(hdr Location)"
req "$JA" "$EU/@me/ws/apps/own/"
want 404 "@me"
grep -q 'full username' "$B" || fail "@me page: $(body)"
walk "$JA" "http://8--main--ws--alice.eu.localhost:$Q/"
[ "$ST" = 400 ] && grep -q 'port 8 is not permitted' "$B" || fail "port 8: $TRAIL $(body)"
req /dev/null "${APP}?$KEYP=eyJhbGciOiJBMjU2R0NNS1ciLCJlbmMiOiJBMjU2R0NNIn0.e30.AAAA.AAAA.AAAA"
want 400 "a forged app-connect key"
grep -q 'Could not decrypt API key' "$B" || fail "forged key page: $(body)"
req "$JA" "$URL/api/v2/applications/auth-redirect?redirect_uri=$(urlenc "$APP")"
want 303 "auth redirect for the eu path app"
GOODKEY=$(qparam "$(hdr Location)" $KEYP)
req /dev/null "${APP_P}?$KEYP=$GOODKEY"
want 400 "an app-connect key on the dashboard host"
ok "path base 307 to the slash (query kept), @me 404, port 8 400 ('port 8 is not permitted'), a forged key 400 ('Could not decrypt API key'), a real key on the dashboard host 400"

# ---- 5. open redirects at the primary's auth redirect (alice signed in) ----
bad_uris=("$URL/" "http://127.0.0.1:$P/@alice/ws/apps/own/" "http://evil.com/" "http://localhost:$Q@evil.com/"
    "http://evil.com@localhost:$Q/" "http://localhost:$Q\\@evil.com/" "http://evil.com\\localhost:$Q/"
    "//evil.com/" "//localhost:$Q/" "http://localhost%2e:$Q/" "http://own--main--ws--alice%2eeu.localhost:$Q/"
    "http://evil%2ecom/" "http://localhost:$((Q == 65535 ? 1 : Q + 1))/" "http://own--main--ws--alice.eu.localhost.evil.com:$Q/"
    "http://a.b.eu.localhost:$Q/" "javascript:alert(1)" "http:/localhost:$Q/" "ftp://localhost:$Q/" "http://[::1]:$Q/")
for u in "${bad_uris[@]}"; do
    req "$JA" "$URL/api/v2/applications/auth-redirect?redirect_uri=$(urlenc "$u")"
    [ "$ST" = 400 ] || fail "redirect_uri=$u: status $ST, want 400 (Location $(hdr Location))"
    grep -q 'Invalid redirect_uri' "$B" || fail "redirect_uri=$u: $(body)"
done
req "$JA" "$URL/api/v2/applications/auth-redirect"
want 400 "no redirect_uri"
grep -q 'Missing redirect_uri' "$B" || fail "no redirect_uri: $(body)"
for u in "$EU/@alice/ws/apps/pub/" "$SUB_P" "http://pub--main--ws--alice.eu.localhost:$Q/z"; do
    req "$JA" "$URL/api/v2/applications/auth-redirect?redirect_uri=$(urlenc "$u")"
    want 303 "redirect_uri=$u"
    case $(hdr Location) in "$u?$KEYP="*) ;; *) fail "redirect_uri=$u: Location $(hdr Location)" ;; esac
done
req "$JA" "$URL/api/v2/applications/auth-redirect?redirect_uri=$(urlenc "https://localhost:$Q/x")"
want 303 "an https redirect_uri to the http proxy"
case $(hdr Location) in "http://localhost:$Q/x?$KEYP="*) ;; *) fail "the scheme was not forced to http: $(hdr Location)" ;; esac
ok "auth redirect: ${#bad_uris[@]} hostile redirect_uri (dashboard host, other hosts, userinfo both ways, backslashes, //host, %2e, another port, lookalike suffix, nested label, javascript:, ftp:, IPv6) 400; none 400; eu path, primary and eu wildcard 303 with the key; https forced to http"

# ---- 3. share levels ----
JB=$T/bob.jar
login_form "$JB" bob@example.com "$PW_B" /
# access WHO JAR URL allow|deny|signin [APP-OWNER]
access() {
    local who=$1 jar=$2 url=$3 exp=$4 owner=${5:-alice}
    walk "$jar" "$url"
    case $exp in
    allow) [ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body "$owner" /)" ] || fail "$who -> $url: want the app, got $TRAIL$(body)" ;;
    deny) [ "$ST" = 404 ] && grep -q 'Application Not Found' "$B" && [ "$LOGIN" = 0 ] || fail "$who -> $url: want the 404 page, got $TRAIL$(body)" ;;
    signin)
        [ "$LOGIN" = 1 ] || fail "$who -> $url: want the sign-in walk, got $TRAIL$(body)"
        check_auth_redirect_loc "$FIRST_LOC" "$url"
        ;;
    esac
    MATRIX+="$who:${exp} "
}
for who in alice bob anon; do rm -f "$T/m-$who.jar"; done
cp "$JA" "$T/m-alice.jar"
cp "$JB" "$T/m-bob.jar"
for kind in eu-path eu-sub primary-sub; do
    MATRIX=
    for slug in own auth pub; do
        case $kind in
        eu-path) u=$EU/@alice/ws/apps/$slug/ ;;
        eu-sub) u=http://$slug--main--ws--alice.eu.localhost:$Q/ ;;
        primary-sub) u=http://$slug--main--ws--alice.primary.localhost:$P/ ;;
        esac
        access alice "$T/m-alice.jar" "$u" allow
        if [ $kind = eu-path ]; then # path apps are forced to share level owner without the dangerous flag
            access bob "$T/m-bob.jar" "$u" deny
            access anon "$T/m-anon.jar" "$u" signin
        else
            case $slug in own) access bob "$T/m-bob.jar" "$u" deny ;; *) access bob "$T/m-bob.jar" "$u" allow ;; esac
            case $slug in pub) access anon "$T/m-anon.jar" "$u" allow ;; *) access anon "$T/m-anon.jar" "$u" signin ;; esac
        fi
    done
    ok "share levels, $kind (own auth pub): $MATRIX"
done
access alice "$T/m-alice.jar" "http://own--main--bws--bob.eu.localhost:$Q/" allow bob
access alice "$T/m-alice.jar" "$EU/@bob/bws/apps/own/" deny bob
access bob "$T/m-bob.jar" "$EU/@bob/bws/apps/own/" allow bob
ok "alice (site owner) opens bob's owner-level subdomain app but not his path app (no --dangerous-allow-path-app-site-owner-access); bob opens his own"

# ---- a signed token opens only its own app, untampered ----
walk "$JA" "$APP"
SIGNED=$(jar_cookie "$JA" coder_signed_app_token /@alice/ws/apps/own/)
BOBSIGNED=$(jar_cookie "$T/m-bob.jar" coder_signed_app_token /@bob/bws/apps/own/)
[ -n "$SIGNED" ] && [ -n "$BOBSIGNED" ] || fail "no signed tokens in alice's and bob's jars"
tampered=${SIGNED%?}
[ "${SIGNED: -1}" = A ] && tampered+=B || tampered+=A
for t in "auth $SIGNED" "own $tampered" "own $BOBSIGNED" "own ${SIGNED%%.*}.e30.${SIGNED##*.}"; do
    req /dev/null "$EU/@alice/ws/apps/${t%% *}/" -H "Cookie: coder_signed_app_token=${t#* }"
    [ "$ST" = 303 ] || fail "a signed token that must not open /@alice/ws/apps/${t%% *}/: status $ST $(body)"
    check_auth_redirect_loc "$(hdr Location)" "$EU/@alice/ws/apps/${t%% *}/"
done
req /dev/null "$APP" -H "Cookie: coder_signed_app_token=$SIGNED"
want 200 "alice's signed token alone"
req /dev/null "$APP" -H "Cookie: coder_signed_app_token=$BOBSIGNED; coder_signed_app_token=$tampered; coder_signed_app_token=$BOBSIGNED; coder_signed_app_token=$SIGNED"
want 200 "the right signed token as the 4th cookie of that name"
req /dev/null "$APP" -H "Cookie: coder_signed_app_token=$BOBSIGNED; coder_signed_app_token=$tampered; coder_signed_app_token=$BOBSIGNED; coder_signed_app_token=$tampered; coder_signed_app_token=$SIGNED"
want 303 "the right signed token as the 5th cookie of that name"
req /dev/null "${APP}?coder_signed_app_token_23db1dde=$SIGNED"
want 303 "a signed token in the query (terminal only)"
ok "a signed token opens its own app only: for another app, tampered, bob's, a swapped payload, in the query, as the 5th coder_signed_app_token: 303 to sign in; alone or 4th it serves"

# ---- 4. hygiene: cookies, X-Forwarded-For, CORS ----
walk "$JA" "$APP"
SIGNED=$(jar_cookie "$JA" coder_signed_app_token /@alice/ws/apps/own/)
SESS=$(jar_cookie "$JA" coder_path_app_session_token)
[ -n "$SIGNED" ] && [ -n "$SESS" ] || fail "no signed token or app session in alice's jar"
CK="theme=dark; coder_session_token=x1; coder_signed_app_token=$SIGNED; coder_path_app_session_token=$SESS"
CK+="; oauth_state=x2; oauth_redirect=x3; coder_subdomain_app_session_token_0123=x4; keep_me=yes"
req /dev/null "${APP}echo-headers" -H "Cookie: $CK" -H 'X-Forwarded-For: 6.6.6.6' -H 'Origin: http://evil.example'
want 200 "echo-headers"
python3 - "$B" >"$T/hyg.out" <<'PY' || fail "hygiene: $(cat "$T/hyg.out")"
import json, sys
d = json.load(open(sys.argv[1]))
h = [(k.lower(), v) for k, v in d["headers"]]
cookies = [v for k, v in h if k == "cookie"]
xff = [v for k, v in h if k == "x-forwarded-for"]
bad = []
if cookies != ["theme=dark; keep_me=yes"]: bad.append("Cookie %r, want ['theme=dark; keep_me=yes']" % cookies)
if len(xff) != 1 or "127.0.0.1" not in xff[0] or "6.6.6.6" in xff[0]: bad.append("X-Forwarded-For %r" % xff)
if d["path"] != "/echo-headers": bad.append("path %r" % d["path"])
if any(k.startswith("coder-") for k, v in h): bad.append("Coder headers %r" % [k for k, v in h if k.startswith("coder-")])
print("; ".join(bad) if bad else "Cookie %r, X-Forwarded-For %r" % (cookies[0], xff[0]))
sys.exit(1 if bad else 0)
PY
for hn in Access-Control-Allow-Origin Access-Control-Allow-Credentials Access-Control-Allow-Methods Access-Control-Allow-Headers; do
    [ "$(hdr_count $hn)" = 0 ] || fail "the app's $hn reached the client: $(hdr $hn)"
done
[ "$(hdr X-App)" = alice ] || fail "the app's X-App header was lost"
[ "$(hdr Vary)" = Accept-Encoding ] || fail "Vary: '$(hdr Vary)', want 'Accept-Encoding' (Origin removed)"
ok "hygiene: the app got $(cat "$T/hyg.out") (coder_* cookies gone, a forged X-Forwarded-For replaced); its CORS headers and Vary: Origin removed, X-App and Vary: Accept-Encoding kept"

# ---- 6. 100 MiB down and up, a chunked upload, a WebSocket ----
walk "$JA" "$APP"
sum=$(curl -4 -s -m 120 -b "$JA" -w '%{stderr}%{http_code} %{size_download} %{time_total} %{time_starttransfer}' \
    "${APP}big" 2>"$T/down.w" | sha256sum | cut -d' ' -f1)
read -r st size secs ttfb <"$T/down.w"
[ "$st" = 200 ] && [ "$size" = $((100 << 20)) ] && [ "$sum" = "$BIGSUM" ] ||
    fail "100 MiB download: $(cat "$T/down.w"), sha $sum"
ok "100 MiB download through eu (path app): SHA-256 matches, ${secs}s ($(python3 -c "print('%.0f' % (100 / $secs))") MiB/s), first byte after $(python3 -c "print('%.1f' % ($ttfb * 1000))") ms"
walk "$JA" "$SUB_P"
sum=$(curl -4 -s -m 120 -b "$JA" -w '%{stderr}%{http_code} %{size_download} %{time_total}' "${SUB_P}big" 2>"$T/down2.w" |
    sha256sum | cut -d' ' -f1)
read -r st size secs <"$T/down2.w"
[ "$st" = 200 ] && [ "$size" = $((100 << 20)) ] && [ "$sum" = "$BIGSUM" ] ||
    fail "100 MiB download through the primary: $(cat "$T/down2.w"), sha $sum"
ok "100 MiB download through the primary (subdomain app): SHA-256 matches, ${secs}s ($(python3 -c "print('%.0f' % (100 / $secs))") MiB/s)"
walk "$JA" "$APP"
out=$(curl -4 -s -m 120 -b "$JA" -X POST -H 'Expect:' -T "$T/big" -w ' %{http_code} %{time_total}' "${APP}upload")
read -r sum size st secs <<<"$out"
[ "$st" = 200 ] && [ "$sum" = "$BIGSUM" ] && [ "$size" = $((100 << 20)) ] || fail "100 MiB upload: $out"
ok "100 MiB upload through eu (path app): the app's SHA-256 matches, ${secs}s ($(python3 -c "print('%.0f' % (100 / $secs))") MiB/s)"
walk "$JA" "$SUB_E"
head -c $((8 << 20)) "$T/big" >"$T/small"
out=$(curl -4 -s -m 60 -b "$JA" -X POST -H 'Expect:' -H 'Transfer-Encoding: chunked' -T "$T/small" -w ' %{http_code}' "${SUB_E}upload")
[ "$out" = "$(sha256sum <"$T/small" | cut -d' ' -f1) $((8 << 20)) 200" ] || fail "chunked upload: $out"
ok "8 MiB chunked upload through eu (subdomain app): SHA-256 matches"
walk "$JA" "$APP"
WSCK="coder_signed_app_token=$(jar_cookie "$JA" coder_signed_app_token /@alice/ws/apps/own/)"
"${CLIENT[@]}" ws "${APP}ws" "$WSCK" >"$T/ws.out" 2>&1 || fail "WebSocket through eu (path app): $(cat "$T/ws.out")"
ok "WebSocket through eu (path app): $(cat "$T/ws.out")"
walk "$JA" "$SUB_P"
"${CLIENT[@]}" ws "${SUB_P}ws" "coder_signed_app_token=$(jar_cookie "$JA" coder_signed_app_token / own--main--ws--alice.primary.localhost)" >"$T/ws2.out" 2>&1 ||
    fail "WebSocket through the primary (subdomain app): $(cat "$T/ws2.out")"
ok "WebSocket through the primary (subdomain app): $(cat "$T/ws2.out")"

# ---- 7. alice and bob at once through eu ----
walk "$JA" "$APP"
walk "$T/m-bob.jar" "$EU/@bob/bws/apps/own/"
cookies_of() { # cookies_of JAR BASE: the Cookie header a browser sends to a path app on eu
    echo "coder_path_app_session_token=$(jar_cookie "$1" coder_path_app_session_token); coder_signed_app_token=$(jar_cookie "$1" coder_signed_app_token "$2")"
}
spec=$(python3 -c 'import json,sys; a=sys.argv; print(json.dumps({"n": 200, "conns": 8, "users": [
    {"name": "alice", "url": a[1], "cookie": a[2], "app_path": "/"},
    {"name": "bob", "url": a[3], "cookie": a[4], "app_path": "/"}]}))' \
    "$APP" "$(cookies_of "$JA" /@alice/ws/apps/own/)" "$EU/@bob/bws/apps/own/" "$(cookies_of "$T/m-bob.jar" /@bob/bws/apps/own/)")
"${CLIENT[@]}" hammer "$spec" >"$T/hammer.out" 2>&1 || fail "alice and bob at once: $(cat "$T/hammer.out")"
ok "alice and bob at once through eu, 8 keep-alive connections each: $(head -1 "$T/hammer.out")"

# ---- one connection: hosts, users and the proxy's own API in turn; HEAD, chunked, 204, pipelining, streaming ----
walk "$JA" "$APP"
walk "$JA" "$SUB_E"
walk "$T/m-bob.jar" "$EU/@bob/bws/apps/own/"
walk "$T/m-bob.jar" "http://own--main--bws--bob.eu.localhost:$Q/"
AS=$(jar_cookie "$JA" coder_signed_app_token /@alice/ws/apps/own/)
BS=$(jar_cookie "$T/m-bob.jar" coder_signed_app_token /@bob/bws/apps/own/)
ASUB=$(jar_cookie "$JA" coder_signed_app_token / own--main--ws--alice.eu.localhost)
BSUB=$(jar_cookie "$T/m-bob.jar" coder_signed_app_token / own--main--bws--bob.eu.localhost)
[ -n "$AS" ] && [ -n "$BS" ] && [ -n "$ASUB" ] && [ -n "$BSUB" ] || fail "signed tokens missing for the connection checks"
ALL="coder_signed_app_token=$ASUB; coder_signed_app_token=$BSUB; coder_signed_app_token=$AS; coder_signed_app_token=$BS"
SA=http://own--main--ws--alice.eu.localhost:$Q SB=http://own--main--bws--bob.eu.localhost:$Q
timeout 30 "${CLIENT[@]}" conn "$EU" "$ALL" "GET $SA/a" "GET $SB/b" "GET /@alice/ws/apps/own/c" "GET /api/v2/buildinfo" \
    "GET $SB/d" "GET /healthz" "GET /@bob/bws/apps/own/e" "HEAD $SA/f" "GET /@alice/ws/apps/own/chunked" \
    "GET $SB/nobody" "GET $SA/g" >"$T/conn.out" 2>&1 || fail "one connection: $(cat "$T/conn.out")"
printf '%s\n' "200 30 $(app_body alice /a)" "200 28 $(app_body bob /b)" "200 30 $(app_body alice /c)" "200 API" \
    "200 28 $(app_body bob /d)" "200 API" "200 28 $(app_body bob /e)" "200 30 " "200 - one two three" "204 - " \
    "200 30 $(app_body alice /g)" "connections opened: 1" >"$T/conn.want"
sed -e '4s/^200 [0-9]* {.*"version".*/200 API/' -e '6s/^200 [0-9]* .*/200 API/' "$T/conn.out" |
    diff "$T/conn.want" - >"$T/conn.diff" || fail "one keep-alive connection through eu: $(cat "$T/conn.diff")"
timeout 30 "${CLIENT[@]}" pipeline "$EU" "$ALL" /@alice/ws/apps/own/1 /@bob/bws/apps/own/2 /@alice/ws/apps/own/chunked \
    /@bob/bws/apps/own/nobody /@alice/ws/apps/own/5 >"$T/pipe.out" 2>&1 || fail "pipelining: $(cat "$T/pipe.out")"
printf '%s\n' "200 $(app_body alice /1)" "200 $(app_body bob /2)" "200 one two three" "204 " "200 $(app_body alice /5)" |
    diff - "$T/pipe.out" >"$T/pipe.diff" || fail "pipelined requests through eu: $(cat "$T/pipe.diff")"
out=$(curl -4 -s -m 20 -H "Cookie: coder_signed_app_token=$AS" -w ' %{time_starttransfer} %{time_total}' "${APP}drip" | tr '\n' ' ')
read -r -a f <<<"$out"
[ "${f[*]:0:10}" = "tick 0 tick 1 tick 2 tick 3 tick 4" ] || fail "drip: $out"
python3 -c "import sys; sys.exit(0 if ${f[10]} < 0.25 and ${f[11]} >= 1.1 else 1)" ||
    fail "the streamed answer was held back: first byte after ${f[10]}s, all after ${f[11]}s (the app sends a line every 0.3 s)"
ok "one keep-alive connection through eu: alice's and bob's path and subdomain apps (Host switching), the proxy's /api/v2/buildinfo and /healthz in turn, HEAD, chunked, 204 — each answer right; 5 pipelined requests answered in order; a streamed answer is not held back (first line after $(ms "${f[10]}") ms, the last after ${f[11]}s)"
DEAD=$(free_port)
walk "$JA" "http://$DEAD--main--ws--alice.eu.localhost:$Q/"
[ "$ST" = 502 ] && [[ $(hdr Content-Type) == text/html* ]] && grep -q '<title>Application unavailable</title>' "$B" &&
    grep -q '<p>The agent could not connect: [^<]' "$B" && grep -q "href=\"$URL\"" "$B" ||
    fail "an app port nobody listens on: $TRAIL $(hdr Content-Type) $(body)"
ok "an app port nobody listens on: $TRAIL($(hdr Content-Type): the HTML page, \"$(grep -o '<p>The agent[^<]*' "$B" | cut -c4-)\", a link to the dashboard)"
# An app URL with a path and a query: its base without a query gets 307 to the app's query; the path under
# the app follows the app URL's path.
SUBAPP=$EU/@alice/ws/apps/sub/
walk "$JA" "$SUBAPP"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body alice '/sub/?folder=/w')" ] && [[ $TRAIL == *"307 307 200 " ]] ||
    fail "the app with url .../sub?folder=/w at its base: $TRAIL $(body)"
req "$JA" "$SUBAPP"
[ "$ST" = 307 ] && [ "$(hdr Location)" = "/@alice/ws/apps/sub/?folder=/w" ] ||
    fail "the default-query redirect: $ST $(hdr Location)"
req "$JA" "${SUBAPP}a/b?c=1"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body alice '/sub/a/b?c=1')" ] || fail "a path under /sub: $ST $(body)"
req "$JA" "${SUBAPP}?x=1"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body alice '/sub/?x=1')" ] || fail "the base with a query: $ST $(body)"
ok "an app URL with a path and a query (http://127.0.0.1:A/sub?folder=/w): its base -> 307 to ?folder=/w -> the app gets /sub/?folder=/w; /a/b?c=1 -> /sub/a/b?c=1; the base with a query is not redirected"

# ---- the primary hung (SIGSTOP): the fast path goes on, a request that needs the primary is bounded ----
walk "$JA" "$APP"
[ "$ST" = 200 ] || fail "before stopping the primary: $TRAIL"
SESS=$(jar_cookie "$JA" coder_path_app_session_token)
AS=$(jar_cookie "$JA" coder_signed_app_token /@alice/ws/apps/own/)
req /dev/null "$APP" -H "Cookie: coder_path_app_session_token=$SESS"
want 307 "the app session cookie alone (a token is re-issued)"
NEWTOK=$(setcookie coder_signed_app_token | cut -d';' -f1)
req /dev/null "$APP" -H "Cookie: $NEWTOK"
want 200 "the re-issued token"
head -c 5000 /dev/urandom >"$T/post5k"
printf 'localhost\tFALSE\t/\tFALSE\t0\tcoder_path_app_session_token\t%s\n' "$SESS" >"$T/sess-only.jar"
CJ=(-b "$T/sess-only.jar" -c "$T/sess-only.jar")
out=$(curl -4 -s -m 20 "${CJ[@]}" -X POST -H 'Expect:' --data-binary @"$T/post5k" -o /dev/null -w '%{http_code} %{num_connects} ' \
    "${APP}upload" --next -s -m 20 "${CJ[@]}" -X POST -H 'Expect:' --data-binary @"$T/post5k" \
    -w ' %{http_code} %{num_connects} ' "${APP}upload" --next -s -m 20 "${CJ[@]}" -w ' %{http_code} %{num_connects}' "${APP}after")
[ "$out" = "307 1 $(sha256sum <"$T/post5k" | cut -d' ' -f1) 5000 200 0 $(app_body alice /after) 200 0" ] ||
    fail "a POST with the app session cookie alone, then with the token, then a GET on the same connection: '$out'"
# A POST over the 1 MiB an application handler collects, without a token: the slow path reads its head only
# (the body is read and dropped, not refused with 413), answers 307 with the token, and the client's repeat
# carries the body to the app on the fast path.
head -c $((4 << 20)) /dev/urandom >"$T/post4m"
printf 'localhost\tFALSE\t/\tFALSE\t0\tcoder_path_app_session_token\t%s\n' "$SESS" >"$T/sess-4m.jar"
out=$(curl -4 -s -m 30 -L -b "$T/sess-4m.jar" -c "$T/sess-4m.jar" -X POST -H 'Expect:' --data-binary @"$T/post4m" \
    -w ' %{http_code} %{num_redirects}' "${APP}upload")
[ "$out" = "$(sha256sum <"$T/post4m" | cut -d' ' -f1) $((4 << 20)) 200 1" ] ||
    fail "a 4 MiB POST without a token (307, then repeated with the body): '$out'"
pids=()
for i in $(seq 20); do
    curl -4 -s -m 20 -o /dev/null -w '%{http_code}\n' -H "Cookie: coder_path_app_session_token=$SESS" "$APP" >"$T/slow20.$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
cat "$T"/slow20.* >"$T/slow20.out"
[ "$(grep -c '^307$' "$T/slow20.out")" = 20 ] || fail "20 concurrent slow-path requests: $(sort "$T/slow20.out" | uniq -c)"
# ---- keys the proxy has not fetched: the primary signs with a new key (a row added to its database) ----
refetches() { grep -c 'fetching the crypto keys again' "$T/proxy-eu.log"; }
R0=$(refetches)
seqs=$(python3 "$ROOT/tests/lib/add_crypto_key.py" "$T/data" workspace_apps_token workspace_apps_api_key) ||
    fail "adding crypto keys: $seqs"
grep -v -e '^localhost' -e '^#HttpOnly_localhost' "$JA" >"$T/rekey.jar" # alice at the primary, nothing of eu's
walk "$T/rekey.jar" "${APP}rekeyed"
[ "$ST" = 200 ] && [ "$(cat "$B")" = "$(app_body alice /rekeyed)" ] || fail "the sign-in with keys eu has not fetched: $TRAIL $(body)"
[ "$TRAIL" = "303 303 303 307 200 " ] || fail "the sign-in walk with new keys: $TRAIL"
R1=$(refetches)
[ $((R1 - R0)) = 1 ] || fail "keys $seqs: $((R1 - R0)) refetches for one sign-in (app-connect key and token), want 1"
sleep 1.1 # refetches are at most one a second
seqs=$(python3 "$ROOT/tests/lib/add_crypto_key.py" "$T/data" workspace_apps_token) || fail "adding a key: $seqs"
pids=()
for i in $(seq 10); do
    curl -4 -s -m 20 -o /dev/null -w '%{http_code}\n' -H "Cookie: coder_path_app_session_token=$SESS" "$APP" >"$T/rekey10.$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
cat "$T"/rekey10.* >"$T/rekey10.out"
[ "$(grep -c '^307$' "$T/rekey10.out")" = 10 ] || fail "10 sign-ins with a token key eu has not fetched: $(sort "$T/rekey10.out" | uniq -c)"
R2=$(refetches)
[ $((R2 - R1)) = 1 ] || fail "10 concurrent sign-ins with the new token key $seqs: $((R2 - R1)) refetches, want 1"
ok "the primary signing with keys eu has not fetched: a sign-in walk (the app-connect key, then the token) is served after exactly one refetch of the crypto keys; 10 concurrent sign-ins with another new key: all 307, one refetch"

kill -STOP $PRIMARY_PID
# 20 sign-ins at once against the hung primary: each waits for its own 5 s issue timeout, in parallel (the
# control thread blocked on each in turn would take 20 x 5 s).
T0=$(date +%s.%N)
pids=()
for i in $(seq 20); do
    curl -4 -s -m 30 -o "$T/hung.$i.body" -w '%{http_code} %{time_total}\n' -H "Cookie: coder_path_app_session_token=$SESS" \
        "$APP" >"$T/hung.$i.out" 2>&1 &
    pids+=($!)
done
sleep 0.3
for i in $(seq 20); do curl -4 -s -m 5 -o /dev/null -w '%{http_code} %{time_total}\n' -H "Cookie: coder_signed_app_token=$AS" "$APP"; done >"$T/hung-fast.out"
for i in $(seq 5); do curl -4 -s -m 5 -o /dev/null -w '%{http_code} %{time_total}\n' "$EU/healthz"; done >"$T/hung-healthz.out"
for p in "${pids[@]}"; do wait "$p"; done
WALL=$(python3 -c "import time; print('%.2f' % (time.time() - $T0))")
kill -CONT $PRIMARY_PID
cat "$T"/hung.[0-9]*.out >"$T/hung.out"
[ "$(grep -c '^200 0\.' "$T/hung-fast.out")" = 20 ] || fail "the fast path with the primary hung: $(sort "$T/hung-fast.out" | uniq -c | head -3)"
[ "$(grep -c '^200 0\.' "$T/hung-healthz.out")" = 5 ] || fail "/healthz with the primary hung: $(sort "$T/hung-healthz.out" | uniq -c | head -3)"
[ "$(grep -c '^502 ' "$T/hung.out")" = 20 ] && grep -q 'primary is unreachable' "$T/hung.1.body" ||
    fail "20 sign-ins that need the hung primary: $(cut -d' ' -f1 "$T/hung.out" | sort | uniq -c) $(head -c 200 "$T/hung.1.body")"
secs=$(awk '{ if ($2 > m) m = $2 } END { print m }' "$T/hung.out")
python3 -c "import sys; sys.exit(0 if $WALL < 8 else 1)" || fail "20 sign-ins against the hung primary took ${WALL}s in all (slowest ${secs}s)"
grep -q 'the control thread spent' "$T/proxy-eu.log" && fail "the proxy's control thread was held: $(grep 'the control thread spent' "$T/proxy-eu.log" | head -2)"
ok "the app session cookie alone gets a new token (307) that serves; a POST of 5000 bytes without a token 307, again with it 200 (SHA-256 right), then a GET, all on one connection; a 4 MiB POST without a token: 307, repeated with its body, SHA-256 right at the app; 20 at once without a token all 307; primary hung (SIGSTOP): 20 signed-token requests (max $(awk '{print $2 * 1000}' "$T/hung-fast.out" | sort -n | tail -1) ms) and /healthz served meanwhile, 20 concurrent sign-ins that need the primary all get 502 'primary is unreachable' within ${WALL}s in all (slowest ${secs}s: the 5 s issue timeout each, in parallel), the control thread never held"

# ---- 8. the primary stopped, then restarted with --dangerous-allow-path-app-sharing ----
walk "$JA" "$APP"
[ "$ST" = 200 ] || fail "before stopping the primary: $TRAIL"
kill -TERM $PRIMARY_PID
for i in $(seq 100); do kill -0 $PRIMARY_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $PRIMARY_PID 2>/dev/null && fail "the primary did not stop"
req "$JA" "${APP}while-down"
want 200 "a live signed token with the primary down"
[ "$(cat "$B")" = "$(app_body alice /while-down)" ] || fail "primary down, live token: $(body)"
req /dev/null "$APP" -H "Cookie: coder_path_app_session_token=$SESS"
want 502 "no signed token with the primary down"
grep -q 'primary is unreachable' "$B" || fail "primary down page: $(body)"
python3 -c "import sys; sys.exit(0 if $TT < 3 else 1)" || fail "the 'primary is unreachable' page took ${TT}s"
T_DOWN=$TT
req /dev/null "http://pub--main--ws--alice.eu.localhost:$Q/"
want 502 "anonymous public app with the primary down"
ok "primary stopped: a live signed token is still served through eu; a request that needs the primary gets 502 'primary is unreachable' in $(ms $T_DOWN) ms (a public app too)"
start_primary primary2 --dangerous-allow-path-app-sharing
wait_agents 40
# Until eu's next heartbeat (every second while the primary is down) it may still answer sign-ins with
# the "primary is unreachable" page: wait until a sign-in gets the primary's answer again.
for ((i = 0; i < 50; i++)); do
    req /dev/null "$EU/@alice/ws/apps/own/"
    [ "$ST" != 502 ] && break
    sleep 0.1
done
[ "$ST" = 303 ] || fail "eu does not reach the restarted primary: $ST $(body)"
MATRIX=
for slug in own auth pub; do
    u=$EU/@alice/ws/apps/$slug/
    access alice "$T/m-alice.jar" "$u" allow
    case $slug in own) access bob "$T/m-bob.jar" "$u" deny ;; *) access bob "$T/m-bob.jar" "$u" allow ;; esac
    case $slug in pub) access anon "$T/m-anon.jar" "$u" allow ;; *) access anon "$T/m-anon.jar" "$u" signin ;; esac
done
ok "primary restarted with --dangerous-allow-path-app-sharing, share levels, eu-path (own auth pub): $MATRIX"
access alice "$T/m-alice.jar" "$EU/@bob/bws/apps/own/" deny bob
ok "a site owner still cannot open another user's path app (that takes --dangerous-allow-path-app-site-owner-access)"

# ---- an agent gone: its app is not reached any other way ----
walk "$T/m-bob.jar" "$EU/@bob/bws/apps/own/"
[ "$ST" = 200 ] || fail "bob's app before stopping his agent: $TRAIL $(body)"
kill -TERM $BOB_AGENT_PID
for i in $(seq 100); do kill -0 $BOB_AGENT_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $BOB_AGENT_PID 2>/dev/null && fail "bob's agent did not stop"
for ((i = 0; i < 40; i++)); do
    req "$T/m-bob.jar" "$EU/@bob/bws/apps/own/"
    [ "$ST" = 502 ] && break
    [ "$ST" = 200 ] || fail "bob's app with his agent stopped: $ST $(body)"
    sleep 0.25
done
[ "$ST" = 502 ] && grep -q 'Agent offline' "$B" || fail "bob's app with his agent stopped: $ST $(body)"
walk "$T/m-bob.jar" "http://own--main--bws--bob.eu.localhost:$Q/"
[ "$ST" = 502 ] && grep -q 'Agent offline' "$B" || fail "bob's subdomain app with his agent stopped: $TRAIL $(body)"
ok "bob's agent stopped: his app answers 502 'Agent offline' (signed token or not), though the app server still runs on this machine"
