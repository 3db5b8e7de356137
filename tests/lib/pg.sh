# tests/lib/pg.sh — a throw-away PostgreSQL server for tests (sourced after common.sh).
#   pg_start         initdb + pg_ctl start in $T/pg on a free loopback port, a database "outpost" and a
#                    user "outpost" with password "outpost-test"; sets PG_PORT, PG_URL, PG_BIN; stopped
#                    by pg_stop (registered with the test's clean-up)
# PostgreSQL refuses to run as root: as root, the server runs as the "postgres" user that Debian's
# postgresql package creates. Exit 77 (skip) when no PostgreSQL server binaries are installed.
pg_find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    return 1
}

pg_as() { # run a command as the server's user
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_stop() {
    [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ] &&
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 20 stop >/dev/null 2>&1
    return 0
}

pg_start() {
    PG_BIN=$(pg_find_bin) || { echo "no PostgreSQL server installed (scripts/deps.sh installs postgresql)"; exit 77; }
    PG_PORT=$(free_port)
    PG_DATA=$T/pg/data
    mkdir -p "$T/pg"
    if [ "$(id -u)" = 0 ]; then
        chmod 755 "$T"
        chown postgres "$T/pg"
    fi
    printf 'outpost-test\n' >"$T/pg/pw" && chmod 644 "$T/pg/pw"
    pg_as "$PG_BIN/initdb" -D "$PG_DATA" -U pgadmin --auth=trust -E UTF8 --locale=C.UTF-8 >"$T/pg/initdb.log" 2>&1 ||
        fail "initdb failed: $(tail -3 "$T/pg/initdb.log")"
    # Password logins over loopback TCP (the URL the primary gets); trust on the Unix socket (set-up only).
    {
        echo "local all all trust"
        echo "host all pgadmin 127.0.0.1/32 trust"
        echo "host all all 127.0.0.1/32 scram-sha-256"
    } | pg_as tee "$PG_DATA/pg_hba.conf" >/dev/null
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 30 -l "$T/pg/server.log" \
        -o "-p $PG_PORT -k $T/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null 2>&1 ||
        fail "PostgreSQL did not start: $(tail -5 "$T/pg/server.log")"
    CLEANUP_HOOKS+=(pg_stop)
    pg_psql -c "CREATE USER outpost PASSWORD 'outpost-test'" >/dev/null || fail "create user"
    pg_psql -c "CREATE DATABASE outpost OWNER outpost" >/dev/null || fail "create database"
    PG_URL="postgres://outpost:outpost-test@127.0.0.1:$PG_PORT/outpost?sslmode=disable"
    export PG_URL PG_PORT
}

pg_psql() { # psql as the admin over the socket
    pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T/pg" -p "$PG_PORT" -U pgadmin -d "${PG_DB:-postgres}" "$@"
}
