#!/usr/bin/env bash
# One of two primary replicas killed (SIGKILL) under load: two `outpost server` processes on one
# PostgreSQL database behind HAProxy (round robin, /healthz checks, retries with redispatch), whose address
# is the access URL of both (each has its own as relay URL); proxy eu, the agent and the CLI reach the
# primary through it. While an anonymous visitor sends ~100 requests a second to a public path app through
# eu for 10 s (full form: 60 s), the replica that holds the lease (health checks, key rotation, clean-up)
# is killed a third of the way in. Nothing may be lost: every app request answered right, an SSH session
# and an `outpost tcp` stream through eu still echo after the kill, the other replica logs "took the
# lease" within one health interval and a second, a new visitor still gets a signed app token, `wsproxy
# ls` through the load balancer still shows eu ok, the agent stays connected to both regions, and
# /api/v2/replicas lists both replicas before the kill and, once the dead one's heartbeat is older than
# 15 s (full form), the survivor alone.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/faults.sh"
. "$ROOT/tests/lib/pg.sh"
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "haproxy is not installed (scripts/deps.sh installs it)"; exit 77; }
SECS=10
[ "$FAULTS" = full ] && SECS=60
RATE=100
LEASE_GOAL_MS=2000 # one health interval (1 s) and a second
pg_start

export CODER_CONFIG_DIR=$T/cli
PA=$(free_port) PB=$(free_port) LB=$(free_port) Q=$(free_port) A=$(free_port) E=$(free_port)
URL=http://127.0.0.1:$LB EU=http://127.0.0.1:$Q

# The load balancer: a replica is taken out after two failed checks 300 ms apart; a request whose
# connection fails, or that gets no answer at all, is sent again to the other replica. Upgraded
# connections (agent control and stream connections) live under the tunnel timeout.
cat >"$T/haproxy.cfg" <<EOF
global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
frontend primaries
    bind 127.0.0.1:$LB
    default_backend primaries
backend primaries
    balance roundrobin
    option httpchk GET /healthz
    default-server inter 300ms fall 2 rise 1
    server a 127.0.0.1:$PA check
    server b 127.0.0.1:$PB check
EOF
"$HAPROXY" -c -f "$T/haproxy.cfg" >"$T/haproxy-check.out" 2>&1 || fail "haproxy rejects its config: $(cat "$T/haproxy-check.out")"

# replica NAME PORT: one primary replica, its PID in $LAST_PID. Its own address is its relay URL, which
# the agent dials besides the load balancer's (a control connection on every replica).
replica() {
    bg "primary-$1" "$OUTPOST" server --postgres-url "$PG_URL" --http-address 127.0.0.1:$2 --access-url $URL \
        --derp-server-relay-url http://127.0.0.1:$2 --data-dir "$T/$1" --proxy-health-interval 1s \
        --agent-heartbeat-interval 2s --dangerous-allow-path-app-sharing
}
# Replica a first, so that the lease has a holder before b starts.
replica a $PA
PID_a=$LAST_PID
wait_port $PA
replica b $PB
PID_b=$LAST_PID
for ((i = 0; i < 200; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$PB") 2>/dev/null && break; sleep 0.05; done
(exec 3<>"/dev/tcp/127.0.0.1/$PB") 2>/dev/null ||
    fail "replica b is not listening 10 s after it started next to replica a (last line: $(tail -n 1 "$T/primary-b.log"))"
bg haproxy "$HAPROXY" -db -f "$T/haproxy.cfg"
wait_port $LB
"$OUTPOST" login $URL --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Admin-Pass-1' >"$T/login.out" 2>&1 || fail "login through the load balancer: $(cat "$T/login.out")"
SESSION=$(cat "$T/cli/session")
"$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>&1 || fail "wsproxy create eu"
CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") bg proxy "$OUTPOST" wsproxy server --primary-access-url $URL \
    --http-address 127.0.0.1:$Q --access-url $EU --workers 1 --heartbeat-interval 2s
EU_PID=$LAST_PID
wait_port $Q
bg echo "$SERVERS" echo $E
wait_port $E
fault_workspace $URL

agent_regions() {
    "$OUTPOST" list -o json 2>/dev/null | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])) if a["status"]=="connected" else "-")' 2>/dev/null
}
eu_ok() { "$OUTPOST" wsproxy ls 2>/dev/null | grep -E "^eu " | grep -q " ok"; }
for ((i = 0; i < 120; i++)); do
    [ "$(agent_regions)" = eu,primary ] && eu_ok && break
    sleep 0.25
done
[ "$(agent_regions)" = eu,primary ] || fail "the agent did not connect to primary and eu (state: $(agent_regions))"
eu_ok || fail "eu is not ok in wsproxy ls: $("$OUTPOST" wsproxy ls 2>&1)"

replica_ids() { # the ids GET /api/v2/replicas lists, one a line
    curl -4 -s -m 5 -H "Coder-Session-Token: $SESSION" "$URL/api/v2/replicas" | python3 -c '
import json,sys
for r in json.load(sys.stdin): print(r["id"])'
}
id_of() { sed -n 's/.*this primary is replica \([0-9a-f-]*\).*/\1/p' "$T/primary-$1.log" | tail -n 1; }
ID_a=$(id_of a) ID_b=$(id_of b)
[ -n "$ID_a" ] && [ -n "$ID_b" ] || fail "a replica did not log its id"
listed=$(replica_ids | sort | tr '\n' ' ')
[ "$listed" = "$(printf '%s\n' "$ID_a" "$ID_b" | sort | tr '\n' ' ')" ] ||
    fail "/api/v2/replicas lists '$listed', not both replicas ($ID_a, $ID_b)"
holders=$(grep -l "replicas: replica .* took the lease" "$T/primary-a.log" "$T/primary-b.log" | wc -l)
[ "$holders" = 1 ] || fail "$holders replicas logged that they took the lease, not one"
if grep -q "took the lease" "$T/primary-a.log"; then DEAD=a LIVE=b; else DEAD=b LIVE=a; fi
DEAD_PID=$(eval echo "\$PID_$DEAD") DEAD_ID=$(eval echo "\$ID_$DEAD") LIVE_ID=$(eval echo "\$ID_$LIVE")
ok "two replicas on PostgreSQL behind haproxy: /api/v2/replicas lists both, $DEAD holds the lease; eu ok, the agent connected to primary and eu"

# Two long-lived sessions through eu: an SSH session running cat (the agent's SSH server) and a raw
# stream to an echo server in the workspace. Each is a pair of FIFOs held open by this shell.
session() { # session NAME CMD...: starts CMD with its input and output on FIFOs ($NAME_W, $NAME_R)
    local name=$1
    shift
    mkfifo "$T/$name.in" "$T/$name.out"
    "$@" <"$T/$name.in" >"$T/$name.out" 2>"$T/$name.err" &
    PIDS+=($!)
    eval "exec {${name}_W}>\"\$T/\$name.in\" {${name}_R}<\"\$T/\$name.out\""
}
roundtrip() { # roundtrip NAME WORD: one line out and back
    local line="" w r
    eval "w=\$${1}_W r=\$${1}_R"
    echo "$2" >&"$w" && read -r -t 5 line <&"$r" && [ "$line" = "$2" ]
}
STREAMS=(tcp)
session tcp "$OUTPOST" tcp ws $E --proxy eu
if command -v ssh >/dev/null; then
    "$OUTPOST" config-ssh --ssh-config-file "$T/ssh_config" --proxy eu >"$T/cfg.out" 2>&1 || fail "config-ssh: $(cat "$T/cfg.out")"
    session ssh ssh -F "$T/ssh_config" outpost.ws cat
    STREAMS+=(ssh)
fi
for s in "${STREAMS[@]}"; do roundtrip $s hello || fail "the $s session does not echo: $(cat "$T/$s.err")"; done

"${CLIENT[@]}" hammer '{"users": [{"name": "alice", "url": "'$EU/@admin/ws/apps/pub/'", "cookie": "", "app_path": "/"}], "n": 20, "conns": 1}' \
    >"$T/warm.out" 2>&1 || fail "warm-up: $(cat "$T/warm.out")"
N=$((RATE * SECS))
hammer_start '{"users": [{"name": "alice", "url": "'$EU/@admin/ws/apps/pub/'", "cookie": "", "app_path": "/"}], "n": '$N', "conns": 4, "rate": '$RATE'}'
ticks=0 alone_ms=""
tick() { # every session echoes one more line; after the kill, notes when the survivor is listed alone
    local s
    for s in "${STREAMS[@]}"; do
        roundtrip $s "tick$ticks" || fail "the $s session stopped echoing ($ticks rounds; $(cat "$T/$s.err"))"
    done
    ticks=$((ticks + 1))
    if [ -n "${k0:-}" ] && [ -z "$alone_ms" ] && [ "$(replica_ids | tr '\n' ' ')" = "$LIVE_ID " ]; then
        alone_ms=$((($(date +%s%N) - k0) / 1000000))
    fi
}
for ((i = 0; i < SECS / 3; i++)); do tick; sleep 1; done

[ -f "$T/hammer.rc" ] && fail "the load ended before the kill: $(cat "$T/hammer.out")"
before=$(grep -c "took the lease" "$T/primary-$LIVE.log")
kill -9 "$DEAD_PID"
k0=$(date +%s%N)
wait "$DEAD_PID" 2>/dev/null
lease_ms=""
for ((i = 0; i < 200; i++)); do
    if [ "$(grep -c "replicas: replica $LIVE_ID took the lease" "$T/primary-$LIVE.log")" -gt "$before" ]; then
        lease_ms=$((($(date +%s%N) - k0) / 1000000))
        break
    fi
    sleep 0.05
done
[ -n "$lease_ms" ] || fail "replica $LIVE did not take the lease within 10 s of the kill"
after_kill=$ticks
while [ ! -f "$T/hammer.rc" ]; do
    tick
    [ $(($(date +%s%N) - k0)) -gt $(((SECS + 30) * 1000000000)) ] && fail "the load did not end"
    sleep 1
done
tick
echoed=$((ticks - after_kill))
hammer_wait 5 "across the kill of replica $DEAD"
ok "replica $DEAD (the lease holder) killed: $N/$N app requests at $RATE/s right, 0 failed; the ${STREAMS[*]} session(s) echoed $echoed more lines each after the kill; replica $LIVE took the lease after $lease_ms ms"
[ "$lease_ms" -le $LEASE_GOAL_MS ] || fail "replica $LIVE took the lease $lease_ms ms after the kill (goal: $LEASE_GOAL_MS ms)"

# A new visitor's first request needs a signed token, which eu now gets from the survivor.
"${CLIENT[@]}" hammer '{"users": [{"name": "alice", "url": "'$EU/@admin/ws/apps/pub/'", "cookie": "", "app_path": "/"}], "n": 20, "conns": 1}' \
    >"$T/fresh.out" 2>&1 || fail "a new visitor after the kill: $(cat "$T/fresh.out")"
grep -q "20/20 right (1 connections opened, 1 token renewals)" "$T/fresh.out" ||
    fail "a new visitor after the kill did not get a fresh token: $(cat "$T/fresh.out")"
for ((i = 0; i < 40; i++)); do eu_ok && break; sleep 0.25; done
eu_ok || fail "eu is not ok in wsproxy ls after the kill: $("$OUTPOST" wsproxy ls 2>&1)"
for ((i = 0; i < 40; i++)); do [ "$(agent_regions)" = eu,primary ] && break; sleep 0.25; done
[ "$(agent_regions)" = eu,primary ] || fail "the agent is not connected to primary and eu after the kill ($(agent_regions))"
# Full form: the dead replica's last heartbeat is more than 15 s old by now (or soon); the list must be
# the survivor alone. Short form: the survivor must still be listed.
if [ "$FAULTS" = full ]; then
    for ((i = 0; i < 100; i++)); do
        [ -n "$alone_ms" ] && break
        [ "$(replica_ids | tr '\n' ' ')" = "$LIVE_ID " ] && alone_ms=$((($(date +%s%N) - k0) / 1000000))
        sleep 0.25
    done
    [ -n "$alone_ms" ] || fail "/api/v2/replicas lists '$(replica_ids | tr '\n' ' ')' $((($(date +%s%N) - k0) / 1000000000)) s after the kill, not $LIVE_ID alone"
    gone="listed replica $LIVE alone from $alone_ms ms after the kill (checked once a second)"
else
    replica_ids | grep -qx "$LIVE_ID" || fail "/api/v2/replicas does not list the survivor: $(replica_ids | tr '\n' ' ')"
    gone="still lists the survivor"
fi
ok "after the kill: a new visitor got a signed token and 20/20 answers, eu ok in wsproxy ls through the load balancer, the agent connected to primary and eu, /api/v2/replicas $gone"
