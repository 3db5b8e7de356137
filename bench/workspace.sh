# bench/workspace.sh — sourced by bench/run.sh: the workloads that go through the whole workspace path
# (client → region → agent stream → agent), not just the relay engine. Uses run.sh's helpers (rec,
# free_ports, wait_listen, kill_group, start_peer, run_group, PEER_*). See bench/README.md, workload 7.
#
# The environment: a primary and one workspace proxy "eu" (the relay under test: pinned to RELAY_CPU,
# one worker), a workspace "ws" whose `outpost agent` dials out to both, all on loopback; the primary,
# the agent, the clients and the SSH server run on LOAD_CPU. For the direct row the same SSH server code
# (agent/ssh.h) listens on a port (bench/agent_sshd); nginx and HAProxy relay plain TCP to that port.

WS_DIR="" WS_PRIMARY_PID="" WS_PROXY_PID="" WS_AGENT_PID="" WS_SSHD_PID="" WS_SSHD=""
WS_ENV=()

# ws_env_up: starts the primary, proxy eu, the agent and agent_sshd. 0 when the agent is connected to both
# regions (bounded: 30 s), else 1 with the reason logged.
ws_env_up() {
    local ports pp qp sp i out token
    WS_DIR=$RUN/workspace
    mkdir -p "$WS_DIR/ws" "$WS_DIR/cli"
    read -r -a ports < <(free_ports 3)
    pp=${ports[0]} qp=${ports[1]} sp=${ports[2]}
    WS_ENV=(env -u CODER_URL -u CODER_SESSION_TOKEN -u CODER_AGENT_TOKEN CODER_CONFIG_DIR="$WS_DIR/cli")
    setsid taskset -c "$LOAD_CPU" "${WS_ENV[@]}" "$OUTPOST_BIN" server --http-address "127.0.0.1:$pp" \
        --access-url "http://127.0.0.1:$pp" --data-dir "$WS_DIR/data" \
        >"$WS_DIR/primary.log" 2>&1 </dev/null &
    WS_PRIMARY_PID=$!
    PGIDS+=("$WS_PRIMARY_PID")
    wait_listen "$WS_PRIMARY_PID" "$pp" || { log "W7: the primary did not start"; return 1; }
    "${WS_ENV[@]}" "$OUTPOST_BIN" login "http://127.0.0.1:$pp" --first-user-username admin \
        --first-user-email admin@example.com --first-user-password 'Bench-Pass-1' >"$WS_DIR/login.log" 2>&1 ||
        { log "W7: login failed"; return 1; }
    token=$("${WS_ENV[@]}" "$OUTPOST_BIN" wsproxy create --name eu --only-token 2>>"$WS_DIR/login.log" | tail -n 1)
    setsid taskset -c "$RELAY_CPU" env CODER_PROXY_SESSION_TOKEN="$token" "$OUTPOST_BIN" wsproxy server \
        --primary-access-url "http://127.0.0.1:$pp" --http-address "127.0.0.1:$qp" \
        --access-url "http://127.0.0.1:$qp" --workers "$WORKERS" --log-level warn \
        >"$WS_DIR/proxy.log" 2>&1 </dev/null &
    WS_PROXY_PID=$!
    PGIDS+=("$WS_PROXY_PID")
    wait_listen "$WS_PROXY_PID" "$qp" || { log "W7: the proxy did not start"; return 1; }
    out=$("${WS_ENV[@]}" "$OUTPOST_BIN" create ws 2>&1) || { log "W7: create ws: $out"; return 1; }
    token=$(sed -n 's/^CODER_AGENT_TOKEN=//p' <<<"$out")
    (cd "$WS_DIR/ws" && exec setsid taskset -c "$LOAD_CPU" env CODER_AGENT_URL="http://127.0.0.1:$pp" \
        CODER_AGENT_TOKEN="$token" "$OUTPOST_BIN" agent --data-dir "$WS_DIR/agent-data" --log-level warn \
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
    [ "$i" -lt 150 ] || { log "W7: the agent did not connect to primary and eu (see $WS_DIR/agent.log)"; return 1; }
    setsid taskset -c "$LOAD_CPU" "$SSHD" --listen "127.0.0.1:$sp" --data-dir "$WS_DIR/sshd-data" \
        >"$WS_DIR/sshd.log" 2>&1 </dev/null &
    WS_SSHD_PID=$!
    PGIDS+=("$WS_SSHD_PID")
    wait_listen "$WS_SSHD_PID" "$sp" || { log "W7: agent_sshd did not start"; return 1; }
    WS_SSHD=127.0.0.1:$sp
    return 0
}

ws_env_down() {
    local p
    for p in "$WS_SSHD_PID" "$WS_AGENT_PID" "$WS_PROXY_PID" "$WS_PRIMARY_PID"; do [ -n "$p" ] && kill_group "$p"; done
    WS_SSHD_PID="" WS_AGENT_PID="" WS_PROXY_PID="" WS_PRIMARY_PID=""
}

# The outpost rows of W7 are regions of the running environment, not relays started per workload.
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
    if [ $OUTPOST_OK = 0 ]; then
        log "W7: skipped (${OUTPOST_NOTE})"
        return 0
    fi
    if ! ws_env_up; then
        ws_env_down
        return 0
    fi
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
                bg_begin "$p"
                w_scp 7 "$c" "$p" "$rep"
                bg_end 7 "$c" "$p" "$rep"
            done
        done
        log "W7: $c done ($(($(date +%s) - T_START)) s)"
    done
    for p in nginx haproxy; do stop_peer "$p"; done
    UPSTREAM=$saved
    ws_env_down
    rm -f "$W7_FILE"
}
