#!/usr/bin/env bash
# tests/integration/primary_replicas.sh — two `outpost server` processes on one PostgreSQL database (started
# from Debian's postgresql package in a temporary directory) are replicas of one deployment: the same
# deployment id, a session made on one works on the other, GET /api/v2/replicas lists both with their relay
# URLs (--derp-server-relay-url), exactly one holds the lease and probes the proxies while the other serves
# the verdicts it stores, the agent keeps a control connection to each replica, so a stream through either
# replica's primary region reaches the workspace. The lease holder is killed (SIGKILL): the other takes the
# lease within a health interval and its verdicts keep coming; a clean stop (SIGTERM) drops a replica from
# the list at once.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/pg.sh"
SC() { python3 "$ROOT/tests/lib/stream_client.py" "$@"; }
pg_start
PA=$(free_port)
PB=$(free_port)
Q=$(free_port)
E=$(free_port)
URL=http://127.0.0.1:$PA
export CODER_CONFIG_DIR=$T/cli
replica() { # replica NAME PORT
    bg "primary-$1" "$OUTPOST" server --postgres-url "$PG_URL" --http-address 127.0.0.1:$2 --access-url $URL \
        --derp-server-relay-url http://127.0.0.1:$2 --data-dir "$T/$1" --proxy-health-interval 1s \
        --agent-heartbeat-interval 2s
    eval "PID_$1=$LAST_PID"
}
replica a $PA
replica b $PB
wait_port $PA
wait_port $PB
"$OUTPOST" login $URL --first-user-username admin --first-user-email a@b.c \
    --first-user-password 'Sup3rSecret!pw' >"$T/login.log" 2>&1 || fail "login"
SESSION=$(cat "$T/cli/session")
H="Coder-Session-Token: $SESSION"
[ "$(curl -s -H "$H" http://127.0.0.1:$PB/api/v2/users/me | python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])')" = admin ] ||
    fail "a session made on replica a is not good on replica b"
reps=$(curl -s -H "$H" http://127.0.0.1:$PB/api/v2/replicas)
python3 - "$reps" "$PA" "$PB" <<'PY' || fail "GET /api/v2/replicas: $reps"
import json, sys
r = json.loads(sys.argv[1])
assert len(r) == 2, r
assert sorted(x["relay_address"] for x in r) == sorted("http://127.0.0.1:%s" % p for p in sys.argv[2:4]), r
for x in r:
    assert len(x["id"]) == 36 and x["hostname"] and x["created_at"].endswith("Z") and x["error"] == "", x
    assert isinstance(x["database_latency"], (int, float)) and x["region_id"] == 0, x
PY
ok "two replicas: one deployment (a session from a is good on b), /api/v2/replicas lists both with their relay URLs"
[ "$(grep -h 'took the lease' "$T"/primary-*.log | wc -l)" = 1 ] || fail "not exactly one lease holder: $(grep -h lease "$T"/primary-*.log)"
HOLDER=$(grep -l 'took the lease' "$T"/primary-*.log | sed 's/.*primary-\(.\)\.log/\1/')
ok "exactly one replica ($HOLDER) holds the lease"

"$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>"$T/create.log" || fail "wsproxy create eu"
CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") bg proxy "$OUTPOST" wsproxy server \
    --primary-access-url http://127.0.0.1:$PB --http-address 127.0.0.1:$Q --access-url http://127.0.0.1:$Q --workers 1
wait_port $Q
status_at() { # status_at PORT: eu's status and checked_at as one replica answers
    curl -s -H "$H" "http://127.0.0.1:$1/api/v2/workspaceproxies/eu" |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["status"]; print(s["status"], s["checked_at"])'
}
for ((i = 0; i < 80; i++)); do
    [[ "$(status_at $PA)" == ok* && "$(status_at $PB)" == ok* ]] && break
    sleep 0.25
done
[[ "$(status_at $PA)" == ok* && "$(status_at $PB)" == ok* ]] || fail "eu is not ok on both replicas: a: $(status_at $PA), b: $(status_at $PB)"
ok "eu is ok as both replicas answer (the lease holder probes, the other serves its stored verdicts)"

new_workspace dev $URL
bg echo python3 "$SERVERS" echo $E
wait_port $E
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$ATOKEN bg agent "$OUTPOST" agent --manifest-interval 500ms
for ((i = 0; i < 120; i++)); do
    grep -q "(http://127.0.0.1:$PA): connected" "$T/agent.log" && grep -q "(http://127.0.0.1:$PB): connected" "$T/agent.log" && break
    sleep 0.25
done
grep -q "(http://127.0.0.1:$PB): connected" "$T/agent.log" || fail "the agent did not connect to replica b: $(grep region "$T/agent.log" | tail -5)"
for port in $PA $PB; do
    TOK=$(SC token $URL "$SESSION" "$AGENT" $E primary) || fail "connect token"
    out=$(SC many http://127.0.0.1:$port "$AGENT" $E "$TOK" 4) ||
        fail "a stream through replica :$port: $out ($(grep -h 'primary' "$T/agent.log" | tail -5))"
done
ok "the agent keeps a control connection to each replica: streams through either replica's primary region echo"

before=$(status_at $PA)
if [ "$HOLDER" = a ]; then KILLED=$PID_a LIVE=$PB OTHER=b; else KILLED=$PID_b LIVE=$PA OTHER=a; fi
t0=$(date +%s.%N)
kill -9 "$KILLED"
for ((i = 0; i < 40; i++)); do
    grep -q 'took the lease' "$T/primary-$OTHER.log" && break
    sleep 0.1
done
t1=$(date +%s.%N)
grep -q 'took the lease' "$T/primary-$OTHER.log" || fail "replica $OTHER did not take the lease within 4 s of the holder's death"
took=$(python3 -c "print(round($t1 - $t0, 2))")
for ((i = 0; i < 40; i++)); do
    now=$(status_at $LIVE)
    [[ "$now" == ok* && "${now#* }" > "${before#* }" ]] && break
    sleep 0.25
done
[[ "$now" == ok* && "${now#* }" > "${before#* }" ]] || fail "no fresh verdict after the takeover: before $before, now $now"
ok "the lease holder killed (SIGKILL): replica $OTHER took the lease within ${took}s (interval 1 s) and eu stays ok with fresh verdicts ($now)"

# A clean stop leaves the list at once; restarted, the killed replica joins again without the lease.
if [ "$OTHER" = a ]; then KN=b KP=$PB; else KN=a KP=$PA; fi
mv "$T/primary-$KN.log" "$T/killed-$KN.log"
replica $KN $KP
wait_port $KP
NEWID=$(sed -n 's/.*replicas: this primary is replica \([0-9a-f-]*\).*/\1/p' "$T/primary-$KN.log")
listed() { curl -s -H "$H" http://127.0.0.1:$LIVE/api/v2/replicas | python3 -c 'import json,sys; print(" ".join(x["id"] for x in json.load(sys.stdin)))'; }
[[ "$(listed)" == *"$NEWID"* ]] || fail "the restarted replica $NEWID is not listed: $(listed)"
grep -q 'took the lease' "$T/primary-$KN.log" && fail "the restarted replica took the lease from the live holder"
[[ "$(status_at $KP)" == ok* ]] || fail "the restarted replica does not serve eu's stored verdict at once: $(status_at $KP)"
kill -TERM "$LAST_PID"
for ((i = 0; i < 40; i++)); do kill -0 "$LAST_PID" 2>/dev/null || break; sleep 0.1; done
[[ "$(listed)" != *"$NEWID"* ]] || fail "a replica stopped with SIGTERM is still listed: $(listed)"
ok "a restarted replica is listed again; stopped cleanly (SIGTERM), it drops out of /api/v2/replicas at once"
