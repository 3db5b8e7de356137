#!/usr/bin/env bash
# outpost relay: bad input gets a clear error and a sysexits code, never a crash or a silent start.
. "$(dirname "$0")/../lib/common.sh"
certs
expect_err() { # expect_err CODE PATTERN ARGS...
    local code=$1 pat=$2
    shift 2
    "$OUTPOST" relay "$@" >"$T/out.log" 2>&1
    local rc=$?
    [ $rc = "$code" ] || fail "relay $*: exit $rc, want $code ($(cat "$T/out.log"))"
    grep -q -- "$pat" "$T/out.log" || fail "relay $*: message lacks '$pat': $(cat "$T/out.log")"
}
P=$(free_port)
"$OUTPOST" relay --help | grep -q -- '--tunnel-idle-timeout MS' || fail "--help"
expect_err 64 "--listen and --upstream are required" --listen 127.0.0.1:$P
expect_err 64 "bad port" --listen 127.0.0.1:99999 --upstream 127.0.0.1:1
expect_err 64 "cannot resolve" --listen no-such-host.invalid:80 --upstream 127.0.0.1:1
expect_err 64 "must be tcp or http" --listen 127.0.0.1:$P --upstream 127.0.0.1:1 --mode udp
expect_err 64 "give them in pairs" --listen 127.0.0.1:$P --upstream 127.0.0.1:1 --tls-cert-file "$T/certs/server.pem"
expect_err 64 "is not a number" --listen 127.0.0.1:$P --upstream 127.0.0.1:1 --workers lots
expect_err 64 "splice applies to plaintext tcp" --listen 127.0.0.1:$P --upstream 127.0.0.1:1 --splice --mode http
expect_err 78 "TLS:" --listen 127.0.0.1:$P --upstream 127.0.0.1:1 --tls-cert-file /nonexistent.pem --tls-key-file /nonexistent.key
expect_err 78 "TLS:" --listen 127.0.0.1:$P --upstream 127.0.0.1:1 --tls-cert-file "$T/certs/server.pem" --tls-key-file "$T/certs/mismatch.key"
expect_err 64 "unexpected argument" --listen 127.0.0.1:$P --upstream 127.0.0.1:1 stray
# Address in use: a clear message and EX_UNAVAILABLE.
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(30)' $P &
PIDS+=($!)
wait_port $P
expect_err 69 "bind 127.0.0.1:$P: Address already in use" --listen 127.0.0.1:$P --upstream 127.0.0.1:1
ok "relay rejects 11 kinds of bad input with a named cause and a sysexits code"
