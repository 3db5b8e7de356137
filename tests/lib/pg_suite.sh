#!/usr/bin/env bash
# tests/lib/pg_suite.sh start DIR | stop DIR — one PostgreSQL server for a whole test layer (tests/run.sh's
# "pg" layer), built on tests/lib/pg.sh. `start` prints shell assignments (PG_PORT, PG_BIN, PG_SOCKET_DIR) to
# eval; exit 77 when no PostgreSQL server is installed.
set -u
cmd=$1 T=$2
CLEANUP_HOOKS=()
fail() { echo "pg_suite: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
. "$(dirname "$0")/pg.sh"
case $cmd in
start)
    pg_start >&2
    printf 'PG_PORT=%s PG_BIN=%s PG_SOCKET_DIR=%s\n' "$PG_PORT" "$PG_BIN" "$T/pg"
    ;;
stop)
    PG_BIN=$(pg_find_bin) || exit 0
    PG_DATA=$T/pg/data
    pg_stop
    ;;
esac
