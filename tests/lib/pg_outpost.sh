#!/usr/bin/env bash
# tests/lib/pg_outpost.sh — stands in for the outpost binary when the primary's tests run on PostgreSQL
# (tests/run.sh's "pg" layer): `outpost server` gets CODER_PG_CONNECTION_URL of a database of its own per
# data directory (the same directory again, e.g. a restart, finds the same database; another directory a
# fresh one), created on first use on the layer's server; every other command runs unchanged. It execs, so
# the process a test started and stops by PID is the server itself.
set -u
real=${OUTPOST_REAL_BIN:?}
if [ "${1:-}" = server ]; then
    dir=${CODER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/outpost}
    prev=
    for a in "$@"; do
        [ "$prev" = --data-dir ] && dir=$a
        case $a in --data-dir=*) dir=${a#--data-dir=} ;; esac
        prev=$a
    done
    db=op_$(printf '%s' "$dir" | md5sum | cut -c1-16)
    psql=("$PG_BIN/psql" -X -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U pgadmin -d postgres)
    if [ -z "$("${psql[@]}" -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
        "${psql[@]}" -c "CREATE DATABASE $db OWNER outpost" >/dev/null 2>&1 ||
            [ -n "$("${psql[@]}" -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ] ||
            { echo "pg_outpost: cannot create database $db" >&2; exit 1; }
    fi
    export CODER_PG_CONNECTION_URL="postgres://outpost:outpost-test@127.0.0.1:$PG_PORT/$db?sslmode=disable"
fi
exec "$real" "$@"
