# bench/workspace.sh — sourced by bench/run.sh: the workloads that go through the whole workspace path
# (client → region → agent stream → agent), not just the relay engine. Uses run.sh's helpers (rec,
# free_ports, wait_listen, kill_group, start_peer, run_group, PEER_*). See bench/README.md, workload 7.
#
# The environment: a primary and one workspace proxy "eu" (the relay under test: pinned to RELAY_CPU,
# one worker), a workspace "ws" whose `outpost agent` dials out to both, all on loopback; the primary,
# the agent, the clients and the agent's servers run on LOAD_CPU. For the direct rows the same SSH and
# terminal server code (agent/ssh.h, agent/pty.h) listens on ports (bench/agentd); nginx and HAProxy
# relay plain TCP to those ports.

WS_DIR="" WS_PRIMARY_PID="" WS_PROXY_PID="" WS_AGENT_PID="" WS_AGENTD_PID="" WS_SSHD="" WS_PTYD=""
WS_PRIMARY="" WS_PROXY="" WS_AGENT_ID="" WS_SESSION=""
WS_ENV=() WS_ENV_N=0

# ws_env_up WL: starts the primary, proxy eu, the agent and agentd (in the workspace directory). 0 when the agent is connected to both
# regions (bounded: 30 s), else 1 with the reason logged.
ws_env_up() {
    local ports pp qp sp tp i out token
    WS_DIR=$RUN/workspace-w$1-$((++WS_ENV_N))
    mkdir -p "$WS_DIR/ws" "$WS_DIR/cli"
    read -r -a ports < <(free_ports 4)
    pp=${ports[0]} qp=${ports[1]} sp=${ports[2]} tp=${ports[3]}
    WS_PRIMARY=127.0.0.1:$pp WS_PROXY=127.0.0.1:$qp
    WS_ENV=(env -u CODER_URL -u CODER_SESSION_TOKEN -u CODER_AGENT_TOKEN CODER_CONFIG_DIR="$WS_DIR/cli")
    # Path-app sharing and a long token lifetime: W10's anonymous visitor keeps one signed token all run.
    setsid taskset -c "$LOAD_CPU" "${WS_ENV[@]}" "$OUTPOST_BIN" server --http-address "127.0.0.1:$pp" \
        --access-url "http://127.0.0.1:$pp" --data-dir "$WS_DIR/data" --dangerous-allow-path-app-sharing \
        --app-token-lifetime 24h \
        >"$WS_DIR/primary.log" 2>&1 </dev/null &
    WS_PRIMARY_PID=$!
    PGIDS+=("$WS_PRIMARY_PID")
    wait_listen "$WS_PRIMARY_PID" "$pp" || { log "workspace: the primary did not start"; return 1; }
    "${WS_ENV[@]}" "$OUTPOST_BIN" login "http://127.0.0.1:$pp" --first-user-username admin \
        --first-user-email admin@example.com --first-user-password 'Bench-Pass-1' >"$WS_DIR/login.log" 2>&1 ||
        { log "workspace: login failed"; return 1; }
    token=$("${WS_ENV[@]}" "$OUTPOST_BIN" wsproxy create --name eu --only-token 2>>"$WS_DIR/login.log" | tail -n 1)
    setsid taskset -c "$RELAY_CPU" env CODER_PROXY_SESSION_TOKEN="$token" "$OUTPOST_BIN" wsproxy server \
        --primary-access-url "http://127.0.0.1:$pp" --http-address "127.0.0.1:$qp" \
        --access-url "http://127.0.0.1:$qp" --workers "$WORKERS" --log-level warn \
        >"$WS_DIR/proxy.log" 2>&1 </dev/null &
    WS_PROXY_PID=$!
    PGIDS+=("$WS_PROXY_PID")
    wait_listen "$WS_PROXY_PID" "$qp" || { log "workspace: the proxy did not start"; return 1; }
    out=$("${WS_ENV[@]}" "$OUTPOST_BIN" create ws 2>&1) || { log "workspace: create ws: $out"; return 1; }
    token=$(sed -n 's/^CODER_AGENT_TOKEN=//p' <<<"$out")
    (cd "$WS_DIR/ws" && exec setsid taskset -c "$LOAD_CPU" env CODER_AGENT_URL="http://127.0.0.1:$pp" \
        CODER_AGENT_TOKEN="$token" "$OUTPOST_BIN" agent --data-dir "$WS_DIR/agent-data" --log-level warn \
        --app "slug=bench,url=http://$UPSTREAM,share=public" \
        --max-streams 20000 --max-spares 64 --max-pty-sessions 1000 --reconnecting-pty-timeout 1s \
        >"$WS_DIR/agent.log" 2>&1 </dev/null) &
    WS_AGENT_PID=$!
    PGIDS+=("$WS_AGENT_PID")
    for ((i = 0; i < 150; i++)); do
        "${WS_ENV[@]}" "$OUTPOST_BIN" list -o json 2>/dev/null | python3 -c '
import json, sys
a = json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
sys.exit(0 if a["status"] == "connected" and {"primary", "eu"} <= set(a.get("regions") or []) else 1)' && break
        sleep 0.2
    done
    [ "$i" -lt 150 ] || { log "workspace: the agent did not connect to primary and eu (see $WS_DIR/agent.log)"; return 1; }
    WS_AGENT_ID=$("${WS_ENV[@]}" "$OUTPOST_BIN" list -o json | python3 -c '
import json, sys
print(json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]["id"])')
    WS_SESSION=$(cat "$WS_DIR/cli/session")
    (cd "$WS_DIR/ws" && exec setsid taskset -c "$LOAD_CPU" "$AGENTD" --ssh "127.0.0.1:$sp" \
        --data-dir "$WS_DIR/agentd-data" --pty "127.0.0.1:$tp" --max-sessions 1000 --pty-timeout-ms 1000 >"$WS_DIR/agentd.log" 2>&1 </dev/null) &
    WS_AGENTD_PID=$!
    PGIDS+=("$WS_AGENTD_PID")
    wait_listen "$WS_AGENTD_PID" "$sp" && wait_listen "$WS_AGENTD_PID" "$tp" ||
        { log "workspace: agentd did not start"; return 1; }
    WS_SSHD=127.0.0.1:$sp WS_PTYD=127.0.0.1:$tp
    return 0
}

ws_env_down() {
    local p
    for p in "$WS_AGENTD_PID" "$WS_AGENT_PID" "$WS_PROXY_PID" "$WS_PRIMARY_PID"; do [ -n "$p" ] && kill_group "$p"; done
    WS_AGENTD_PID="" WS_AGENT_PID="" WS_PROXY_PID="" WS_PRIMARY_PID=""
}

# ws_begin WL: the environment for one workload (a fresh one each, so one workload's leftovers do not
# weigh on the next). 1 when it cannot run (logged).
ws_begin() {
    if [ $OUTPOST_OK = 0 ]; then
        log "W$1: skipped (${OUTPOST_NOTE})"
        return 1
    fi
    ws_env_up "$1" && return 0
    ws_env_down
    return 1
}

# The outpost rows of W7-W9 are regions of the running environment, not relays started per workload.
# ws_peer NAME: fills PEER_* for outpost (through the proxy eu) and outpost-primary (the primary's own region).
ws_peer() {
    PEER_STATE[$1]=ok PEER_NOTE[$1]=""
    case $1 in
    outpost) PEER_PID[$1]=$WS_PROXY_PID PEER_ADDR[$1]=eu ;;
    outpost-primary) PEER_PID[$1]=$WS_PRIMARY_PID PEER_ADDR[$1]=primary ;;
    esac
}

SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes)

# measure_scp WL CASE PEER REP: one scp of W7_BYTES up (to the workspace's /dev/null) or down (from
# the workspace to the local /dev/null); MB/s over the whole scp run (connection set-up included, the
# same for every row).
measure_scp() {
    local wl=$1 cs=$2 peer=$3 rep=$4 t0 t1 rc
    local -a cmd=(taskset -c "$LOAD_CPU" scp -q "${SSH_OPTS[@]}")
    local host=127.0.0.1
    case $peer in
    outpost*)
        cmd+=(-o "ProxyCommand=env CODER_CONFIG_DIR=$WS_DIR/cli $OUTPOST_BIN ssh --stdio --proxy ${PEER_ADDR[$peer]} ws")
        host=outpost.ws
        ;;
    *) cmd+=(-P "${PEER_ADDR[$peer]##*:}") ;;
    esac
    case $cs in
    up*) cmd+=("$W7_FILE" "$host:/dev/null") ;;
    *) cmd+=("$host:$W7_FILE" /dev/null) ;;
    esac
    t0=$(date +%s%N)
    timeout 300 "${cmd[@]}" </dev/null 2>>"$RUN/scp.err"
    rc=$?
    t1=$(date +%s%N)
    if [ $rc = 0 ]; then
        rec "$wl" "$cs" "$peer" throughput MB/s higher "$rep" \
            "$(awk -v b="$W7_BYTES" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f", b / 1e6 / ((t1 - t0) / 1e9)}')"
    else
        rec "$wl" "$cs" "$peer" throughput MB/s higher "$rep" error "scp exited $rc"
    fi
}

w_scp() { measure_scp "$@"; }

# workload_7: SSH bulk (scp) — direct to the SSH server, through nginx and HAProxy (plain TCP relays to
# it), and through Outpost's proxy eu and the primary's region (`outpost ssh --stdio` as ProxyCommand,
# the agent's stream, the agent's SSH server).
workload_7() {
    local saved=$UPSTREAM p
    command -v scp >/dev/null || { log "W7: scp missing (openssh-client)"; return 0; }
    ws_begin 7 || return 0
    W7_FILE=$WS_DIR/payload
    head -c "$W7_BYTES" /dev/urandom >"$W7_FILE"
    # nginx/HAProxy relay to the SSH server: their configs take UPSTREAM when they start.
    UPSTREAM=$WS_SSHD
    for p in direct nginx haproxy; do start_peer "$p" tcp; done
    PEER_ADDR[direct]=$WS_SSHD
    for p in outpost outpost-primary; do ws_peer "$p"; done
    local c rep
    for c in "up $((W7_BYTES / MIB)) MiB" "down $((W7_BYTES / MIB)) MiB"; do
        for rep in $(seq 1 "$REPS"); do
            for p in direct outpost outpost-primary nginx haproxy; do
                if [ "${PEER_STATE[$p]}" != ok ]; then
                    [ "$rep" = 1 ] && rec 7 "$c" "$p" throughput MB/s higher 0 error "${PEER_NOTE[$p]:-not started}"
                    continue
                fi
                measure_rep w_scp 7 "$c" "$p" "$rep"
            done
        done
        log "W7: $c done ($(($(date +%s) - T_START)) s)"
    done
    for p in nginx haproxy; do stop_peer "$p"; done
    UPSTREAM=$saved
    ws_env_down
    rm -f "$W7_FILE"
}

# ---- web terminal (W8, W9) ----------------------------------------------------------------------------
# The terminal runs `stty raw -echo; exec cat`: every keystroke comes straight back from the PTY.
TERM_CMD='stty%20raw%20-echo%3B%20exec%20cat'

# term_args PEER: termload's --connect/--target/--header for one row (a fresh signed token for the proxy).
term_args() {
    local q="width=80&height=24&command=$TERM_CMD" tok
    case $1 in
    outpost)
        tok=$(curl -s -m 10 -H "Coder-Session-Token: $WS_SESSION" -H 'Content-Type: application/json' \
            -d "{\"url\":\"ws://$WS_PROXY/api/v2/workspaceagents/$WS_AGENT_ID/pty?$q\",\"agentID\":\"$WS_AGENT_ID\"}" \
            "http://$WS_PRIMARY/api/v2/applications/reconnecting-pty-signed-token" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["signed_token"])' 2>/dev/null)
        TERM_ARGS=(--connect "$WS_PROXY" --target
            "/api/v2/workspaceagents/$WS_AGENT_ID/pty?coder_signed_app_token_23db1dde=$tok&$q")
        ;;
    outpost-primary)
        TERM_ARGS=(--connect "$WS_PRIMARY" --target "/api/v2/workspaceagents/$WS_AGENT_ID/pty?$q"
            --header "Coder-Session-Token: $WS_SESSION")
        ;;
    *) TERM_ARGS=(--connect "${PEER_ADDR[$1]}" --target "/pty?$q") ;;
    esac
}

# measure_echo WL CASE PEER REP: W8_TERMS terminals, a keystroke every 10 ms each, open loop.
measure_echo() {
    local wl=$1 cs=$2 peer=$3 rep=$4 out m note
    term_args "$peer"
    if out=$(timeout 120 taskset -c "$LOAD_CPU" "$TERMLOAD" echo "${TERM_ARGS[@]}" --terminals "$W8_TERMS" \
        --interval-ms 10 --duration "$W8_SECS" --warmup "$W8_WARM" 2>>"$RUN/termload.err") && [ -n "$out" ]; then
        note="$(kv keystrokes <<<"$out") keystrokes, max $(kv max_us <<<"$out") us, $(kv errors <<<"$out") errors, $(kv unanswered <<<"$out") unanswered"
        rec "$wl" "$cs" "$peer" "p50 echo latency" us lower "$rep" "$(kv p50_us <<<"$out")" "$note"
        rec "$wl" "$cs" "$peer" "p99 echo latency" us lower "$rep" "$(kv p99_us <<<"$out")" "$note"
        rec "$wl" "$cs" "$peer" "p99.9 echo latency" us lower "$rep" "$(kv p999_us <<<"$out")" "$note"
    else
        for m in "p50 echo latency" "p99 echo latency" "p99.9 echo latency"; do
            rec "$wl" "$cs" "$peer" "$m" us lower "$rep" error "termload failed"
        done
    fi
}

# measure_idle_terms WL CASE PEER REP: W9_TERMS terminal WebSockets (one session) held through the row's
# relay; the relay's RSS growth per terminal.
measure_idle_terms() {
    local wl=$1 cs=$2 peer=$3 rep=$4 pg=${PEER_PID[$3]} r0 r1 lpid f="$RUN/termidle.out"
    term_args "$peer"
    sleep 0.2
    r0=$(group_rss_kb "$pg")
    : >"$f"
    setsid taskset -c "$LOAD_CPU" "$TERMLOAD" idle "${TERM_ARGS[@]}" --terminals "$W9_TERMS" --hold 300 \
        >"$f" 2>>"$RUN/termload.err" &
    lpid=$!
    PGIDS+=("$lpid")
    for _ in $(seq 1 1800); do # bounded: 180 s
        grep -q '^open=' "$f" && break
        kill -0 "$lpid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q '^open=' "$f"; then
        sleep 0.5
        r1=$(group_rss_kb "$pg")
        rec "$wl" "$cs" "$peer" "RSS per idle terminal" bytes lower "$rep" \
            "$(awk -v a="$r0" -v b="$r1" -v n="$W9_TERMS" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')" \
            "$W9_TERMS terminals; RSS $r0 -> $r1 KiB"
    else
        rec "$wl" "$cs" "$peer" "RSS per idle terminal" bytes lower "$rep" error "terminals did not open"
    fi
    kill_group "$lpid"
    sleep 1 # the streams behind them close before the next row measures its RSS
}

# ws_rows WL CASE FN PEERS: REPS interleaved repetitions of FN over the rows.
ws_rows() {
    local wl=$1 cs=$2 fn=$3 peers=$4 rep p
    for rep in $(seq 1 "$REPS"); do
        for p in $peers; do
            if [ "${PEER_STATE[$p]}" != ok ]; then
                [ "$rep" = 1 ] && rec "$wl" "$cs" "$p" "$5" "$6" lower 0 error "${PEER_NOTE[$p]:-not started}"
                continue
            fi
            measure_rep "$fn" "$wl" "$cs" "$p" "$rep"
            sleep 1.5 # the row's terminal sessions end (reconnect timeout 1 s) before the next row
        done
    done
    log "W$wl: $cs done ($(($(date +%s) - T_START)) s)"
}

# workload_8: keystroke echo latency, W8_TERMS terminals each typing every 10 ms: direct to the agent's
# terminal server, through proxy eu and the primary's region, through nginx and HAProxy TCP relays.
workload_8() {
    local saved=$UPSTREAM p
    ws_begin 8 || return 0
    UPSTREAM=$WS_PTYD
    for p in direct nginx haproxy; do start_peer "$p" tcp; done
    PEER_ADDR[direct]=$WS_PTYD
    for p in outpost outpost-primary; do ws_peer "$p"; done
    ws_rows 8 "$W8_TERMS terminals, a key every 10 ms" measure_echo "direct outpost outpost-primary nginx haproxy" \
        "p50 echo latency" us
    for p in nginx haproxy; do stop_peer "$p"; done
    UPSTREAM=$saved
    ws_env_down
}

# workload_9: memory per idle terminal WebSocket held through the relay (proxy eu, nginx, HAProxy). Every
# repetition gets a fresh environment and fresh relays: memory freed by an earlier repetition would be
# reused and hide the cost.
workload_9() {
    local saved=$UPSTREAM p rep cs="$W9_TERMS idle terminals"
    for rep in $(seq 1 "$REPS"); do
        ws_begin 9 || return 0
        UPSTREAM=$WS_PTYD
        for p in nginx haproxy; do start_peer "$p" tcp; done
        ws_peer outpost
        for p in outpost nginx haproxy; do
            if [ "${PEER_STATE[$p]}" != ok ]; then
                rec 9 "$cs" "$p" "RSS per idle terminal" bytes lower "$rep" error "${PEER_NOTE[$p]:-not started}"
                continue
            fi
            measure_rep measure_idle_terms 9 "$cs" "$p" "$rep"
        done
        for p in nginx haproxy; do stop_peer "$p"; done
        UPSTREAM=$saved
        ws_env_down
    done
    log "W9: $cs done ($(($(date +%s) - T_START)) s)"
}

# ---- workspace apps (W10) ------------------------------------------------------------------------------
# measure_app WL CASE PEER REP: wrk, HTTP_CONNS keep-alive connections for W10_SECS, GET of an N-byte body
# from the harness's upstream: through proxy eu as the workspace's public path app "bench" (the signed-token
# cookie an anonymous visitor got once; the token check, the agent stream and the agent's own request to
# the app on every request), through nginx and HAProxy HTTP reverse proxies straight to the same server
# (no auth: the ceiling), and through Outpost's relay engine in HTTP mode (the same engine without the
# workspace path). req/s, p50 and p99.
measure_app() {
    local wl=$1 cs=$2 peer=$3 rep=$4 size=${2%% *} url out rps p50 p99 errs
    local -a hdr=()
    if [ "$peer" = outpost ]; then
        url=http://$WS_PROXY/@admin/ws/apps/bench/$size
        hdr=(-H "Cookie: $WS_APP_COOKIE")
    else
        url=http://${PEER_ADDR[$peer]}/$size
    fi
    out=$(timeout $((W10_SECS + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$HTTP_CONNS" -d"${W10_SECS}s" --latency \
        "${hdr[@]}" "$url" 2>&1)
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    # wrk's percentiles come as 1.23ms / 456.78us / 1.02s
    us() { awk -v p="$1" '$1 == p {v = $2; m = 1; if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000;
        sub(/[a-z]+$/, "", v); printf "%.0f", v * m}' <<<"$out"; }
    p50=$(us 50%) p99=$(us 99%)
    errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    if [ -n "$rps" ] && [ -n "$p99" ] && [ -z "$errs" ]; then
        rec "$wl" "$cs" "$peer" "requests per second" req/s higher "$rep" "$rps" "$HTTP_CONNS connections"
        rec "$wl" "$cs" "$peer" "p50 latency" us lower "$rep" "$p50" ""
        rec "$wl" "$cs" "$peer" "p99 latency" us lower "$rep" "$p99" ""
    else
        local why="wrk: ${errs:-no result} $(tail -n 2 <<<"$out" | tr '\n' ' ')"
        rec "$wl" "$cs" "$peer" "requests per second" req/s higher "$rep" error "$why"
        rec "$wl" "$cs" "$peer" "p50 latency" us lower "$rep" error "$why"
        rec "$wl" "$cs" "$peer" "p99 latency" us lower "$rep" error "$why"
    fi
}

# workload_10: workspace app requests (100 B and 16 KiB, keep-alive): proxy eu against the no-auth
# ceiling of nginx/HAProxy proxying to the same app server, and Outpost's bare relay engine.
workload_10() {
    local p i cs
    ws_begin 10 || return 0
    WS_APP_COOKIE=""
    for ((i = 0; i < 100; i++)); do # the agent reports its app with its first report
        WS_APP_COOKIE=$(curl -s -o /dev/null -D - "http://$WS_PROXY/@admin/ws/apps/bench/100" |
            sed -n 's/^Set-Cookie: \(coder_signed_app_token=[^;]*\).*/\1/p' | tr -d '\r')
        [ -n "$WS_APP_COOKIE" ] && break
        sleep 0.2
    done
    if [ -z "$WS_APP_COOKIE" ]; then
        log "W10: no signed app token for the public app (see $WS_DIR/proxy.log)"
        ws_env_down
        return 0
    fi
    for p in nginx haproxy outpost-relay; do start_peer "$p" http; done
    ws_peer outpost
    for cs in "100 B body" "16384 B body"; do
        ws_rows 10 "$cs" measure_app "outpost outpost-relay nginx haproxy" "requests per second" req/s
    done
    for p in nginx haproxy outpost-relay; do stop_peer "$p"; done
    ws_env_down
}
