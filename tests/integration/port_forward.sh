#!/usr/bin/env bash
# tests/integration/port_forward.sh — `outpost port-forward` with the real agent through a workspace proxy:
# two --tcp listeners on 127.0.0.1 to a Python echo server and a Python HTTP server inside the workspace,
# 100 concurrent connections (all open at once) each echoed back, HTTP downloads through the second
# listener, then SIGINT: the listeners close, open streams end, exit 0; SIGTERM likewise. Bad specs exit 64.
. "$(dirname "$0")/../lib/common.sh"
command -v ss >/dev/null || { echo "ss missing"; exit 77; }
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
export CODER_CONFIG_DIR=$T/cli
P=$(free_port) Q=$(free_port) E=$(free_port) H=$(free_port) L1=$(free_port) L2=$(free_port)
primary_eu_workspace
bg echo python3 "$SERVERS" echo $E
mkdir -p "$T/www" && head -c 500000 /dev/urandom >"$T/www/blob"
bg http python3 -m http.server $H --bind 127.0.0.1 --directory "$T/www"
wait_port $E
wait_port $H
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg agent "$OUTPOST" agent --data-dir "$T/agent-data" --spares 8
regions() {
    "$OUTPOST" list -o json | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])))'
}
for ((i = 0; i < 100; i++)); do [ "$(regions)" = eu,primary ] && break; sleep 0.2; done
[ "$(regions)" = eu,primary ] || fail "the agent is not connected to primary and eu"

"$OUTPOST" port-forward ws --tcp 1:2:3 >/dev/null 2>&1; rc=$?
[ $rc = 64 ] || fail "a bad --tcp spec exited $rc"
"$OUTPOST" port-forward ws >/dev/null 2>&1; rc=$?
[ $rc = 64 ] || fail "no --tcp exited $rc"
ok "bad or missing --tcp specs exit 64"

bg pf "$OUTPOST" port-forward ws --tcp $L1:$E --tcp 127.0.0.1:$L2:$H --proxy eu
PF=$LAST_PID
wait_port $L1
wait_port $L2
grep -q "Forwarding 127.0.0.1:$L1 -> admin/ws.main port $E (region eu)" "$T/pf.log" || fail "pf output: $(cat "$T/pf.log")"
ss -ltnH "( sport = :$L1 )" | grep -q "127.0.0.1:$L1" || fail "the listener is not on 127.0.0.1"

# 100 connections at once: each sends a line, holds its connection 5 s and must get its line back
mkdir -p "$T/many"
pids=()
for i in $(seq 100); do
    (printf 'line %s\n' $i; sleep 5) | timeout 40 nc -q 1 127.0.0.1 $L1 >"$T/many/$i.out" 2>"$T/many/$i.err" &
    pids+=($!)
done
peak=0
for ((k = 0; k < 120; k++)); do
    n=$(ss -tnH state established "( sport = :$E )" | wc -l)
    [ "$n" -gt "$peak" ] && peak=$n
    [ "$peak" -ge 100 ] && break
    sleep 0.1
done
for p in "${pids[@]}"; do wait $p; done
bad=0
for i in $(seq 100); do [ "$(cat "$T/many/$i.out")" = "line $i" ] || bad=$((bad + 1)); done
[ $bad = 0 ] || fail "$bad of 100 connections were not echoed: $(head -3 "$T/pf.log" "$T"/many/1.err)"
[ "$peak" -ge 100 ] || fail "only $peak streams reached the echo server at once"
ok "100 concurrent connections through port-forward (all open at once at the workspace's echo server), each echoed back"
for i in 1 2 3; do
    curl -sf "http://127.0.0.1:$L2/blob" -o "$T/blob.$i" || fail "curl through the second listener"
    cmp -s "$T/www/blob" "$T/blob.$i" || fail "the HTTP body differs"
done
ok "the second --tcp listener: three HTTP downloads of 500 kB identical"

# Ctrl-C with a stream open: the listeners close, the stream ends, exit 0
python3 - $L1 "$T/held.out" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"held\n")
out = open(sys.argv[2], "w")
got = b""
s.settimeout(20)
while not got.endswith(b"\n"):
    got += s.recv(100)
out.write(got.decode()); out.flush()
t0 = time.time()
while s.recv(100):  # the stream ends when port-forward stops
    pass
out.write("closed\n")
PY
HELD=$!
for ((k = 0; k < 50; k++)); do [ "$(head -1 "$T/held.out" 2>/dev/null)" = held ] && break; sleep 0.1; done
[ "$(head -1 "$T/held.out" 2>/dev/null)" = held ] || fail "the held connection got no echo"
kill -INT $PF
for ((k = 0; k < 50; k++)); do kill -0 $PF 2>/dev/null || break; sleep 0.1; done
kill -0 $PF 2>/dev/null && fail "port-forward still runs 5 s after SIGINT"
wait $PF; rc=$?
[ $rc = 0 ] || fail "port-forward exited $rc after SIGINT: $(tail -3 "$T/pf.log")"
for ((k = 0; k < 50; k++)); do kill -0 $HELD 2>/dev/null || break; sleep 0.1; done
kill -0 $HELD 2>/dev/null && fail "the open connection was not closed"
[ "$(tail -1 "$T/held.out")" = closed ] || fail "the held connection did not see its end: $(cat "$T/held.out")"
(exec 3<>"/dev/tcp/127.0.0.1/$L1") 2>/dev/null && fail "the listener still accepts after SIGINT"
grep -q "interrupted: listeners closed, 1 stream ended" "$T/pf.log" || fail "pf log: $(tail -2 "$T/pf.log")"
ok "SIGINT: the listeners closed, the open stream ended, exit 0"
bg pf2 "$OUTPOST" port-forward ws --tcp $L1:$E --proxy primary
PF2=$LAST_PID
wait_port $L1
[ "$(echo primary-line | timeout 10 nc -q 1 127.0.0.1 $L1)" = primary-line ] || fail "through the primary"
kill -TERM $PF2
wait $PF2; rc=$?
[ $rc = 0 ] || fail "port-forward exited $rc after SIGTERM"
ok "through the primary too; SIGTERM exits 0"
