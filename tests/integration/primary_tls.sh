#!/usr/bin/env bash
# The primary over HTTPS only (--tls-enable, no plaintext listener): buildinfo with the test CA, the CLI
# against it (CURL_CA_BUNDLE), the session cookie marked Secure, and a clear error without the CA.
set -u
. "$(dirname "$0")/../lib/common.sh" # $T, sanitizer reports in $T/*.log fail the test
: "${OUTPOST_BIN:?}"
root=${OUTPOST_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v curl >/dev/null || { echo "curl missing"; exit 77; }
command -v openssl >/dev/null || { echo "openssl missing"; exit 77; }
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
SERVER_PID=
bash "$root/tests/lib/certs.sh" "$T/pki" || exit 1
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
URL=https://127.0.0.1:$PORT
export CODER_CONFIG_DIR=$T/cfg
unset CODER_URL CODER_SESSION_TOKEN CURL_CA_BUNDLE SSL_CERT_FILE
"$OUTPOST_BIN" server --http-address "" --tls-enable --tls-address "127.0.0.1:$PORT" \
    --tls-cert-file "$T/pki/server.pem" --tls-key-file "$T/pki/server.key" --data-dir "$T/data" \
    >"$T/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 1 100); do curl -fsS --cacert "$T/pki/ca.pem" "$URL/api/v2/buildinfo" >/dev/null 2>&1 && break; sleep 0.1; done
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
body=$(curl -s --cacert "$T/pki/ca.pem" "$URL/api/v2/buildinfo")
echo "$body" | grep -q "\"dashboard_url\":\"$URL\"" && ok "HTTPS buildinfo; the access URL defaults to https://<tls-address>" \
    || bad "buildinfo: $body $(tail -5 "$T/server.log")"
"$OUTPOST_BIN" login "$URL" --first-user-username admin --first-user-email a@example.com \
    --first-user-password 'Tls-pass-123' >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 69 ] && grep -q "cannot reach the primary" "$T/err" && ok "without the CA the CLI names the TLS failure (69)" \
    || bad "no CA: rc=$rc $(cat "$T/err")"
export CURL_CA_BUNDLE=$T/pki/ca.pem
out=$("$OUTPOST_BIN" login "$URL" --first-user-username admin --first-user-email a@example.com \
    --first-user-password 'Tls-pass-123' 2>&1) && ok "login over HTTPS" || bad "login: $out"
hdr=$(curl -s -D - -o /dev/null --cacert "$T/pki/ca.pem" -X POST "$URL/api/v2/users/login" \
    -d '{"email":"a@example.com","password":"Tls-pass-123"}' | tr -d '\r' | grep -i '^set-cookie:')
echo "$hdr" | grep -q '; Secure' && ok "session cookie is Secure over TLS" || bad "cookie: $hdr"
"$OUTPOST_BIN" wsproxy create --name eu >/dev/null && "$OUTPOST_BIN" wsproxy ls | grep -Eq '^eu +unregistered$' \
    && ok "wsproxy create + ls over HTTPS" || bad "create/ls over https"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/pki/ca.pem" --tls-max 1.1 "$URL/api/v2/buildinfo")
[ "$code" = 000 ] && ok "TLS 1.1 refused" || bad "TLS 1.1 got $code"
echo "$fails failures"
[ $fails -eq 0 ]
