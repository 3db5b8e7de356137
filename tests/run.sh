#!/usr/bin/env bash
# tests/run.sh [unit|fuzz|integration|pg|faults|all] [name-filter]
# Runs the test layers against $OUTPOST_BIN and the test binaries in $BUILD_DIR/tests.
# Each test is a program: exit 0 = pass, 77 = skip, anything else = fail. Every test runs under
# `timeout`, so a hung test fails instead of hanging CI. Ends with "N passed, N failed, N skipped".
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
: "${BUILD_DIR:?BUILD_DIR must point at the build variant (make test sets it)}"
: "${OUTPOST_BIN:?OUTPOST_BIN must point at the outpost binary}"
export OUTPOST_BIN BUILD_DIR OUTPOST_ROOT="$root"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
layer=${1:-all}
filter=${2:-}
pass=0 fail=0 skip=0
failed=()
logdir="$BUILD_DIR/test-logs"
mkdir -p "$logdir"

run_one() { # name timeout cmd...
    local name=$1 limit=$2
    shift 2
    [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && return
    local log="$logdir/${name//\//_}.log" start=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    rc=$?
    local took=$((SECONDS - start))
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1)); printf 'PASS %-50s %3ss\n' "$name" "$took"
    elif [ $rc -eq 77 ]; then
        skip=$((skip + 1)); printf 'SKIP %-50s %s\n' "$name" "$(tail -n 1 "$log")"
    else
        fail=$((fail + 1)); failed+=("$name")
        printf 'FAIL %-50s rc=%s (log: %s)\n' "$name" "$rc" "$log"
        grep -m 3 '^FAIL: ' "$log" | sed 's/^/    > /'
        tail -n 30 "$log" | sed 's/^/    | /'
    fi
}

if [ "$layer" = unit ] || [ "$layer" = all ]; then
    for t in "$BUILD_DIR"/tests/test_*; do
        [ -x "$t" ] || continue
        run_one "unit/$(basename "$t")" 120 "$t"
    done
fi
if [ "$layer" = fuzz ] || [ "$layer" = all ]; then
    for t in "$BUILD_DIR"/tests/fuzz_*_replay; do
        [ -x "$t" ] || continue
        n=$(basename "$t" _replay)
        run_one "fuzz-replay/$n" 300 "$t" "$root/tests/fuzz/corpus/${n#fuzz_}"
    done
fi
if [ "$layer" = integration ] || [ "$layer" = all ]; then
    for t in "$root"/tests/integration/*.sh; do
        [ -f "$t" ] || continue
        run_one "integration/$(basename "$t" .sh)" 600 bash "$t"
    done
fi
# The primary's suite on PostgreSQL: one server from Debian's postgresql package for the layer; the primary's
# unit tests get it as OUTPOST_TEST_PG_URL (a fresh schema each), and the integration tests that exercise
# the primary run with tests/lib/pg_outpost.sh in place of the binary, which gives every `outpost server`
# a database of its own (per data directory) on that server. Skipped when PostgreSQL is not installed.
PG_TESTS="primary_e2e primary_tls primary_prompts primary_cli_golden workspaces_cli agent_basic agent_config
  agent_relay agent_revoke apps apps_hygiene dashboard port_forward proxy_replicas region_streams ssh streams
  tcp_ws terminal wsproxy_e2e"
if [ "$layer" = pg ] || [ "$layer" = all ]; then
    pgdir=$(mktemp -d /tmp/outpost-pg.XXXXXX)
    if pgenv=$(bash "$here/lib/pg_suite.sh" start "$pgdir" 2>"$pgdir/start.log"); then
        eval "export $pgenv"
        pg_url_of() { # a fresh database for one unit test
            "$PG_BIN/psql" -X -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U pgadmin -d postgres \
                -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 OWNER outpost" >/dev/null &&
                echo "postgres://outpost:outpost-test@127.0.0.1:$PG_PORT/$1?sslmode=disable"
        }
        for t in "$BUILD_DIR"/tests/test_primary_*; do
            [ -x "$t" ] || continue
            n=$(basename "$t")
            [ -n "$filter" ] && [[ "pg/unit/$n" != *"$filter"* ]] && continue
            run_one "pg/unit/$n" 180 env OUTPOST_TEST_PG_URL="$(pg_url_of "u_$n")" "$t"
        done
        for n in $PG_TESTS; do
            run_one "pg/integration/$n" 600 env OUTPOST_REAL_BIN="$OUTPOST_BIN" \
                OUTPOST_BIN="$here/lib/pg_outpost.sh" bash "$root/tests/integration/$n.sh"
        done
        bash "$here/lib/pg_suite.sh" stop "$pgdir"
    else
        skip=$((skip + 1))
        printf 'SKIP %-50s %s\n' "pg (the primary on PostgreSQL)" "$(tail -n 1 "$pgdir/start.log")"
    fi
    rm -rf "$pgdir"
fi
# Fault scenarios (tests/faults/): each reports what was lost. `all` runs their short form
# (OUTPOST_FAULTS=short); `make test-faults` runs layer faults with OUTPOST_FAULTS=full.
if [ "$layer" = faults ] || [ "$layer" = all ]; then
    [ "$layer" = all ] && export OUTPOST_FAULTS=${OUTPOST_FAULTS:-short}
    export OUTPOST_FAULTS=${OUTPOST_FAULTS:-full}
    for t in "$root"/tests/faults/*.sh; do
        [ -f "$t" ] || continue
        run_one "faults/$(basename "$t" .sh)" 1200 bash "$t"
    done
fi

echo
[ ${#failed[@]} -gt 0 ] && printf 'failed: %s\n' "${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
