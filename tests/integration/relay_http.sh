#!/usr/bin/env bash
# outpost relay in http mode, plaintext and TLS, with curl and raw sockets against a real upstream:
# forwarding, keep-alive, bodies (length and chunked), X-Forwarded-*, hop-by-hop removal, every
# smuggling shape refused before anything reaches the upstream, limits, pipelining, WebSocket upgrade,
# upstream dying mid-response, upstream down, graceful drain on SIGTERM.
. "$(dirname "$0")/../lib/common.sh"
certs
UP=$(free_port); P=$(free_port); PT=$(free_port); DEAD=$(free_port); PD=$(free_port)
bg upstream "$SERVERS" http $UP
bg relay "$OUTPOST" relay --listen 127.0.0.1:$P --listen 127.0.0.1:$PT --upstream 127.0.0.1:$UP --mode http --log-level debug
RELAY=$LAST_PID
for p in $UP $P; do wait_port $p; done
raw() { python3 "$ROOT/tests/lib/rawhttp.py" "$@"; }
status_of() { head -n 1 | tr -d '\r' | cut -d' ' -f2; }

# Basic GET through the proxy, with X-Forwarded-* set and hop-by-hop headers gone.
out=$(curl -sS --fail -H 'Connection: keep-alive, X-Secret' -H 'X-Secret: 1' -H 'Keep-Alive: 5' \
    -H 'X-Forwarded-For: 6.6.6.6' -H 'Proxy-Authorization: x' http://127.0.0.1:$P/hello?x=1) || fail "GET"
python3 - "$out" <<'PY' || fail "forwarded head: $out"
import json, sys
r = json.loads(sys.argv[1]); h = {k.lower(): v for k, v in r["headers"]}
assert r["path"] == "/hello?x=1", r
assert h["x-forwarded-for"] == "127.0.0.1", h
assert h["x-forwarded-proto"] == "http" and h["x-forwarded-host"].startswith("127.0.0.1:"), h
for gone in ("x-secret", "keep-alive", "proxy-authorization", "connection"):
    assert gone not in h, (gone, h)
PY
ok "GET forwarded with X-Forwarded-For/-Proto/-Host; hop-by-hop and Connection-listed headers dropped"

# Keep-alive: three requests on one client connection.
n=$(curl -sS -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}\n' http://127.0.0.1:$P/a http://127.0.0.1:$P/b \
    http://127.0.0.1:$P/c | paste -sd' ')
[ "$n" = "1 0 0" ] || fail "keep-alive: connects per request '$n'"
ok "keep-alive: 3 requests over 1 connection"

# Bodies: Content-Length and chunked uploads arrive intact; a large download too.
head -c 3000000 /dev/urandom >"$T/up.bin"
want=$(sha256sum <"$T/up.bin" | cut -d' ' -f1)
for mode in length chunked; do
    hdr=(); [ $mode = chunked ] && hdr=(-H 'Transfer-Encoding: chunked')
    got=$(curl -sS "${hdr[@]}" --data-binary @"$T/up.bin" http://127.0.0.1:$P/upload | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["body_sha256"])') || fail "upload $mode"
    [ "$got" = "$want" ] || fail "upload $mode: sha mismatch"
done
sz=$(curl -sS -o "$T/dl" -w '%{size_download}' http://127.0.0.1:$P/bytes/5000000)
[ "$sz" = 5000000 ] && cmp -s "$T/dl" <(python3 -c 'import sys; sys.stdout.buffer.write((b"0123456789abcdef"*312500)[:5000000])') ||
    fail "download: $sz bytes"
ok "3 MB uploads (Content-Length and chunked) and a 5 MB download intact"

# HTTPS listener to the same upstream (TLS terminated, plaintext upstream).
PS=$(free_port)
bg relay-https "$OUTPOST" relay --listen 127.0.0.1:$PS --upstream 127.0.0.1:$UP --mode http \
    --tls-cert-file "$T/certs/server.pem" --tls-key-file "$T/certs/server.key"
wait_port $PS
proto=$(curl -sS --cacert "$T/certs/ca.pem" https://localhost:$PS/t | python3 -c \
    'import json,sys; print(dict((k.lower(),v) for k,v in json.load(sys.stdin)["headers"])["x-forwarded-proto"])')
[ "$proto" = https ] || fail "https: X-Forwarded-Proto '$proto'"
n=$(curl -sS --cacert "$T/certs/ca.pem" -o /dev/null -o /dev/null -w '%{num_connects} %{http_version}\n' \
    https://localhost:$PS/a https://localhost:$PS/b | paste -sd' ')
[ "$n" = "1 1.1 0 1.1" ] || fail "https keep-alive/ALPN: '$n'"
ok "HTTPS: TLS terminated, X-Forwarded-Proto https, keep-alive over TLS, ALPN http/1.1"
# A head, a 200 KB body and a pipelined request in one write over TLS (many records decrypted from a
# single receive): every byte lands in the right place.
python3 - "$PS" "$T/certs/ca.pem" <<'PY' || fail "head+body+pipelined request in one TLS write"
import hashlib, json, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
body = bytes(range(256)) * 800
s = ssl.create_default_context(cafile=ca).wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.sendall(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body +
          b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
parts = data.split(b"HTTP/1.1 200 OK")
assert len(parts) == 3, data[:500]
first = json.loads(parts[1].split(b"\r\n\r\n", 1)[1])
assert first["body_sha256"] == hashlib.sha256(body).hexdigest() and first["path"] == "/big", first
assert b'"/next"' in parts[2]
PY
ok "head + 200 KB body + pipelined request in one TLS write: body intact, both answered"
# Pipelined bursts far over one head buffer (1,100 and 5,000 GETs sent at once), plaintext and TLS: the
# relay stops reading the client while requests wait, so every one is answered 200, in order. One thread
# sends and receives (an SSL socket must not be written and read from two threads at once).
burst() { # burst PORT N [CA]
    python3 - "$@" <<'PY'
import select, socket, ssl, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
if len(sys.argv) > 3:
    s = ssl.create_default_context(cafile=sys.argv[3]).wrap_socket(s, server_hostname="localhost")
req = b"".join(b"GET /p%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(n - 1))
req += b"GET /p%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % (n - 1)
s.setblocking(False)
out, data, deadline = memoryview(req), bytearray(), time.time() + 60
want = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)
while True:
    assert time.time() < deadline, "stalled after %d bytes of responses" % len(data)
    pending = isinstance(s, ssl.SSLSocket) and s.pending()
    r, w, _ = select.select([s], [s] if out else [], [], 0 if pending else 1)
    if w and out:
        try:
            out = out[s.send(out[:1 << 16]):]
        except want:
            pass
    if r or pending:
        try:
            chunk = s.recv(1 << 20)
        except want:
            continue
        if not chunk:
            break
        data += chunk
heads = bytes(data).split(b"HTTP/1.1 ")[1:]
codes = [h[:3] for h in heads]
assert codes == [b"200"] * n, "%d responses, first non-200: %r" % (len(codes), next((h[:200] for h in heads if h[:3] != b"200"), None))
for i, h in enumerate(heads):
    assert b'"/p%d"' % i in h, "response %d out of order" % i
PY
}
for n in 1100 5000; do
    burst $P $n || fail "$n pipelined GETs (plaintext)"
    burst $PS $n "$T/certs/ca.pem" || fail "$n pipelined GETs (TLS)"
done
ok "1,100 and 5,000 pipelined GETs sent at once, plaintext and TLS: all 200, in order"

# Smuggling shapes and limits: each must be refused with the right status and nothing forwarded.
smuggle() { # smuggle WANT-STATUS NAME REQUEST(printf format)
    local want=$1 name=$2 st
    st=$(printf "$3" | raw $P | status_of)
    [ "$st" = "$want" ] || fail "$name: got status '$st', want $want"
}
smuggle 400 "CL+TE" 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
smuggle 400 "duplicate CL" 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc'
smuggle 400 "CL list" 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc'
smuggle 400 "obs-fold" 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n'
smuggle 400 "space before colon" 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'
smuggle 400 "bare LF" 'GET / HTTP/1.1\nHost: a\n\n'
smuggle 400 "TE in HTTP/1.0" 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
smuggle 400 "TE chunked, gzip" 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'
smuggle 501 "xchunked (unknown coding)" 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n'
smuggle 400 "CL +5" 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello'
smuggle 400 "no Host" 'GET / HTTP/1.1\r\n\r\n'
smuggle 400 "two Hosts" 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'
smuggle 505 "HTTP/2.0 line" 'GET / HTTP/2.0\r\nHost: a\r\n\r\n'
smuggle 400 "long chunk extension" "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;$(head -c 5000 /dev/zero | tr '\0' 'a')\r\nx\r\n0\r\n\r\n"
smuggle 414 "8 KiB request line" "GET /$(head -c 8200 /dev/zero | tr '\0' 'a') HTTP/1.1\r\nHost: a\r\n\r\n"
smuggle 431 "16 KiB head" "GET / HTTP/1.1\r\nHost: a\r\nX: $(head -c 16400 /dev/zero | tr '\0' 'a')\r\n\r\n"
smuggle 400 "WebSocket upgrade without a key" 'GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'
smuggle 431 "101 headers" "GET / HTTP/1.1\r\nHost: a\r\n$(for i in $(seq 1 100); do printf 'X%d: v\\r\\n' $i; done)\r\n"
ok "18 smuggling / limit shapes refused with 400/414/431/501/505"

# A chunked body with a bad chunk after a valid head: the relay closes instead of forwarding junk.
resp=$(printf 'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n' | raw $P)
echo "$resp" | grep -q '"body_len"' && fail "bad chunk forwarded: $resp"
ok "malformed chunked body is not forwarded"

# Pipelining: two requests in one packet get two responses in order; the second is routed on its own.
resp=$(printf 'GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' | raw $P)
echo "$resp" | python3 -c '
import sys; d=sys.stdin.read(); i=d.find("\"/one\""); j=d.find("\"/two\"")
assert d.count("HTTP/1.1 200")==2 and 0<i<j, d' || fail "pipelining: $resp"
# A request smuggled in a body can never reach the upstream as a request: the body is counted.
resp=$(printf 'POST /outer HTTP/1.1\r\nHost: a\r\nContent-Length: 36\r\n\r\nGET /inner HTTP/1.1\r\nHost: a\r\n\r\n' | raw $P)
echo "$resp" | grep -q '"/inner"' && fail "request inside a body was forwarded as a request"
ok "pipelined requests answered in order; a request inside a body stays a body"

# WebSocket upgrade relayed end to end (frames up to 70 KB echoed).
servers ws $P >"$T/ws.out" 2>&1 || { cat "$T/ws.out"; fail "websocket"; }
ok "$(cat "$T/ws.out")"
# Upgrades other than websocket are removed: the upstream gets a plain request without Upgrade and
# without the "upgrade" Connection option, and answers it as one.
for tok in h2c foo; do
    resp=$(printf 'GET /up-%s HTTP/1.1\r\nHost: a\r\nUpgrade: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n' $tok $tok | raw $P)
    echo "$resp" | python3 -c '
import json, sys
d = sys.stdin.read(); assert d.startswith("HTTP/1.1 200"), d
h = {k.lower() for k, v in json.loads(d.split("\r\n\r\n", 1)[1])["headers"]}
assert "upgrade" not in h and "connection" not in h and "http2-settings" not in h, h' || fail "Upgrade: $tok: $resp"
done
ok "Upgrade: h2c / foo removed; the request is served as a plain one"

# Upstream dying mid-response: the client sees a truncated body (curl 18); the relay keeps serving.
curl -sS -o /dev/null http://127.0.0.1:$P/die 2>"$T/die.err"; rc=$?
[ $rc = 18 ] || fail "upstream death mid-response: curl exit $rc ($(cat "$T/die.err"))"
curl -sS --fail -o /dev/null http://127.0.0.1:$P/after-die || fail "relay unusable after an upstream died"
ok "upstream dying mid-response -> truncated response (curl 18); next request fine"

# Upstream down: 502 with a readable reason.
bg relay-dead "$OUTPOST" relay --listen 127.0.0.1:$PD --upstream 127.0.0.1:$DEAD --mode http
wait_port $PD
st=$(curl -sS -o "$T/502" -w '%{http_code}' http://127.0.0.1:$PD/)
[ "$st" = 502 ] && grep -q 'upstream' "$T/502" || fail "upstream down: $st $(cat "$T/502")"
ok "upstream down -> 502 ($(cat "$T/502"))"

# Graceful drain: SIGTERM while a slow request is in flight; it completes, new connections are refused.
curl -sS -o "$T/slow.out" -w '%{http_code}' http://127.0.0.1:$P/slow/1500 >"$T/slow.code" &
CURL=$!
sleep 0.5
kill -TERM $RELAY
sleep 0.3
curl -sS -m 2 -o /dev/null http://127.0.0.1:$P/late 2>/dev/null && fail "accepted a connection while draining"
wait $CURL
[ "$(cat "$T/slow.code")" = 200 ] || fail "in-flight request during drain: $(cat "$T/slow.code")"
for i in $(seq 1 50); do kill -0 $RELAY 2>/dev/null || break; sleep 0.1; done
kill -0 $RELAY 2>/dev/null && fail "relay still running 5 s after SIGTERM with nothing in flight"
wait $RELAY; rc=$?
[ $rc = 0 ] || fail "relay exit code after drain: $rc"
ok "SIGTERM: in-flight request finished (200), new connections refused, clean exit"
