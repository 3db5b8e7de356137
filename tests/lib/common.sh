# tests/lib/common.sh — sourced by integration tests. Every process started with `bg` is killed on exit;
# ports come from the kernel (free_port); waits are bounded.
set -u
ROOT=${OUTPOST_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
OUTPOST=${OUTPOST_BIN:-$ROOT/build/rel/outpost}
T=$(mktemp -d /tmp/outpost-test.XXXXXX)
PIDS=()
CLEANUP_HOOKS=() # commands run first at exit (e.g. pg_stop of tests/lib/pg.sh)
cleanup() {
    local rc=$? p i h
    for h in "${CLEANUP_HOOKS[@]}"; do "$h"; done
    # `bg` of a shell function records the subshell that runs it: its command is a child of that
    # subshell and would outlive it, so a recorded bash gets its children stopped first.
    for p in "${PIDS[@]}"; do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = bash ] && pkill -TERM -P "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for ((i = 0; i < 50; i++)); do # up to 5 s for graceful exits (sanitizer reports are written at exit)
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # A sanitizer report in any process's log fails the test, whatever the test itself concluded.
    if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log >/dev/null 2>&1; then
        for f in $(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log); do
            echo "--- sanitizer report in $f" >&2
            grep -A 30 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f" | head -60 >&2
        done
        rc=1
    fi
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

# fail MSG: says MSG, shows the tail of every process log, and says MSG again last, so that a runner that
# keeps only the end of the output still shows what failed.
fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    echo "FAIL: $*" >&2
    exit 1
}
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

# new_workspace NAME PRIMARY_URL: `outpost create NAME`; sets ATOKEN (its agent's token, printed once) and
# AGENT (the agent's id, read from the manifest with that token).
new_workspace() {
    "$OUTPOST" create "$1" >"$T/create-$1.log" 2>&1 || fail "create workspace $1: $(cat "$T/create-$1.log")"
    ATOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create-$1.log")
    [ -n "$ATOKEN" ] || fail "no agent token for workspace $1"
    AGENT=$(python3 "$ROOT/tests/lib/stream_client.py" agent-id "$2" "$ATOKEN") || fail "manifest of workspace $1"
}

# concurrent_streams REGION N ECHO_PORT [LABEL]: N `outpost tcp ws ECHO_PORT --proxy REGION` at once, each held
# open until all N are established on the echo server's port (bounded at 90 s, so "all open at once" does
# not depend on how fast N clients start on a loaded machine); each must echo its own line back.
concurrent_streams() {
    local region=$1 n=$2 e=$3 label=${4:-$1} i p k c peak=0 bad=0 release pids=()
    mkdir -p "$T/many-$region"
    release="$T/many-$region/release"
    for i in $(seq "$n"); do
        (printf 'stream %s via %s\n' "$i" "$region"
            for ((c = 0; c < 900; c++)); do [ -e "$release" ] && break; sleep 0.1; done) |
            "$OUTPOST" tcp ws "$e" --proxy "$region" >"$T/many-$region/$i.out" 2>"$T/many-$region/$i.err" &
        pids+=($!)
    done
    for ((k = 0; k < 600; k++)); do
        c=$(ss -tnH state established "( sport = :$e )" | wc -l)
        [ "$c" -gt "$peak" ] && peak=$c
        [ "$peak" -ge "$n" ] && break
        sleep 0.1
    done
    touch "$release"
    for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
    for i in $(seq "$n"); do
        [ "$(cat "$T/many-$region/$i.out")" = "stream $i via $region" ] || bad=$((bad + 1))
    done
    [ $bad = 0 ] || fail "$label: $bad of $n concurrent streams failed: $(cat "$T"/many-$region/*.err | sort | uniq -c | head -5)"
    [ "$peak" -ge "$n" ] || fail "$label: only $peak streams were open at once"
}

certs() { [ -f "$T/certs/server.pem" ] || bash "$ROOT/tests/lib/certs.sh" "$T/certs" >/dev/null || fail "certs"; }

SERVERS=$ROOT/tests/lib/servers.py
servers() { python3 "$SERVERS" "$@"; }

# primary_with_proxy NAME: starts a primary on a free port ($P) with a 1 s health interval, logs in as the
# first owner (CLI config under $T/cli) and creates workspace proxy NAME, whose token ends up in $TOKEN.
primary_with_proxy() {
    P=$(free_port)
    export CODER_CONFIG_DIR=$T/cli
    bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url http://127.0.0.1:$P \
        --data-dir "$T/data" --proxy-health-interval 1s
    wait_port $P
    "$OUTPOST" login http://127.0.0.1:$P --first-user-username admin --first-user-email a@b.c \
        --first-user-password 'Sup3rSecret!pw' >"$T/login.log" 2>&1 || fail "login"
    TOKEN=$("$OUTPOST" wsproxy create --name "$1" --only-token 2>"$T/create.log" | tail -n 1)
    [ -n "$TOKEN" ] || fail "wsproxy create $1"
}

# primary_eu_workspace: with $P and $Q chosen, starts a primary on $P ($URL; 1 s health, 2 s agent
# heartbeat), logs in as the first owner, starts workspace proxy eu on $Q (one worker) and creates the
# workspace ws, whose agent token ends up in $TOKEN.
primary_eu_workspace() {
    URL=http://127.0.0.1:$P
    bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url $URL --data-dir "$T/data" \
        --proxy-health-interval 1s --agent-heartbeat-interval 2s
    wait_port $P
    "$OUTPOST" login $URL --first-user-username admin --first-user-email admin@example.com \
        --first-user-password 'Admin-Pass-1' >/dev/null 2>&1 || fail "login"
    "$OUTPOST" wsproxy create --name eu --only-token >"$T/eu.token" 2>&1 || fail "wsproxy create eu"
    CODER_PROXY_SESSION_TOKEN=$(tail -n 1 "$T/eu.token") bg proxy "$OUTPOST" wsproxy server \
        --primary-access-url $URL --http-address 127.0.0.1:$Q --access-url http://127.0.0.1:$Q --workers 1
    wait_port $Q
    "$OUTPOST" create ws >"$T/create.out" 2>&1 || fail "create ws: $(cat "$T/create.out")"
    TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create.out")
}

# wait_fatal_exit PID SECONDS WHAT: waits at most SECONDS for PID (a child of this shell) to exit and fails
# unless it exited non-zero; its exit status ends up in $rc.
wait_fatal_exit() {
    local pid=$1 limit=$2 what=$3 i
    for ((i = 0; i < limit * 4; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && fail "still running ${limit} s after $what"
    wait "$pid"
    rc=$?
    [ $rc != 0 ] || fail "exited 0 after $what"
}
