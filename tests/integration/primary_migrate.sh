#!/usr/bin/env bash
# tests/integration/primary_migrate.sh — `outpost server --migrate-from-sqlite PATH` copies an embedded
# deployment into an empty PostgreSQL database (a real server from Debian's postgresql package): afterwards
# the primary on PostgreSQL is the same deployment — the same deployment id, the CLI session, a second
# user's password, the workspace proxy and its token, the workspace and its agent token all still work.
# A second copy into the now non-empty database is refused and changes nothing; a missing file and a
# missing --postgres-url are clear errors; a mistyped path creates no file.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/pg.sh"
pg_start
P=$(free_port)
Q=$(free_port)
URL=http://127.0.0.1:$P
export CODER_CONFIG_DIR=$T/cli
bg old "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/old" --proxy-health-interval 1s
OLD=$LAST_PID
wait_port $P
"$OUTPOST" login $URL --first-user-username admin --first-user-email a@b.c \
    --first-user-password 'Sup3rSecret!pw' >"$T/login.log" 2>&1 || fail "login"
"$OUTPOST" users create --username bob --email bob@example.com --password 'Bob-Pass-123' >"$T/bob.log" 2>&1 ||
    fail "users create bob: $(cat "$T/bob.log")"
"$OUTPOST" wsproxy create --name eu --display-name Europe --only-token >"$T/eu.token" 2>&1 || fail "wsproxy create eu"
new_workspace dev $URL
DEPLOYMENT=$(curl -s $URL/api/v2/buildinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["deployment_id"])')
kill -TERM $OLD
for ((i = 0; i < 50; i++)); do kill -0 $OLD 2>/dev/null || break; sleep 0.1; done

"$OUTPOST" server --migrate-from-sqlite "$T/old/outpost.db" >"$T/m0.out" 2>&1 && fail "--migrate-from-sqlite without --postgres-url succeeded"
grep -q "needs --postgres-url" "$T/m0.out" || fail "no hint about --postgres-url: $(cat "$T/m0.out")"
"$OUTPOST" server --migrate-from-sqlite "$T/nope/outpost.db" --postgres-url "$PG_URL" >"$T/m1.out" 2>&1 &&
    fail "a missing SQLite file was accepted"
grep -q "cannot open the SQLite database" "$T/m1.out" || fail "missing file: $(cat "$T/m1.out")"
[ -e "$T/nope/outpost.db" ] && fail "a mistyped path created a database file"
ok "clear errors: no --postgres-url, a missing file (and no file created)"

"$OUTPOST" server --migrate-from-sqlite "$T/old/outpost.db" --postgres-url "$PG_URL" >"$T/m2.out" 2>&1 ||
    fail "migrate: $(cat "$T/m2.out")"
grep -q "copied [0-9]* rows of 9 tables" "$T/m2.out" || fail "no summary: $(cat "$T/m2.out")"
rows=$(PG_DB=outpost pg_psql -tA -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM workspace_proxies) || ' ' || (SELECT count(*) FROM workspace_agents)")
[ "$rows" = "2 1 1" ] || fail "rows in PostgreSQL (users proxies agents): $rows"
"$OUTPOST" server --migrate-from-sqlite "$T/old/outpost.db" --postgres-url "$PG_URL" >"$T/m3.out" 2>&1 &&
    fail "a second copy into a non-empty database succeeded"
grep -q "already holds a deployment" "$T/m3.out" || fail "second copy: $(cat "$T/m3.out")"
rows2=$(PG_DB=outpost pg_psql -tA -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM workspace_proxies) || ' ' || (SELECT count(*) FROM workspace_agents)")
[ "$rows2" = "$rows" ] || fail "the refused copy changed the rows: $rows2"
ok "$(grep -o "copied .*" "$T/m2.out"); a second copy is refused and changes nothing"

bg new "$OUTPOST" server --postgres-url "$PG_URL" --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/new" \
    --proxy-health-interval 1s
wait_port $P
D2=$(curl -s $URL/api/v2/buildinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["deployment_id"])')
[ "$D2" = "$DEPLOYMENT" ] || fail "deployment id changed: $DEPLOYMENT -> $D2"
"$OUTPOST" list >"$T/list.out" 2>&1 || fail "outpost list with the old session: $(cat "$T/list.out")"
grep -q "dev" "$T/list.out" || fail "workspace dev missing: $(cat "$T/list.out")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST $URL/api/v2/users/login -d '{"email":"bob@example.com","password":"Bob-Pass-123"}')
[ "$code" = 201 ] || fail "bob's password after the copy: $code"
AG=$(python3 "$ROOT/tests/lib/stream_client.py" agent-id $URL "$ATOKEN") || fail "the agent token after the copy"
[ "$AG" = "$AGENT" ] || fail "agent id changed: $AGENT -> $AG"
CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") bg proxy "$OUTPOST" wsproxy server --primary-access-url $URL \
    --http-address 127.0.0.1:$Q --access-url http://127.0.0.1:$Q --workers 1
for ((i = 0; i < 60; i++)); do
    "$OUTPOST" wsproxy ls >"$T/ls.out" 2>&1 && grep -q "^eu .* ok" "$T/ls.out" && break
    sleep 0.25
done
grep -q "^eu .* ok" "$T/ls.out" || fail "eu with its old token: $(cat "$T/ls.out")"
ok "on PostgreSQL the same deployment ($D2): the CLI session, bob's password, the agent token and eu's token (ok) all work"
