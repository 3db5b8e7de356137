#!/usr/bin/env bash
# tests/integration/agent_relay.sh — the agent's data side against a stand-in region (tests/lib/fake_region.py,
# the wire of docs/agent-protocol.md), plaintext and TLS: the primary's access URL points at the stand-in, so
# the manifest's "primary" region is it. Checks: HELLO with a credential, the spares it asks for, 16 MiB each
# way through one stream with matching SHA-256 and half-close in both orders, 100 concurrent streams, ERR for
# a port nobody listens on (refused, logged once) and for a non-loopback target (forbidden), the stand-in
# restarted -> the agent reconnects within the backoff bound, a TLS region (outpost relay terminating TLS in
# front of the stand-in) verified with --ca-file (and refused without it, naming the cause), SIGTERM ->
# GOAWAY on the control connection.
. "$(dirname "$0")/../lib/common.sh"
unset CODER_URL CODER_SESSION_TOKEN CODER_CONFIG_DIR CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
FAKE=$ROOT/tests/lib/fake_region.py
certs

start_fake() { # name port client-port [args]
    local name=$1; shift
    python3 -u "$FAKE" "$@" >>"$T/$name.log" 2>&1 &
    PIDS+=($!); LAST_PID=$!
    wait_port "$1"; wait_port "$2"
}
wait_log() { # file regex seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
count() { grep -Ec -- "$2" "$1" 2>/dev/null; }

# client.py CLIENT_PORT TARGET MODE: one stream through the stand-in.
cat >"$T/client.py" <<'PY'
import hashlib, os, socket, sys, threading, time
port, target, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def open_stream():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall((target + "\n").encode())
    line = b""
    while not line.endswith(b"\n"):
        d = s.recv(1)
        if not d: break
        line += d
    return s, line.decode().strip()
if mode == "answer":
    s, line = open_stream(); print(line); sys.exit(0)
if mode == "bulk":
    n = int(sys.argv[4]); data = os.urandom(n)
    s, line = open_stream()
    if line != "OK": print("answer", line); sys.exit(1)
    got = hashlib.sha256(); cnt = [0]
    def rd():
        while True:
            d = s.recv(1 << 16)
            if not d: break
            got.update(d); cnt[0] += len(d)
    t = threading.Thread(target=rd); t.start()
    t0 = time.time(); s.sendall(data); s.shutdown(socket.SHUT_WR); t.join(); dt = time.time() - t0
    ok = cnt[0] == n and got.hexdigest() == hashlib.sha256(data).hexdigest()
    print("sha256 %s %d bytes each way in %.2fs (%.0f MiB/s each way)" % ("match" if ok else "MISMATCH", cnt[0], dt, n / dt / 2**20))
    sys.exit(0 if ok else 1)
if mode == "halfclose":  # the client finishes sending first, then reads the server's answer
    s, line = open_stream()
    s.sendall(b"x" * 100000); s.shutdown(socket.SHUT_WR)
    d = b""
    while True:
        x = s.recv(65536)
        if not x: break
        d += x
    print(d.decode().strip()); sys.exit(0 if d == b"got 100000 bytes\n" else 1)
if mode == "many":
    n = int(sys.argv[4]); bad = []
    def one(i):
        try:
            s, line = open_stream()
            if line != "OK": bad.append(line); return
            msg = ("stream %d\n" % i).encode() * 50
            s.sendall(msg); s.shutdown(socket.SHUT_WR)
            d = b""
            while True:
                x = s.recv(65536)
                if not x: break
                d += x
            if d != msg: bad.append("stream %d got %d bytes" % (i, len(d)))
        except Exception as e:
            bad.append(str(e))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print("%d streams, %d bad %s" % (n, len(bad), bad[:3])); sys.exit(1 if bad else 0)
PY
client() { python3 "$T/client.py" "$@"; }

run_case() { # scheme
    local scheme=$1 tag=$1
    local RP CP PORT URL
    RP=$(free_port); CP=$(free_port); PORT=$(free_port); URL=http://127.0.0.1:$PORT
    local agentargs=() FP=$RP
    if [ "$scheme" = https ]; then # TLS in front of the stand-in: outpost's own TLS server (wolfSSL)
        FP=$(free_port)
        agentargs=(--ca-file "$T/certs/ca.pem")
        bg "tls-$tag" "$OUTPOST" relay --listen "127.0.0.1:$RP" --upstream "127.0.0.1:$FP" --mode tcp \
            --tls-cert-file "$T/certs/server.pem" --tls-key-file "$T/certs/server.key" --workers 1
    fi
    start_fake "fake-$tag" "$FP" "$CP" --spares 3 --heartbeat-ms 500
    bg "server-$tag" "$OUTPOST" server --http-address "127.0.0.1:$PORT" --data-dir "$T/data-$tag" \
        --access-url "$scheme://127.0.0.1:$RP" --agent-heartbeat-interval 2s
    wait_port "$PORT"
    local G=(--global-config "$T/cfg-$tag")
    "$OUTPOST" login "$URL" "${G[@]}" --first-user-username admin --first-user-email admin@example.com \
        --first-user-password 'Admin-Pass-1' >/dev/null 2>&1 || fail "login"
    "$OUTPOST" create ws "${G[@]}" >"$T/create-$tag.out" 2>&1 || fail "create: $(cat "$T/create-$tag.out")"
    local TOKEN; TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-$tag.out")
    local ECHO HC; ECHO=$(free_port); HC=$(free_port)
    bg "echo-$tag" servers echo "$ECHO"; bg "hc-$tag" servers halfclose "$HC"
    wait_port "$ECHO"; wait_port "$HC"

    if [ "$scheme" = https ]; then # without the test CA the region's certificate is refused, with the cause
        CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg "agent-noca" "$OUTPOST" agent
        local NOCA=$LAST_PID
        wait_log "$T/agent-noca.log" "region primary \(https://127.0.0.1:$RP\): cannot connect: TLS: the certificate is not signed by a trusted CA" 10 ||
            fail "no CA: $(tail -3 "$T/agent-noca.log")"
        kill -TERM $NOCA; wait $NOCA
        ok "$tag: without --ca-file the region's certificate is refused, naming the cause"
    fi
    CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg "agent-$tag" "$OUTPOST" agent "${agentargs[@]}" \
        --app "slug=web,url=http://127.0.0.1:$ECHO" --spares 2 --max-spares 4
    local AG=$LAST_PID
    wait_log "$T/fake-$tag.log" '^HELLO 1 4 ' 10 || fail "$tag: no HELLO: $(tail -5 "$T/agent-$tag.log")"
    wait_log "$T/fake-$tag.log" '^SPARE 3$' 10 || fail "$tag: the agent did not park the 3 spares WELCOME asked for"
    ok "$tag: control connection (HELLO with a credential), 3 spares parked as WELCOME asked"

    out=$(client "$CP" "127.0.0.1:$ECHO" bulk $((16 << 20))) || fail "$tag bulk: $out"
    ok "$tag: $out"
    out=$(client "$CP" "127.0.0.1:$HC" halfclose) || fail "$tag half-close: $out"
    ok "$tag: half-close: the client's FIN reached the target, its answer came back ($out)"
    out=$(client "$CP" "localhost:$ECHO" many 100) || fail "$tag many: $out"
    ok "$tag: $out (target localhost)"
    local DEAD; DEAD=$(free_port)
    out=$(client "$CP" "127.0.0.1:$DEAD" answer)
    [[ "$out" == "ERR 1 "* ]] || fail "$tag refused: '$out'"
    wait_log "$T/fake-$tag.log" "^STREAM_FAIL $DEAD 1 " 5 || fail "$tag: no STREAM_FAIL frame"
    [ "$(count "$T/agent-$tag.log" "stream to 127.0.0.1:$DEAD refused")" = 1 ] || fail "$tag: refusal not logged once"
    out=$(client "$CP" "10.255.255.1:22" answer)
    [[ "$out" == "ERR 2 "* ]] || fail "$tag forbidden: '$out'"
    out=$(client "$CP" "api.localhost:$ECHO" answer)
    [ "$out" = OK ] || fail "$tag *.localhost is loopback: '$out'"
    ok "$tag: ERR 1 for a closed port (logged once, STREAM_FAIL sent), ERR 2 for 10.255.255.1, *.localhost is loopback"
    local regions
    regions=$("$OUTPOST" list "${G[@]}" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]["regions"])')
    [ "$regions" = "['primary']" ] || fail "$tag: reported regions $regions"
    ok "$tag: the agent reports the region it is connected to"

    # The region restarts: the agent reconnects within the first backoff steps (1 s, 2 s, +-20 %).
    kill "$(pgrep -f "fake_region.py $FP ")"
    wait_log "$T/agent-$tag.log" "region primary .*control connection lost" 10 || fail "$tag: loss not logged"
    local t0=$SECONDS
    sleep 1
    start_fake "fake-$tag" "$FP" "$CP" --spares 3 --heartbeat-ms 500
    local hellos; hellos=$(count "$T/fake-$tag.log" '^HELLO ')
    for ((i = 0; i < 100; i++)); do [ "$(count "$T/fake-$tag.log" '^HELLO ')" -ge 2 ] && break; sleep 0.1; done
    [ "$(count "$T/fake-$tag.log" '^HELLO ')" -ge 2 ] || fail "$tag: no reconnection within 10 s"
    ok "$tag: region restarted -> reconnected after $((SECONDS - t0)) s (backoff 1 s doubling, cap 30 s)"
    out=$(client "$CP" "127.0.0.1:$ECHO" bulk 1000000) || fail "$tag after restart: $out"

    kill -TERM $AG; wait $AG; rc=$?
    [ $rc -eq 0 ] || fail "$tag: SIGTERM exit $rc"
    wait_log "$T/fake-$tag.log" '^GOAWAY 0 agent shutting down' 5 || fail "$tag: no GOAWAY on SIGTERM"
    ok "$tag: SIGTERM -> GOAWAY shutdown on the control connection, exit 0"
}
run_case http
run_case https
