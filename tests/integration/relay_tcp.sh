#!/usr/bin/env bash
# outpost relay in tcp mode: plaintext (copy, inline splice, io_uring splice) and TLS tunnels carry
# 1 GiB / 256 MiB each way intact, half-close is propagated (copy and both splices), TLS policy refuses TLS 1.1, NULL and CBC ciphers and TLS 1.2 curves
# other than X25519/P-256/P-384, accepts a 200-suite ClientHello, 2,000 concurrent connections are relayed.
. "$(dirname "$0")/../lib/common.sh"
certs
UP=$(free_port); P1=$(free_port); P2=$(free_port); P3=$(free_port); HC=$(free_port); P4=$(free_port); EU=$(free_port)
bg socat-echo socat TCP-LISTEN:$UP,reuseaddr,fork,backlog=512 EXEC:cat
bg halfclose "$SERVERS" halfclose $HC
bg pyecho "$SERVERS" echo $EU
bg relay-copy "$OUTPOST" relay --listen 127.0.0.1:$P1 --upstream 127.0.0.1:$UP --splice=off
bg relay-splice "$OUTPOST" relay --listen 127.0.0.1:$P2 --upstream 127.0.0.1:$UP # inline splice: the default
bg relay-tls "$OUTPOST" relay --listen 127.0.0.1:$P3 --upstream 127.0.0.1:$UP \
    --tls-cert-file "$T/certs/server.pem" --tls-key-file "$T/certs/server.key"
bg relay-hc "$OUTPOST" relay --listen 127.0.0.1:$P4 --upstream 127.0.0.1:$HC --splice=off
# An RSA certificate for the TLS 1.2 group checks: with an ECDSA P-256 certificate a TLS 1.2 client must
# offer P-256 too (it constrains the certificate's curve), so each group could not be offered alone.
P5=$(free_port)
bg relay-rsa "$OUTPOST" relay --listen 127.0.0.1:$P5 --upstream 127.0.0.1:$UP \
    --tls-cert-file "$T/certs/rsa.pem" --tls-key-file "$T/certs/rsa.key"
PM=$(free_port)
bg relay-many "$OUTPOST" relay --listen 127.0.0.1:$PM --upstream 127.0.0.1:$EU --splice=off
PU=$(free_port) PHS=$(free_port) PHU=$(free_port) PMS=$(free_port)
bg relay-splice-uring "$OUTPOST" relay --listen 127.0.0.1:$PU --upstream 127.0.0.1:$UP --splice=uring
bg relay-hc-splice "$OUTPOST" relay --listen 127.0.0.1:$PHS --upstream 127.0.0.1:$HC --splice
bg relay-hc-uring "$OUTPOST" relay --listen 127.0.0.1:$PHU --upstream 127.0.0.1:$HC --splice=uring
bg relay-many-splice "$OUTPOST" relay --listen 127.0.0.1:$PMS --upstream 127.0.0.1:$EU --splice=inline
for p in $UP $HC $EU $P1 $P2 $P3 $P4 $P5 $PM $PU $PHS $PHU $PMS; do wait_port $p; done

roundtrip() { # roundtrip NAME BYTES SOCAT-ADDRESS
    local name=$1 bytes=$2 addr=$3
    head -c "$bytes" /dev/urandom | tee >(sha256sum | cut -d' ' -f1 >"$T/$name.sent") |
        socat -b 262144 -t 60 - "$addr" | sha256sum | cut -d' ' -f1 >"$T/$name.recv"
    sleep 0.2
    [ -s "$T/$name.sent" ] && [ "$(cat "$T/$name.sent")" = "$(cat "$T/$name.recv")" ] ||
        fail "$name: sha256 sent $(cat "$T/$name.sent") != received $(cat "$T/$name.recv")"
    ok "$name: $bytes bytes each way, sha256 $(cut -c1-16 "$T/$name.recv")…"
}
roundtrip plaintext-copy $((1 << 30)) TCP:127.0.0.1:$P1
roundtrip plaintext-splice $((256 << 20)) TCP:127.0.0.1:$P2
roundtrip plaintext-splice-uring $((256 << 20)) TCP:127.0.0.1:$PU
# Clients that send at once, before the upstream leg exists: the first bytes take the copy path, and a
# splice must not overtake them (it once did, reordering the stream). 8 at a time through each splice mode.
for port in $P2 $PU; do
    rt=()
    for i in 1 2 3 4 5 6 7 8; do
        roundtrip "parallel-$port-$i" $((32 << 20)) TCP:127.0.0.1:$port >>"$T/parallel.out" 2>&1 &
        rt+=($!)
    done
    wait "${rt[@]}" # not a bare wait: that would wait for the relays too
done
[ "$(grep -c '^ok - parallel' "$T/parallel.out")" = 16 ] || fail "parallel spliced round trips: $(grep -v '^ok' "$T/parallel.out" | head -5)"
ok "16 round trips of 32 MiB each way, 8 at once through each splice mode, sha256 intact"
# The same with a client whose first bytes arrive before the upstream connect completes (the harness's
# load generator sends its header and payload at once, 32 streams): its server resets a stream whose
# header was overtaken.
LOADGEN=$BUILD_DIR/bench/loadgen
if [ -x "$LOADGEN" ]; then
    LG=$(free_port) PLS=$(free_port) PLU=$(free_port)
    bg lg-server "$LOADGEN" server --listen 127.0.0.1:$LG
    bg relay-lg-inline "$OUTPOST" relay --listen 127.0.0.1:$PLS --upstream 127.0.0.1:$LG --splice --workers 1
    bg relay-lg-uring "$OUTPOST" relay --listen 127.0.0.1:$PLU --upstream 127.0.0.1:$LG --splice=uring --workers 1
    for p in $LG $PLS $PLU; do wait_port $p; done
    for p in $PLS $PLU; do
        for d in up down both; do
            timeout 60 "$LOADGEN" bulk --connect 127.0.0.1:$p --streams 32 --bytes $((64 << 20)) --dir $d \
                >"$T/lg.out" 2>&1 || fail "32 streams ($d) through the splice relay :$p: $(tail -2 "$T/lg.out")"
        done
    done
    ok "32 load-generator streams up, down and both ways through inline and io_uring splice, none reset"
fi
roundtrip tls $((256 << 20)) "OPENSSL:127.0.0.1:$P3,cafile=$T/certs/ca.pem"

# Half-close: the client finishes sending (FIN), the upstream still answers afterwards.
for hp in $P4 $PHS $PHU; do
    got=$(head -c 1048576 /dev/zero | socat -t 10 - TCP:127.0.0.1:$hp)
    [ "$got" = "got 1048576 bytes" ] || fail "half-close through :$hp: got '$got'"
done
ok "half-close propagated by copy, inline splice and io_uring splice (upstream saw EOF and still answered)"

# TLS policy.
tls_try() { timeout 10 openssl s_client -connect 127.0.0.1:$P3 -CAfile "$T/certs/ca.pem" "$@" </dev/null >"$T/s_client.out" 2>&1; }
tls_try -tls1_3 && grep -q 'TLSv1.3' "$T/s_client.out" || fail "TLS 1.3 handshake failed"
tls_try -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 || fail "TLS 1.2 AEAD handshake failed"
! tls_try -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' || fail "TLS 1.1 was accepted"
! tls_try -tls1_2 -cipher 'eNULL:@SECLEVEL=0' || fail "a NULL cipher was accepted"
! tls_try -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0' || fail "a CBC cipher was accepted"
ok "TLS 1.3 and TLS 1.2 AEAD accepted; TLS 1.1, NULL and CBC ciphers refused"

# TLS 1.2 key exchange only over the configured groups: secp521r1 alone is refused.
rsa_try() { timeout 10 openssl s_client -connect 127.0.0.1:$P5 -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 "$@" </dev/null >"$T/s_client.out" 2>&1; }
! rsa_try -groups secp521r1 || fail "TLS 1.2 negotiated secp521r1 (not a configured group)"
for g in X25519:X25519 P-256:prime256v1 P-384:secp384r1; do
    rsa_try -groups "${g%%:*}" || fail "TLS 1.2 with only ${g%%:*} failed: $(grep -i 'error\|temp key' "$T/s_client.out")"
    grep -q "Server Temp Key: .*${g#*:}" "$T/s_client.out" || fail "TLS 1.2 ${g%%:*}: $(grep 'Temp Key' "$T/s_client.out")"
done
ok "TLS 1.2: X25519, P-256 and P-384 each negotiated alone; secp521r1 alone refused"

# A ClientHello with 200 cipher suites (199 unassigned ids, then ECDHE-ECDSA-AES128-GCM-SHA256) gets a
# ServerHello; OpenSSL cannot send that many, so the hello is built by hand.
python3 - $P3 <<'PY' || fail "a 200-suite ClientHello was not answered with a ServerHello"
import os, socket, struct, sys
def ext(t, body): return struct.pack("!HH", t, len(body)) + body
host = b"localhost"
suites = b"".join(struct.pack("!BB", 0x0a, i) for i in range(199)) + b"\xc0\x2b"
exts = (ext(0, struct.pack("!HBH", len(host) + 3, 0, len(host)) + host)
        + ext(10, struct.pack("!HHH", 4, 0x001d, 0x0017))            # supported_groups
        + ext(11, b"\x01\x00")                                     # ec_point_formats: uncompressed
        + ext(13, struct.pack("!HHH", 4, 0x0403, 0x0804)))           # signature_algorithms
body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
        + struct.pack("!H", len(exts)) + exts)
hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs)
head = b""
while len(head) < 6:
    chunk = s.recv(6 - len(head))
    if not chunk: break
    head += chunk
print("reply:", head.hex())
sys.exit(0 if len(head) == 6 and head[0] == 0x16 and head[5] == 0x02 else 1)
PY
ok "a ClientHello with 200 cipher suites is answered with a ServerHello"

# 2,000 connections open at once, each echoing its own line.
servers many $PM 2000 >"$T/many.out" 2>&1 || { cat "$T/many.out"; fail "2000 concurrent connections"; }
ok "$(cat "$T/many.out")"
servers many $PMS 300 >"$T/many-splice.out" 2>&1 || { cat "$T/many-splice.out"; fail "300 concurrent spliced connections"; }
ok "inline splice: $(cat "$T/many-splice.out") (256 pipes per worker: the rest copy)"

# Every relay is still alive, and exits cleanly on SIGTERM.
for pid in "${PIDS[@]:3}"; do kill -0 "$pid" 2>/dev/null || fail "a relay died (pid $pid)"; done
ok "all relays alive"

# Drain deadline: an open tunnel does not hold the process past --drain-timeout.
PD=$(free_port)
bg relay-drain "$OUTPOST" relay --listen 127.0.0.1:$PD --upstream 127.0.0.1:$EU --drain-timeout 1000
DRAIN_PID=$LAST_PID
wait_port $PD
python3 -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(b"hi\n"); s.recv(3); time.sleep(20)' $PD &
HOLDER=$!
PIDS+=($HOLDER)
sleep 0.5
start=$(date +%s%N)
kill -TERM $DRAIN_PID
wait $DRAIN_PID; rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[ $rc = 0 ] || fail "drain exit code $rc"
[ $ms -ge 900 ] && [ $ms -lt 3000 ] || fail "drain with an open tunnel took ${ms} ms (deadline 1000 ms)"
ok "SIGTERM with an open tunnel: force-closed at the drain deadline (${ms} ms), exit 0"
