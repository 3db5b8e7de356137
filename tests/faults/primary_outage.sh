#!/usr/bin/env bash
# The primary unreachable (killed) for 30 s (full form: 10 minutes) while proxy eu serves: eu must keep
# running and retrying its registration, an open stream through it (outpost tcp to an echo server in the
# workspace) must echo every second, requests with a valid signed app token must all be served (tokens
# live 1 minute plus 60 s of leeway: after that no request carries a valid one, and one that needs the
# primary must get a 502 at once, not hang); once the primary is back on the same data, eu must be
# registered again within one heartbeat interval (2 s here) and `wsproxy ls` must show it ok.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/faults.sh"
OUTAGE=30 # more than the 10 failed heartbeats (2 s) after which Coder's proxy exits
[ "$FAULTS" = full ] && OUTAGE=600
fault_deploy --heartbeat-interval 2s
E=$(free_port)
bg echo "$SERVERS" echo $E
wait_port $E
coproc TCP { exec "$OUTPOST" tcp ws $E --proxy eu 2>"$T/tcp.err"; }
PIDS+=($TCP_PID)
echo_line() { # echo_line WORD: one round trip on the open stream
    local line=""
    echo "$1" >&"${TCP[1]}" && read -r -t 3 line <&"${TCP[0]}" && [ "$line" = "$1" ]
}
echo_line hello || fail "the stream does not echo: $(cat "$T/tcp.err")"
JAR=$T/jar
code() { curl -4 -s -m 5 -o "$T/app.body" -w '%{http_code}' -b "$JAR" -c "$JAR" "$@"; }
[ "$(code -L "$APP")" = 200 ] || fail "the app does not answer before the outage"
TOKEN_AT=$(date +%s)

kill -9 "$PRIMARY_PID"
wait "$PRIMARY_PID" 2>/dev/null
t0=$(date +%s)
served=0 streamed=0 refused_fast=0
while [ $(($(date +%s) - t0)) -lt $OUTAGE ]; do
    kill -0 "$EU_PID" 2>/dev/null || fail "eu exited during the outage: $(tail -5 "$T/proxy.log")"
    echo_line "tick$streamed" || fail "the stream stopped echoing after $(($(date +%s) - t0)) s of outage"
    streamed=$((streamed + 1))
    if [ $(($(date +%s) - TOKEN_AT)) -lt 100 ]; then
        st=$(code "$APP")
        [ "$st" = 200 ] || fail "a request with a valid signed token got $st during the outage"
        served=$((served + 1))
    else
        s0=$(date +%s%N)
        st=$(code "$APP")
        ms=$((($(date +%s%N) - s0) / 1000000))
        [ "$st" = 502 ] && [ $ms -lt 2000 ] || fail "with no valid token and no primary: $st after $ms ms"
        refused_fast=$((refused_fast + 1))
    fi
    sleep 1
done
fails=$(grep -c "registration with the primary failed" "$T/proxy.log")
[ "$fails" -ge $((OUTAGE / 4)) ] || fail "only $fails failed registrations logged in $OUTAGE s (heartbeat 2 s)"
ok "$OUTAGE s without the primary: eu kept running ($fails failed registration lines), $streamed stream echoes, $served token requests served, $refused_fast token-less requests refused at once"

bg primary2 "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
    --proxy-health-interval 1s --agent-heartbeat-interval 2s --dangerous-allow-path-app-sharing
wait_port $P
back=$(date +%s%N)
for ((i = 0; i < 100; i++)); do
    grep -q "registered with the primary again" "$T/proxy.log" && break
    sleep 0.1
done
again_ms=$((($(date +%s%N) - back) / 1000000))
grep -q "registered with the primary again" "$T/proxy.log" || fail "eu did not register again within 10 s"
[ $again_ms -le 3000 ] || fail "eu took $again_ms ms to register again (heartbeat 2 s)"
for ((i = 0; i < 40; i++)); do
    "$OUTPOST" wsproxy ls 2>/dev/null | grep -E "^eu " | grep -q " ok" && break
    sleep 0.25
done
"$OUTPOST" wsproxy ls 2>/dev/null | grep -E "^eu " | grep -q " ok" || fail "eu is not ok after the primary came back: $("$OUTPOST" wsproxy ls 2>&1)"
echo_line after || fail "the stream does not echo after the outage"
[ "$(code -L "$APP")" = 200 ] || fail "the app does not answer after the outage"
ok "the primary back: eu registered again $again_ms ms after it listened, ok in wsproxy ls; stream and app work"
