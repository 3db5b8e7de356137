#!/usr/bin/env bash
# tests/integration/wsproxy_config.sh — `outpost wsproxy server` configuration from the outside:
#   --help matches the golden file (every option with its env name); --check accepts Coder's example
#   verbatim and catches each kind of bad value with exit 78 naming the option; that example as
#   environment variables (free ports instead of 80/443) starts a TLS proxy that `curl --cacert` reaches on
#   /healthz, with the HTTP->HTTPS redirect and HSTS.
#   docs/wsproxy-server.md is the --docs-markdown output of the same table.
# UPDATE_GOLDEN=1 rewrites the golden file.
. "$(dirname "$0")/../lib/common.sh"
GOLDEN=$ROOT/tests/integration/golden/wsproxy_server_help.golden
certs

# --- --help golden ---
"$OUTPOST" wsproxy server --help >"$T/help.out" 2>&1 || fail "--help exit code"
if [ -n "${UPDATE_GOLDEN:-}" ]; then
    mkdir -p "$(dirname "$GOLDEN")" && cp "$T/help.out" "$GOLDEN"
fi
diff -u "$GOLDEN" "$T/help.out" || fail "--help differs from $GOLDEN (UPDATE_GOLDEN=1 to accept)"
for env in CODER_PROXY_SESSION_TOKEN CODER_PRIMARY_ACCESS_URL CODER_HTTP_ADDRESS CODER_TLS_ADDRESS CODER_TLS_ENABLE \
    CODER_TLS_CERT_FILE CODER_TLS_KEY_FILE CODER_TLS_CLIENT_AUTH CODER_ACCESS_URL CODER_WILDCARD_ACCESS_URL \
    CODER_PROMETHEUS_ENABLE CODER_PROMETHEUS_ADDRESS CODER_CONFIG_PATH; do
    grep -q "\$$env\$" "$T/help.out" || fail "--help does not list $env"
done
ok "--help matches the golden file and lists every option with its env name"
"$OUTPOST" wsproxy server --docs-markdown >"$T/docs.md" || fail "--docs-markdown"
[ -n "${UPDATE_GOLDEN:-}" ] && cp "$T/docs.md" "$ROOT/docs/wsproxy-server.md"
diff -u "$ROOT/docs/wsproxy-server.md" "$T/docs.md" || fail "docs/wsproxy-server.md is stale (UPDATE_GOLDEN=1 to regenerate)"
ok "docs/wsproxy-server.md is generated from the same option table"

# --- Coder's example configuration (docs/coder-compat.md), verbatim, passes --check ---
TOKEN="00000000-1111-4222-8333-444444444444:$(printf 'a%.0s' {1..64})"
example_env() {
    env CODER_HTTP_ADDRESS=0.0.0.0:80 CODER_TLS_ADDRESS=0.0.0.0:443 \
        CODER_PRIMARY_ACCESS_URL=https://coder.example.com CODER_PROXY_SESSION_TOKEN=$TOKEN \
        CODER_ACCESS_URL=https://eu.example.com CODER_WILDCARD_ACCESS_URL='*.eu.example.com' \
        CODER_TLS_ENABLE=true CODER_TLS_CLIENT_AUTH=none \
        CODER_TLS_CERT_FILE="$T/certs/server.pem" CODER_TLS_KEY_FILE="$T/certs/server.key" "$@"
}
example_env "$OUTPOST" wsproxy server --check >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "example configuration --check"; }
ok "Coder's example configuration passes --check"
cat >"$T/example.env" <<EOF
CODER_HTTP_ADDRESS=0.0.0.0:80
CODER_TLS_ADDRESS=0.0.0.0:443
CODER_PRIMARY_ACCESS_URL=https://coder.example.com
CODER_PROXY_SESSION_TOKEN=$TOKEN
CODER_ACCESS_URL=https://eu.example.com
CODER_WILDCARD_ACCESS_URL=*.eu.example.com
CODER_TLS_ENABLE=true
CODER_TLS_CLIENT_AUTH=none
CODER_TLS_CERT_FILE="$T/certs/server.pem"
CODER_TLS_KEY_FILE="$T/certs/server.key"
EOF
env -u CODER_PROXY_SESSION_TOKEN "$OUTPOST" wsproxy server --env-file "$T/example.env" --check >"$T/check2.out" 2>&1 ||
    { cat "$T/check2.out"; fail "example configuration as an EnvironmentFile"; }
"$OUTPOST" wsproxy server --env-file "$T/example.env" --write-config >"$T/example.yaml" 2>&1 || fail "--write-config"
grep -q 'wildcardAccessURL: "\*.eu.example.com"' "$T/example.yaml" || fail "write-config content"
grep -q "$TOKEN" "$T/example.yaml" && fail "write-config wrote the token"
CODER_PROXY_SESSION_TOKEN=$TOKEN "$OUTPOST" wsproxy server --config "$T/example.yaml" --check >"$T/check3.out" 2>&1 ||
    { cat "$T/check3.out"; fail "--write-config output does not load back with --config"; }
ok "as an EnvironmentFile too; --write-config writes YAML (no token) that --config loads back"

# --- --check catches each kind of bad value (exit 78, the option named) ---
bad() { # bad NEEDLE ARGS...
    local needle=$1
    shift
    example_env "$OUTPOST" wsproxy server --check "$@" >"$T/bad.out" 2>&1
    local rc=$?
    [ $rc = 78 ] || { cat "$T/bad.out"; fail "--check $*: exit $rc, want 78"; }
    grep -q -- "$needle" "$T/bad.out" || { cat "$T/bad.out"; fail "--check $*: message does not name $needle"; }
}
bad primary-access-url --primary-access-url ftp://coder.example.com
bad access-url --access-url eu.example.com
bad http-address --http-address 0.0.0.0
bad tls-address --tls-address 300.0.0.1:443
bad tls-enable --tls-enable=perhaps
bad tls-cert-file --tls-cert-file /nonexistent/cert.pem
bad tls-key-file --tls-key-file "$T/certs/mismatch.key"
bad tls-cert-file --tls-key-file "$T/certs/server.key" --tls-key-file "$T/certs/server.key"
bad tls-client-auth --tls-client-auth require-and-verify
bad tls-client-auth --tls-client-auth whatever
bad tls-min-version --tls-min-version tls11
bad wildcard-access-url --wildcard-access-url 'eu.example.com'
bad wildcard-access-url --wildcard-access-url 'https://*.eu.example.com'
bad wildcard-access-url --wildcard-access-url '*.*.example.com'
bad strict-transport-security --strict-transport-security 1y
bad drain-timeout --drain-timeout forever
bad proxy-session-token --proxy-session-token nope
bad "Missing values for the required flags: primary-access-url" --primary-access-url ''
bad "unknown key" --config <(printf 'networking:\n  httpAdress: 1\n')
echo 'networking: {' >"$T/broken.yaml"
bad YAML --config "$T/broken.yaml"
ok "--check: bad URL, address, bool, int, duration, file, key, enum, wildcard, token, YAML all exit 78 naming the option"

# --- the example as env vars, on free ports, with a primary: TLS reachable with curl --cacert ---
TOKEN_EXAMPLE=$TOKEN
primary_with_proxy eu
REAL=$TOKEN TOKEN=$TOKEN_EXAMPLE
H=$(free_port) S=$(free_port)
TOKEN=$REAL bg proxy env CODER_HTTP_ADDRESS=127.0.0.1:$H CODER_TLS_ADDRESS=127.0.0.1:$S \
    CODER_PRIMARY_ACCESS_URL=http://127.0.0.1:$P CODER_PROXY_SESSION_TOKEN=$REAL \
    CODER_ACCESS_URL=https://localhost:$S CODER_WILDCARD_ACCESS_URL='*.eu.example.com' \
    CODER_TLS_ENABLE=true CODER_TLS_CLIENT_AUTH=none CODER_STRICT_TRANSPORT_SECURITY=3600 \
    CODER_TLS_CERT_FILE="$T/certs/server.pem" CODER_TLS_KEY_FILE="$T/certs/server.key" \
    "$OUTPOST" wsproxy server
wait_port $S
out=$(curl -sS --cacert "$T/certs/ca.pem" -D "$T/h" https://localhost:$S/healthz) || fail "curl --cacert /healthz"
[ "$out" = OK ] || fail "healthz over TLS: $out"
grep -qi '^Strict-Transport-Security: max-age=3600' "$T/h" || fail "HSTS header missing"
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost:$H/healthz)
[ "$code" = "308 https://localhost:$S/healthz" ] || fail "HTTP->HTTPS redirect: $code"
loc=$(curl -s -o /dev/null -D - -H "Host: [::1]:$H" http://127.0.0.1:$H/healthz | tr -d '\r' | sed -n 's/^Location: //p')
[ "$loc" = "https://[::1]:$S/healthz" ] || fail "redirect of an IPv6 Host: Location \"$loc\""
long=/$(printf 'a%.0s' $(seq 1 4096))
curl -s -o /dev/null -D "$T/long.h" "http://localhost:$H$long"
head -n 1 "$T/long.h" | grep -q '^HTTP/1.1 414' || fail "4 KiB target: $(head -n 1 "$T/long.h") (want 414)"
! grep -qi '^Location' "$T/long.h" || fail "4 KiB target: a Location header was sent"
grep -q '^X-Coder-Build-Version: .*'$'\r''$' "$T/long.h" || fail "4 KiB target: the next header is damaged"
ok "example configuration as env vars: TLS proxy answers /healthz to curl --cacert; HTTP redirects to HTTPS (IPv6 Host too; a 4 KiB target gets 414, never a cut Location); HSTS"
grep -q 'registered with the primary' "$T/proxy.log" || fail "TLS proxy did not register"
ok "the TLS proxy registered with the primary (access URL https://localhost:$S)"
