#!/usr/bin/env bash
# The HTTP/1.1 message rules of docs/http.md, checked over raw sockets against an upstream that records
# every byte it receives: request Transfer-Encoding lists are refused (501/400) before anything reaches
# the upstream; header names with '_' are not forwarded; trailer fields that must not be forwarded
# (Content-Length, Host, Authorization, ...) are dropped from chunked requests and responses while the
# others, the chunk data and the framing arrive unchanged.
. "$(dirname "$0")/../lib/common.sh"
UP=$(free_port); P=$(free_port)
# Upstream: logs each request's raw bytes (head, body, trailers) to $T/seen, answers /trailers with a
# chunked response carrying trailers, anything else with a small 200.
cat >"$T/up.py" <<'PY'
import socket, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
def serve(c):
    f = c.makefile("rb")
    while True:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = f.readline()
            if not line:
                return
            head += line
        raw, low = head, head.lower()
        if b"\r\ntransfer-encoding: chunked\r\n" in low:
            while True:
                line = f.readline(); raw += line
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while True:
                        line = f.readline(); raw += line
                        if line == b"\r\n":
                            break
                    break
                raw += f.read(size + 2)
        with lock, open(log, "ab") as out:
            out.write(raw + b"\n=====\n")
        if head.startswith(b"GET /trailers "):
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n"
                      b"Content-Length: 50\r\nX-Sum: 1\r\nSet-Cookie: s=1\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
: >"$T/seen"
bg upstream python3 "$T/up.py" $UP "$T/seen"
bg relay "$OUTPOST" relay --listen 127.0.0.1:$P --upstream 127.0.0.1:$UP --mode http
for p in $UP $P; do wait_port $p; done
raw() { python3 "$ROOT/tests/lib/rawhttp.py" "$@"; }
status_of() { head -n 1 | tr -d '\r' | cut -d' ' -f2; }

# Transfer-Encoding: only a lone "chunked" is forwarded; each shape gets its status, the upstream nothing.
te() { # te WANT-STATUS VALUE
    local st
    st=$(printf 'POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %s\r\n\r\n5\r\nhello\r\n0\r\n\r\n' "$2" | raw $P |
        status_of)
    [ "$st" = "$1" ] || fail "Transfer-Encoding '$2': got status '$st', want $1"
}
te 501 "gzip, chunked"
te 501 "identity, chunked"
te 501 "deflate, gzip, chunked"
te 501 "gzip"
te 400 "chunked, identity"
te 400 "chunked, chunked"
[ -s "$T/seen" ] && fail "a refused Transfer-Encoding reached the upstream: $(head -c 300 "$T/seen")"
te 200 " chunked "
grep -q 'hello' "$T/seen" || fail "plain chunked request not forwarded"
ok "request Transfer-Encoding: codings before chunked 501, chunked not last 400, nothing forwarded; plain chunked relayed"

# Header names with '_' never reach the upstream.
: >"$T/seen"
st=$(printf 'GET /u HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nTransfer_Encoding: chunked\r\nContent_Length: 5\r\nX_Custom: 1\r\nX-Dash: 2\r\nConnection: close\r\n\r\n' |
    raw $P | status_of)
[ "$st" = 200 ] || fail "underscore request: status '$st'"
grep -q '_' <(head -n 20 "$T/seen" | grep -iv '^GET') && fail "a header with '_' was forwarded: $(cat "$T/seen")"
grep -q '^X-Dash: 2' "$T/seen" || fail "X-Dash missing upstream: $(cat "$T/seen")"
ok "header names with '_' dropped, others forwarded"

# Request trailers: forbidden fields dropped, X-Sum and the body kept, in one write and trickled.
for mode in whole trickle; do
    : >"$T/seen"
    python3 - $P $mode <<'PY' || fail "request trailers ($mode)"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
req = (b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
       b"5\r\nhello\r\n0\r\nContent-Length: 50\r\nX-Sum: abc\r\nHost: evil\r\nAuthorization: Bearer x\r\n"
       b"X_Forwarded_For: 6.6.6.6\r\nConnection: keep-alive\r\n\r\n")
if sys.argv[2] == "whole":
    s.sendall(req)
else:
    for i in range(0, len(req), 3):
        s.sendall(req[i:i + 3]); time.sleep(0.002)
data = b""
while True:
    c = s.recv(4096)
    if not c:
        break
    data += c
assert data.startswith(b"HTTP/1.1 200"), data[:200]
PY
    body=$(sed -n '/^0\r$/,/^=====/p' "$T/seen")
    for gone in 'Content-Length: 50' 'Host: evil' 'Authorization' 'X_Forwarded_For' 'Connection: keep-alive'; do
        grep -q "$gone" <<<"$body" && fail "request trailer '$gone' forwarded ($mode): $body"
    done
    grep -q 'X-Sum: abc' <<<"$body" || fail "request trailer X-Sum lost ($mode): $(cat "$T/seen")"
    grep -q '^hello' "$T/seen" || fail "request body lost ($mode)"
done
ok "request trailers: Content-Length/Host/Authorization/Connection/'_' names dropped, X-Sum and the data kept (whole and trickled)"

# Response trailers from the upstream: the same rule towards the client.
out=$(printf 'GET /trailers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' | raw $P)
trailer=$(sed -n '/^0\r$/,$p' <<<"$out")
grep -q '^X-Sum: 1' <<<"$trailer" || fail "response trailer X-Sum lost: $out"
for gone in 'Content-Length: 50' 'Set-Cookie' 'Transfer-Encoding'; do
    grep -q "$gone" <<<"$trailer" && fail "response trailer '$gone' forwarded: $out"
done
grep -q '^body' <<<"$out" || fail "response body lost: $out"
ok "response trailers: Content-Length/Set-Cookie/Transfer-Encoding dropped, X-Sum and the data kept"
