#!/usr/bin/env bash
# tests/integration/streams.sh — streams to a workspace port through every region with `outpost tcp` and the
# real `outpost agent`: a primary, two workspace proxies (eu, us), the agent in a temp-dir workspace with a
# Python echo server. Through each region: 64 MiB each way with matching SHA-256 and 200 concurrent streams
# (all open at once); a stream through a proxy keeps working while the primary is stopped and restarted; the
# agent reconnects to a restarted proxy within the backoff bound; it appears at a newly registered proxy
# within one manifest interval and leaves a deleted one; a member cannot open a stream to another user's
# workspace; a regenerated token locks the old agent out. Prints the stream set-up time and the throughput
# through a proxy.
. "$(dirname "$0")/../lib/common.sh"
command -v ss >/dev/null || { echo "ss missing"; exit 77; }
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
export CODER_CONFIG_DIR=$T/cli
P=$(free_port) E=$(free_port)
URL=http://127.0.0.1:$P
start_primary() {
    bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
        --proxy-health-interval 1s --agent-heartbeat-interval 2s
    PRIMARY_PID=$LAST_PID
    wait_port $P
}
start_proxy() { # name port token
    CODER_PROXY_SESSION_TOKEN=$3 bg "proxy-$1" "$OUTPOST" wsproxy server --primary-access-url $URL \
        --http-address 127.0.0.1:$2 --access-url http://127.0.0.1:$2 --workers 1
    eval "PID_$1=$LAST_PID"
    wait_port $2
}
agent_regions() { # the regions the agent reports, sorted, comma-separated
    "$OUTPOST" list -o json | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])) if a["status"]=="connected" else "-")'
}
wait_regions() { # expected seconds
    local i
    for ((i = 0; i < $2 * 5; i++)); do [ "$(agent_regions)" = "$1" ] && return 0; sleep 0.2; done
    echo "regions: $(agent_regions)" >&2
    return 1
}
connects() { grep -c "agent $AGENT connected (control" "$T/$1.log"; }

start_primary
"$OUTPOST" login $URL --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Admin-Pass-1' >/dev/null 2>&1 || fail "login"
for r in eu us; do
    "$OUTPOST" wsproxy create --name $r --only-token >"$T/$r.token" 2>&1 || fail "wsproxy create $r"
done
QE=$(free_port) QU=$(free_port)
start_proxy eu $QE "$(tail -n 1 "$T/eu.token")"
start_proxy us $QU "$(tail -n 1 "$T/us.token")"
"$OUTPOST" create ws >"$T/create.out" 2>&1 || fail "create ws: $(cat "$T/create.out")"
TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create.out")
mkdir -p "$T/ws"
bg echo python3 "$SERVERS" echo $E
wait_port $E
cd "$T/ws"
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg agent "$OUTPOST" agent
AGENT_PID=$LAST_PID
cd "$ROOT"
wait_regions eu,primary,us 20 || fail "the agent is not connected to primary, eu and us: $(tail -5 "$T/agent.log")"
AGENT=$("$OUTPOST" list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]["id"])')
ok "the agent reports the regions primary, eu and us"
ss -ltnpH | grep -q "pid=$AGENT_PID," && fail "the agent listens: $(ss -ltnpH | grep "pid=$AGENT_PID,")"
ok "the agent has no listening socket"

# --- 64 MiB each way and 200 concurrent streams, through each region ---
head -c $((64 << 20)) /dev/urandom >"$T/in"
SUM=$(sha256sum <"$T/in" | cut -d' ' -f1)
for region in primary eu us; do
    start=$(date +%s.%N)
    got=$("$OUTPOST" tcp ws $E --proxy $region -v <"$T/in" 2>"$T/tcp-$region.err" | sha256sum | cut -d' ' -f1)
    secs=$(python3 -c "import sys; print('%.2f' % ($(date +%s.%N) - $start))")
    [ "$got" = "$SUM" ] || fail "$region: SHA-256 differs after 64 MiB each way: $(cat "$T/tcp-$region.err")"
    ok "$region: 64 MiB each way through outpost tcp, SHA-256 matches, ${secs}s ($(python3 -c "print('%.0f' % (64 / $secs))") MiB/s each way); $(sed -n 's/^outpost tcp: .*: stream open/stream open/p' "$T/tcp-$region.err")"
done
for region in primary eu us; do
    concurrent_streams $region 200 $E $region
    ok "$region: 200 concurrent streams (all open at once), each echoed back"
done

# --- outpost proxy ls / use: the default region of outpost tcp, kept in the CLI's config ---
out=$("$OUTPOST" proxy ls)
for r in primary eu us; do grep -Eq "^[ *] $r +.* true +[0-9.]+ms +http://127.0.0.1:" <<<"$out" || fail "proxy ls: $r: $out"; done
grep -Eq '^\* primary ' <<<"$out" || fail "proxy ls: primary is not marked as the default: $out"
"$OUTPOST" proxy use eu >/dev/null || fail "proxy use eu"
[ "$(cat "$T/cli/proxy")" = eu ] || fail "the default is not kept in the config dir"
grep -Eq '^\* eu ' <<<"$("$OUTPOST" proxy ls)" || fail "proxy ls does not mark eu"
echo x | "$OUTPOST" tcp ws $E -v 2>&1 >/dev/null | grep -q 'through region eu' || fail "outpost tcp does not use the default eu"
"$OUTPOST" proxy use nope >/dev/null 2>"$T/nope.err"; rc=$?
[ $rc = 65 ] && grep -q 'no region named "nope"' "$T/nope.err" || fail "proxy use nope: $rc $(cat "$T/nope.err")"
out=$("$OUTPOST" proxy use auto) || fail "proxy use auto"
picked=$(sed -n 's/^Default region: auto (now \([a-z]*\),.*/\1/p' <<<"$out")
[ -n "$picked" ] && [ "$(cat "$T/cli/proxy-auto")" = "$picked" ] || fail "auto: $out"
echo x | "$OUTPOST" tcp ws $E -v 2>&1 >/dev/null | grep -q "through region $picked" || fail "auto does not stick to $picked"
"$OUTPOST" proxy use primary >/dev/null || fail "proxy use primary"
ok "proxy ls shows every region healthy with its latency and marks the default; proxy use eu|auto|primary is kept and used by outpost tcp (auto picked $picked and stuck); an unknown name exits 65"

# --- a port nobody listens on: a clear error before the upgrade, the agent logs it once ---
DEAD=$(free_port)
echo x | "$OUTPOST" tcp ws $DEAD --proxy eu >"$T/dead.out" 2>"$T/dead.err"; rc=$?
[ $rc = 69 ] && [ ! -s "$T/dead.out" ] && grep -q "region eu refused the stream (HTTP 502): The agent could not connect to port $DEAD" "$T/dead.err" ||
    fail "closed port: exit $rc: $(cat "$T/dead.err")"
for i in $(seq 20); do grep -q "stream to 127.0.0.1:$DEAD refused" "$T/agent.log" && break; sleep 0.1; done
[ "$(grep -c "stream to 127.0.0.1:$DEAD refused" "$T/agent.log")" = 1 ] || fail "the agent did not log the refusal once"
ok "a port nobody listens on: $(cat "$T/dead.err") (exit 69), logged once by the agent"

# --- set-up time through a proxy: 20 sequential streams, each a full outpost tcp ---
for i in $(seq 20); do echo x | "$OUTPOST" tcp ws $E --proxy eu -v 2>&1 >/dev/null; done |
    sed -n 's/.*(\([0-9]*\) ms after the token)/\1/p' | sort -n >"$T/setup.ms"
[ "$(wc -l <"$T/setup.ms")" = 20 ] || fail "set-up measurement: $(cat "$T/setup.ms")"
ok "stream set-up through eu after the connect token: median $(sed -n 10p "$T/setup.ms") ms, max $(tail -1 "$T/setup.ms") ms (20 streams)"

# --- a stream through eu keeps working while the primary is stopped and restarted ---
cat >"$T/survive.py" <<'PY'
import os, subprocess, sys, time
cmd, flagdir = sys.argv[1:-1], sys.argv[-1]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def echo(msg):
    p.stdin.write(msg + b"\n"); p.stdin.flush()
    line = p.stdout.readline()
    if line != msg + b"\n": print("bad echo", line, flush=True); sys.exit(1)
def wait(name):
    for _ in range(600):
        if os.path.exists(os.path.join(flagdir, name)): return
        time.sleep(0.1)
    print("no flag", name, flush=True); sys.exit(1)
echo(b"before"); print("ready", flush=True)
wait("stopped"); echo(b"while the primary is down"); print("down-ok", flush=True)
wait("restarted"); echo(b"after the restart"); print("up-ok", flush=True)
p.stdin.close(); sys.exit(p.wait())
PY
mkdir -p "$T/flags"
python3 "$T/survive.py" "$OUTPOST" tcp ws $E --proxy eu "$T/flags" >"$T/survive.out" 2>&1 &
SURV=$!
for i in $(seq 100); do grep -q ready "$T/survive.out" && break; sleep 0.1; done
grep -q ready "$T/survive.out" || fail "survive: no stream: $(cat "$T/survive.out")"
kill -TERM $PRIMARY_PID
for i in $(seq 100); do kill -0 $PRIMARY_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $PRIMARY_PID 2>/dev/null && fail "the primary did not stop"
touch "$T/flags/stopped"
for i in $(seq 100); do grep -q down-ok "$T/survive.out" && break; sleep 0.1; done
grep -q down-ok "$T/survive.out" || fail "the stream stopped working with the primary down: $(cat "$T/survive.out")"
start_primary
touch "$T/flags/restarted"
wait $SURV || fail "the stream did not survive the primary's restart: $(cat "$T/survive.out")"
ok "a stream through eu kept working while the primary was stopped and restarted"
wait_regions eu,primary,us 30 || fail "the agent did not come back to the restarted primary"
ok "the agent reconnected to the restarted primary"

# --- a proxy restart: the agent reconnects within the backoff bound ---
kill -TERM "$PID_us"
for i in $(seq 100); do kill -0 "$PID_us" 2>/dev/null || break; sleep 0.1; done
mv "$T/proxy-us.log" "$T/proxy-us-before.log"
sleep 1
start_proxy us $QU "$(tail -n 1 "$T/us.token")"
t0=$SECONDS
for i in $(seq 150); do [ "$(connects proxy-us)" -ge 1 ] && break; sleep 0.1; done
[ "$(connects proxy-us)" -ge 1 ] || fail "no reconnection to us within 15 s: $(grep 'region us' "$T/agent.log" | tail -3)"
grep -q "region us (http://127.0.0.1:$QU): .*connect" "$T/agent.log" || fail "the loss of us was not logged"
ok "us restarted: the agent reconnected $((SECONDS - t0)) s after it was back (backoff 1 s doubling, +-20 %, cap 30 s; logged: $(grep "region us (" "$T/agent.log" | grep -m1 -o 'control connection lost: .*\|cannot connect: .*'))"
echo x | "$OUTPOST" tcp ws $E --proxy us >/dev/null 2>"$T/us.err" || fail "no stream through us after its restart: $(cat "$T/us.err")"

# --- a newly registered proxy: the agent appears there within one interval; a deleted one it leaves ---
"$OUTPOST" wsproxy create --name ap --only-token >"$T/ap.token" 2>&1 || fail "wsproxy create ap"
QA=$(free_port)
start_proxy ap $QA "$(tail -n 1 "$T/ap.token")"
t0=$SECONDS
for i in $(seq 150); do [ "$(connects proxy-ap)" -ge 1 ] && break; sleep 0.1; done
[ "$(connects proxy-ap)" -ge 1 ] || fail "the agent did not appear at ap within 15 s"
ok "the agent appeared at the new proxy ap $((SECONDS - t0)) s after it started (health 1 s + manifest 5 s)"
"$OUTPOST" wsproxy delete ap -y >/dev/null 2>&1 || "$OUTPOST" wsproxy delete ap >/dev/null 2>&1 || fail "wsproxy delete ap"
for i in $(seq 100); do grep -q "region ap (.*no longer in the manifest" "$T/agent.log" && break; sleep 0.1; done
grep -q "region ap (.*no longer in the manifest" "$T/agent.log" || fail "the agent did not leave the deleted proxy"
wait_regions eu,primary,us 10 || fail "the agent still reports ap"
ok "the agent left the deleted proxy ap within one interval"

# --- a member cannot open a stream to another user's workspace ---
"$OUTPOST" users create -u bob -e bob@example.com -p 'Bob-Pass-12' >/dev/null 2>&1 || fail "users create bob"
B=(--global-config "$T/bob")
"$OUTPOST" login $URL "${B[@]}" --username bob --password 'Bob-Pass-12' >/dev/null 2>&1 || fail "bob login"
echo x | "$OUTPOST" tcp admin/ws $E --proxy eu "${B[@]}" >"$T/bob.out" 2>"$T/bob.err"; rc=$?
[ $rc -ne 0 ] && [ ! -s "$T/bob.out" ] || fail "bob reached admin's workspace (exit $rc)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Coder-Session-Token: $(cat "$T/bob/session")" \
    -H 'Content-Type: application/json' -d "{\"port\":$E,\"region\":\"eu\"}" \
    $URL/api/v2/workspaceagents/$AGENT/connect-token)
[ "$code" = 404 ] || fail "bob got a connect token for admin's agent: $code"
ok "a member cannot open a stream to another user's workspace ($(cat "$T/bob.err"); connect-token 404)"

# --- a regenerated token locks the old agent out ---
"$OUTPOST" agent-token ws >/dev/null 2>&1 || fail "agent-token"
for i in $(seq 150); do kill -0 $AGENT_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $AGENT_PID 2>/dev/null && fail "the old agent still runs 15 s after its token was regenerated"
wait $AGENT_PID; rc=$?
[ $rc = 77 ] || fail "the old agent exited $rc, want 77"
grep -q 'the primary refused the agent token' "$T/agent.log" || fail "no cause logged"
echo x | "$OUTPOST" tcp ws $E --proxy eu >/dev/null 2>"$T/gone.err" && fail "a stream still opens through the locked-out agent"
ok "a regenerated token locks the old agent out: it exits 77 and no stream opens ($(cat "$T/gone.err"))"
