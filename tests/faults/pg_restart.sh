#!/usr/bin/env bash
# PostgreSQL restarted under a primary in use: one `outpost server` on a throw-away PostgreSQL server while
# a client loop makes authenticated API requests back to back (GET /api/v2/users/me, a workspace created,
# every other one deleted again; curl --max-time 10 on each). PostgreSQL is restarted (pg_ctl -m fast
# restart), then stopped for 3 s and started again; the full form does this 5 times. What must hold: no
# request hangs until the 10 s bound; each one either succeeds or is answered 503 with a JSON message
# (500s and other answers are counted apart and fail the scenario); once PostgreSQL is back, requests
# succeed again within 5 s; and nothing was half written: every workspace whose creation was answered 201
# exists with its agent unless its deletion was answered 200, one whose creation or deletion was answered
# 503 is as it was before that request, and no workspace in the database lacks its agent row.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/faults.sh"
. "$ROOT/tests/lib/pg.sh"
CYCLES=1
[ "$FAULTS" = full ] && CYCLES=5
DOWN=3
BACK_GOAL_MS=5000
pg_start
PG_OPTS="-p $PG_PORT -k $T/pg -c listen_addresses=127.0.0.1 -c fsync=off"

export CODER_CONFIG_DIR=$T/cli
P=$(free_port)
URL=http://127.0.0.1:$P
bg primary "$OUTPOST" server --postgres-url "$PG_URL" --http-address 127.0.0.1:$P --access-url $URL \
    --data-dir "$T/data" --proxy-health-interval 1s
PRIMARY_PID=$LAST_PID
wait_port $P
"$OUTPOST" login $URL --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Admin-Pass-1' >"$T/login.out" 2>&1 || fail "login: $(cat "$T/login.out")"
SESSION=$(cat "$T/cli/session")

# api METHOD PATH OUT [curl args]: one request; prints "status curl-exit seconds" (status 000 when no answer)
api() {
    local m=$1 path=$2 out=$3 r rc
    shift 3
    r=$(curl -4 -s -m 10 -X "$m" -o "$out" -w '%{http_code} %{time_total}' -H "Coder-Session-Token: $SESSION" \
        "$@" "$URL$path")
    rc=$?
    echo "${r% *} $rc ${r#* }"
}

# The client loop: one line per request in $T/requests (ms-since-epoch kind status curl-exit seconds name),
# the workspaces it created in $T/created (name id), those whose deletion was answered in $T/deleted
# (name status), the first 503 body in $T/503.body. Runs until $T/stop exists.
client_loop() {
    local i=0 r st id
    mkdir -p "$T/loop"
    while [ ! -e "$T/stop" ]; do
        i=$((i + 1))
        r=$(api GET /api/v2/users/me "$T/loop/me")
        echo "$(date +%s%3N) me $r -" >>"$T/requests"
        st=${r%% *}
        [ "$st" = 503 ] && [ ! -e "$T/503.body" ] && cp "$T/loop/me" "$T/503.body"
        r=$(api POST /api/v2/users/admin/workspaces "$T/loop/create" -H 'Content-Type: application/json' \
            -d '{"name":"w'$i'"}')
        echo "$(date +%s%3N) create $r w$i" >>"$T/requests"
        st=${r%% *}
        if [ "$st" = 201 ]; then
            id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/loop/create")
            echo "w$i $id" >>"$T/created"
            if [ $((i % 2)) = 0 ]; then
                r=$(api DELETE "/api/v2/workspaces/$id" "$T/loop/delete")
                echo "$(date +%s%3N) delete $r w$i" >>"$T/requests"
                echo "w$i ${r%% *}" >>"$T/deleted"
            fi
        fi
    done
}
: >"$T/requests"
: >"$T/created"
: >"$T/deleted"
bg loop client_loop
LOOP_PID=$LAST_PID

# back_ms: from now until GET /api/v2/users/me answers 200 (a probe every 100 ms, at most 20 s)
back_ms() {
    local t0 i st
    t0=$(date +%s%N)
    for ((i = 0; i < 200; i++)); do
        st=$(curl -4 -s -m 2 -o /dev/null -w '%{http_code}' -H "Coder-Session-Token: $SESSION" "$URL/api/v2/users/me")
        [ "$st" = 200 ] && { echo $((($(date +%s%N) - t0) / 1000000)); return 0; }
        sleep 0.1
    done
    echo never
}
pgctl() { pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 30 -l "$T/pg/server.log" "$@" >>"$T/pg/ctl.log" 2>&1; }
ok_requests() { awk '$3 ~ /^20[01]$/' "$T/requests" | wc -l; }
for ((i = 0; i < 100; i++)); do [ "$(ok_requests)" -ge 20 ] && break; sleep 0.1; done
[ "$(ok_requests)" -ge 20 ] || fail "the client loop does not get answers: $(tail -3 "$T/requests")"

backs=()
for ((c = 1; c <= CYCLES; c++)); do
    pgctl -m fast restart -o "$PG_OPTS" || fail "pg_ctl restart: $(tail -5 "$T/pg/ctl.log")"
    b=$(back_ms)
    [ "$b" != never ] || fail "requests do not succeed again after PostgreSQL restarted (cycle $c)"
    backs+=("restart:${b}ms")
    [ "$b" -le $BACK_GOAL_MS ] || fail "requests succeeded again only $b ms after PostgreSQL restarted (goal $BACK_GOAL_MS ms)"
    sleep 2
    pgctl -m fast stop || fail "pg_ctl stop: $(tail -5 "$T/pg/ctl.log")"
    sleep $DOWN
    kill -0 $PRIMARY_PID || fail "the primary exited while PostgreSQL was down"
    pgctl start -o "$PG_OPTS" || fail "pg_ctl start: $(tail -5 "$T/pg/ctl.log")"
    b=$(back_ms)
    [ "$b" != never ] || fail "requests do not succeed again after PostgreSQL came back (cycle $c)"
    backs+=("start:${b}ms")
    [ "$b" -le $BACK_GOAL_MS ] || fail "requests succeeded again only $b ms after PostgreSQL came back (goal $BACK_GOAL_MS ms)"
    sleep 2
done
touch "$T/stop"
for ((i = 0; i < 150; i++)); do kill -0 $LOOP_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $LOOP_PID 2>/dev/null && fail "the client loop did not stop within 15 s"
kill -0 $PRIMARY_PID || fail "the primary exited"

# Answers: the count per kind and status, the slowest, the timeouts (curl exit 28) and anything that is
# neither a success nor a 503.
summary=$(awk '{ n[$2 " " $3]++ } END { for (k in n) printf "%s: %d\n", k, n[k] }' "$T/requests" | sort |
    paste -sd, | sed 's/,/, /g')
total=$(wc -l <"$T/requests")
timeouts=$(awk '$4 == 28' "$T/requests" | wc -l)
n500=$(awk '$3 == 500' "$T/requests" | wc -l)
n503=$(awk '$3 == 503' "$T/requests" | wc -l)
other=$(awk '$3 !~ /^(200|201|503|500)$/' "$T/requests")
slowest=$(sort -k5 -g "$T/requests" | tail -n 1 | awk '{ print $5 " s (" $2 " " $3 ")" }')
echo "requests: $total; by kind and status: $summary; slowest $slowest; back after: ${backs[*]}"
[ "$timeouts" = 0 ] || fail "$timeouts requests hit the 10 s bound: $(awk '$4 == 28' "$T/requests" | head -3)"
[ "$n503" -gt 0 ] || fail "no request was answered 503: the outages were not seen"
python3 -c '
import json,sys
m=json.load(open(sys.argv[1]))["message"]
assert m, "empty message"
print("503 message: " + m)' "$T/503.body" || fail "a 503 without a JSON message: $(head -c 300 "$T/503.body")"
[ "$n500" = 0 ] || fail "$n500 requests were answered 500: $(awk '$3 == 500' "$T/requests" | head -5 | tr '\n' ';')"
[ -z "$other" ] || fail "unexpected answers: $(head -5 <<<"$other" | tr '\n' ';')"
ok "$CYCLES restart(s) and $CYCLES stop/${DOWN} s/start(s) of PostgreSQL: $total requests, none hung (slowest $slowest), $n503 answered 503, 0 answered 500; requests succeeded again after ${backs[*]}"

# No partial writes: the workspaces the API lists against what the loop was told, and the agent rows in
# the database itself.
"$OUTPOST" list -o json >"$T/list.json" 2>"$T/list.err" || fail "outpost list: $(cat "$T/list.err")"
python3 - "$T/list.json" "$T/requests" "$T/created" "$T/deleted" <<'PY' || fail "the workspaces do not match the answers"
import json, sys
listed = {w["name"]: w for w in json.load(open(sys.argv[1]))}
created = dict(l.split() for l in open(sys.argv[3]) if l.strip())
deleted = dict(l.split() for l in open(sys.argv[4]) if l.strip())
create_status = {}
for l in open(sys.argv[2]):
    f = l.split()
    if f[1] == "create":
        create_status[f[5]] = f[2]
bad = []
def agents(w):
    return [a for r in w["latest_build"]["resources"] for a in r["agents"]]
for name, st in create_status.items():
    if st == "201":
        gone = deleted.get(name) == "200"
        if gone and name in listed:
            bad.append("%s: deleted (200) but listed" % name)
        if not gone:
            if name not in listed:
                bad.append("%s: created (201) but not listed" % name)
            elif listed[name]["id"] != created[name] or len(agents(listed[name])) != 1:
                bad.append("%s: listed with id %s and %d agent(s)" % (name, listed[name]["id"], len(agents(listed[name]))))
    elif st in ("503", "500") and name in listed:
        bad.append("%s: creation answered %s but the workspace exists" % (name, st))
for name, w in listed.items():
    if len(agents(w)) != 1:
        bad.append("%s: %d agents" % (name, len(agents(w))))
kept = sum(1 for n, s in create_status.items() if s == "201" and deleted.get(n) != "200")
print("workspaces: %d creations answered 201, %d deletions answered 200, %d listed (%d expected), %d deletions answered 503 kept"
      % (sum(1 for s in create_status.values() if s == "201"), sum(1 for s in deleted.values() if s == "200"),
         len(listed), kept, sum(1 for s in deleted.values() if s == "503")))
for b in bad[:10]:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
orphans=$(PG_DB=outpost pg_psql -tA -c "SELECT count(*) FROM workspaces w WHERE NOT EXISTS
    (SELECT 1 FROM workspace_agents a WHERE a.workspace_id = w.id)") || fail "psql"
[ "$orphans" = 0 ] || fail "$orphans workspaces in the database have no agent row"
ok "no partial writes: every workspace answered 201 (and not deleted) is listed with its agent, none answered 503 exists, no workspace row lacks its agent"
