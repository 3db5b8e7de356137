#!/usr/bin/env bash
# The database layer (db/db.h) against a real PostgreSQL server started from Debian's postgresql package
# in a temporary directory: the same checks as the SQLite run of test_db, then the errors a user meets
# with a wrong URL (a refused connection, a bad password, a database that does not exist) and a server
# restart under an open connection (-ENOTCONN, then op_db_reconnect).
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/pg.sh"
TEST_DB=$BUILD_DIR/tests/test_db
[ -x "$TEST_DB" ] || fail "no $TEST_DB (make unit)"
pg_start
ok "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
OUTPOST_TEST_PG_URL=$PG_URL OUTPOST_TEST_PG_PORT=$PG_PORT OUTPOST_TEST_PG_FREE_PORT=$(free_port) \
    OUTPOST_TEST_PG_RESTART="$(declare -f pg_as | tr '\n' ' '); pg_as $PG_BIN/pg_ctl -D $PG_DATA -m fast -w -t 20 restart >/dev/null" \
    "$TEST_DB" >"$T/test_db.log" 2>&1 || { cat "$T/test_db.log"; fail "test_db on PostgreSQL"; }
grep -q -- "-- postgres server (postgres)" "$T/test_db.log" || fail "test_db did not run its PostgreSQL part"
grep -q -- "-- postgres: server restart" "$T/test_db.log" || fail "the restart part did not run"
tail -1 "$T/test_db.log"
ok "db layer on PostgreSQL"
