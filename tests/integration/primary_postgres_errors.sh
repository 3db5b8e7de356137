#!/usr/bin/env bash
# tests/integration/primary_postgres_errors.sh — what an operator sees when `outpost server` cannot use the
# PostgreSQL database it is given (a real server from Debian's postgresql package): a URL that is not
# postgres://, a refused port, a wrong password, a database that does not exist, a schema made by a newer
# build (left unchanged) — each a one-line error, exit 78 (EX_CONFIG) or 64 (usage), never the password.
# CODER_PG_CONNECTION_URL_FILE reads the URL from a file; an empty or missing file is an error too.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/pg.sh"
pg_start
P=$(free_port)
try() { # try WANT_RC WANT_TEXT ARGS...: runs outpost server (bounded) and checks its exit code and message
    local want=$1 text=$2 rc
    shift 2
    timeout 20 "$OUTPOST" server --http-address 127.0.0.1:$P --data-dir "$T/data" "$@" >"$T/try.out" 2>&1
    rc=$?
    [ $rc = "$want" ] || fail "outpost server $*: exit $rc, want $want: $(cat "$T/try.out")"
    grep -q -- "$text" "$T/try.out" || fail "outpost server $*: no \"$text\" in: $(cat "$T/try.out")"
    grep -q "s3cret-pw\|:outpost-test@" "$T/try.out" && fail "a password was printed: $(cat "$T/try.out")"
    return 0
}
try 64 "must be a postgres:// or postgresql:// URL" --postgres-url "mysql://x/y"
DEAD=$(free_port)
try 78 "cannot connect to PostgreSQL at 127.0.0.1:$DEAD" \
    --postgres-url "postgres://outpost:s3cret-pw@127.0.0.1:$DEAD/outpost?sslmode=disable"
try 78 "refused the login" --postgres-url "postgres://outpost:s3cret-pw@127.0.0.1:$PG_PORT/outpost?sslmode=disable"
try 78 "does not exist" --postgres-url "postgres://outpost:outpost-test@127.0.0.1:$PG_PORT/nodb?sslmode=disable"
ok "clear errors: not a PostgreSQL URL (64), a refused port, a wrong password, a missing database (78); no password shown"

printf '%s\n' "$PG_URL" >"$T/url"
CODER_PG_CONNECTION_URL_FILE=$T/url bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --data-dir "$T/data"
wait_port $P
kill -TERM $LAST_PID
for ((i = 0; i < 50; i++)); do kill -0 $LAST_PID 2>/dev/null || break; sleep 0.1; done
grep -q "database PostgreSQL" "$T/primary.log" || fail "CODER_PG_CONNECTION_URL_FILE was not used: $(cat "$T/primary.log")"
: >"$T/empty"
CODER_PG_CONNECTION_URL_FILE=$T/empty try 78 "is empty"
CODER_PG_CONNECTION_URL_FILE=$T/missing try 78 "cannot read $T/missing"
ok "CODER_PG_CONNECTION_URL_FILE: the URL read from a file; an empty or missing file is an error"

v=$(PG_DB=outpost pg_psql -tA -c "SELECT max(version) FROM outpost_schema")
PG_DB=outpost pg_psql -c "UPDATE outpost_schema SET version = 99" >/dev/null || fail "set the version"
try 78 "schema version 99, made by a newer build" --postgres-url "$PG_URL"
[ "$(PG_DB=outpost pg_psql -tA -c "SELECT max(version) FROM outpost_schema")" = 99 ] || fail "the newer schema was changed"
ok "a schema from a newer build (99, this one knows $v) is refused and left unchanged"
