# tests/lib/common.sh — sourced by integration tests. Every process started with `bg` is killed on exit;
# ports come from the kernel (free_port); waits are bounded.
set -u
ROOT=${OUTPOST_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
OUTPOST=${OUTPOST_BIN:-$ROOT/build/rel/outpost}
T=$(mktemp -d /tmp/outpost-test.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.2
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done; exit 1; }
ok() { echo "ok - $*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bg NAME CMD...: start CMD in the background with its output in $T/NAME.log
bg() { local name=$1; shift; "$@" >"$T/$name.log" 2>&1 & PIDS+=($!); LAST_PID=$!; }

wait_port() { # wait_port PORT [SECONDS]
    local port=$1 limit=${2:-10} i
    for ((i = 0; i < limit * 20; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    fail "nothing listening on port $port after ${limit}s"
}

certs() { [ -f "$T/certs/server.pem" ] || bash "$ROOT/tests/lib/certs.sh" "$T/certs" >/dev/null || fail "certs"; }

SERVERS=$ROOT/tests/lib/servers.py
servers() { python3 "$SERVERS" "$@"; }
