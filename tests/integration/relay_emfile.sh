#!/usr/bin/env bash
# outpost relay at its open-file limit: with `ulimit -n 2000` and 2,500 idle connections the worker pauses
# accepting instead of spinning (under 50% of a core while saturated), warns at most once a second naming
# the limit, and serves new clients within 1 s once the descriptors are free again.
. "$(dirname "$0")/../lib/common.sh"
LIMIT=2000 CONNS=2500 WINDOW=3
UP=$(free_port); P=$(free_port)
bg upstream "$SERVERS" http $UP
# The limit applies to the relay only: a subshell lowers it, then becomes the relay (exec keeps the pid).
bg relay bash -c 'ulimit -n "$1" && shift && exec "$@"' _ $LIMIT "$OUTPOST" relay --listen 127.0.0.1:$P \
    --upstream 127.0.0.1:$UP --mode http --workers 1 --no-pin --head-timeout 600000 --keepalive-timeout 600000
RELAY=$LAST_PID
wait_port $UP; wait_port $P
[ "$(awk '/Max open files/ {print $4}' /proc/$RELAY/limits)" = $LIMIT ] || fail "the relay's fd limit is not $LIMIT"

# Idle clients: open CONNS connections, hold them until $T/stop exists (at most 60 s), then close them all.
python3 - $P $CONNS "$T/stop" >"$T/holder.log" 2>&1 <<'PY' &
import os, resource, socket, sys, time
port, n, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < n + 100:
    sys.exit("the test needs %d descriptors for its clients, the hard limit is %d" % (n + 100, hard))
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, hard))
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s)
print("opened", len(socks), flush=True)
deadline = time.time() + 60
while not os.path.exists(stop) and time.time() < deadline:
    time.sleep(0.05)
for s in socks:
    s.close()
print("closed", flush=True)
PY
HOLDER=$!
PIDS+=($HOLDER)

# Saturated: the relay holds (nearly) every descriptor it may open.
fds() { ls /proc/$RELAY/fd 2>/dev/null | wc -l; }
for ((i = 0; i < 200; i++)); do
    [ "$(fds)" -ge $((LIMIT - 5)) ] && break
    sleep 0.05
done
[ "$(fds)" -ge $((LIMIT - 5)) ] || fail "the relay never reached its fd limit ($(fds) open)"
grep -q opened "$T/holder.log" || sleep 1
ok "relay at its limit: $(fds) descriptors open, $CONNS clients connected"

# CPU of the relay over a window while saturated (utime + stime from /proc/PID/stat, in clock ticks).
ticks() { awk '{print $14 + $15}' /proc/$RELAY/stat; }
w0=$(grep -c 'open-file limit' "$T/relay.log")
t0=$(ticks); s0=$(date +%s%N)
sleep $WINDOW
t1=$(ticks); s1=$(date +%s%N)
w1=$(grep -c 'open-file limit' "$T/relay.log")
hz=$(getconf CLK_TCK)
pct=$(((t1 - t0) * 100 * 1000000000 / hz / (s1 - s0)))
echo "relay CPU while saturated: ${pct}% of a core over ${WINDOW} s ($((t1 - t0)) ticks)"
[ $pct -lt 50 ] || fail "busy loop at the fd limit: the relay used ${pct}% of a core"
ok "no busy loop at the fd limit (${pct}% of a core)"

# The warning names the limit and is rate-limited (at most one a second).
grep -q "open-file limit $LIMIT" "$T/relay.log" || fail "no warning naming the limit ($LIMIT)"
[ $((w1 - w0)) -le $((WINDOW + 1)) ] || fail "$((w1 - w0)) warnings in ${WINDOW} s: not rate-limited"
ok "warned $((w1 - w0)) times in ${WINDOW} s: $(grep -m1 'open-file limit' "$T/relay.log" | sed 's/.*engine[^a-z]*//')"

# Free the descriptors: a new client is served within 1 s.
touch "$T/stop"
for ((i = 0; i < 200; i++)); do
    kill -0 $HOLDER 2>/dev/null || break
    sleep 0.05
done
! kill -0 $HOLDER 2>/dev/null || fail "the clients did not close"
start=$(date +%s%N) code=
while [ $(($(date +%s%N) - start)) -lt 1000000000 ]; do
    code=$(curl -s -m 0.5 -o /dev/null -w '%{http_code}' http://127.0.0.1:$P/after) && [ "$code" = 200 ] && break
    sleep 0.02
done
took=$((($(date +%s%N) - start) / 1000000))
[ "$code" = 200 ] || fail "no service within 1 s after the descriptors were freed (last status '$code')"
ok "served again ${took} ms after the descriptors were freed"
for ((i = 0; i < 50; i++)); do
    [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:$P/n$i)" = 200 ] || fail "request $i after recovery"
done
kill -0 $RELAY 2>/dev/null || fail "the relay died"
ok "50 requests after recovery, relay alive"
