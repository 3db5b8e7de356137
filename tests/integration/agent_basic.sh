#!/usr/bin/env bash
# tests/integration/agent_basic.sh — `outpost agent` with real processes on loopback: `outpost server`, login,
# `outpost create ws`, the agent started with the printed token in a temp-dir "workspace" with a Python HTTP
# server as its app; `outpost list` shows it connected with its app and the Python server's port (found in
# /proc/net/tcp), `ss -ltnp` shows no listening socket owned by the agent, a port opened later appears
# within a few seconds, a wrong token and a regenerated one exit 77 with the cause, SIGTERM marks the agent
# disconnected at once (exit 0).
. "$(dirname "$0")/../lib/common.sh"
command -v ss >/dev/null || { echo "ss missing"; exit 77; }
unset CODER_URL CODER_SESSION_TOKEN CODER_CONFIG_DIR CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
bg server "$OUTPOST" server --http-address "127.0.0.1:$PORT" --data-dir "$T/data" --agent-heartbeat-interval 2s
wait_port "$PORT"
G=(--global-config "$T/cfg")
"$OUTPOST" login "$URL" "${G[@]}" --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Admin-Pass-1' >/dev/null 2>&1 || fail "login"
"$OUTPOST" create ws "${G[@]}" >"$T/create.out" 2>&1 || fail "create ws: $(cat "$T/create.out")"
TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' "$T/create.out")
[ -n "$TOKEN" ] || fail "no token printed by create"

# The workspace: a temp dir with a Python HTTP server in it.
mkdir -p "$T/ws" && echo hello >"$T/ws/index.html"
APP_PORT=$(free_port)
(cd "$T/ws" && exec python3 -m http.server "$APP_PORT" --bind 127.0.0.1) >"$T/app.log" 2>&1 &
PIDS+=($!)
wait_port "$APP_PORT"

status() { # the agent's JSON from outpost list -o json
    "$OUTPOST" list "${G[@]}" -o json | python3 -c '
import json,sys
ws=json.load(sys.stdin)
a=ws[0]["latest_build"]["resources"][0]["agents"][0]
print(json.dumps(a))'
}
field() { python3 -c "import json,sys; a=json.loads(sys.argv[1]); print($2)" "$1"; }
wait_for() { # wait_for SECONDS PYTHON-EXPR-ON-a
    local limit=$1 expr=$2 i a
    for ((i = 0; i < limit * 5; i++)); do
        a=$(status)
        [ "$(field "$a" "$expr")" = True ] && return 0
        sleep 0.2
    done
    echo "last status: $a" >&2
    return 1
}

cd "$T/ws"
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg agent "$OUTPOST" agent \
    --app "slug=web,url=http://127.0.0.1:$APP_PORT,name=Web,share=authenticated" --ports-interval 1s
AGENT_PID=$LAST_PID
cd "$ROOT"
wait_for 10 "a['status']=='connected' and a['lifecycle_state']=='ready'" || fail "agent not connected"
a=$(status)
[ "$(field "$a" "[x['slug'] for x in a['apps']]==['web'] and a['apps'][0]['sharing_level']=='authenticated' and a['apps'][0]['display_name']=='Web'")" = True ] ||
    fail "apps: $a"
wait_for 5 "$APP_PORT in [p['port'] for p in a['listening_ports']]" || fail "the app's port is not listed"
out=$("$OUTPOST" list "${G[@]}")
grep -Eq "^admin/ws +main +connected +web +.*$APP_PORT" <<<"$out" || fail "outpost list: $out"
ok "outpost list shows the agent connected with its app web and port $APP_PORT"
# The port's process, from /proc: python3 serves the app.
wait_for 5 "[p.get('process_name') for p in a['listening_ports'] if p['port']==$APP_PORT]==['python3']" ||
    fail "the app's port has no process name python3"
grep -Eq "$APP_PORT\(python3\)" <<<"$("$OUTPOST" list "${G[@]}")" || fail "outpost list shows no process name"
ok "the app's port $APP_PORT is reported with its process name python3, and outpost list shows it"

# Outbound only: no listening socket belongs to the agent.
ss -ltnpH >"$T/ss.out" 2>&1 || fail "ss"
grep -q "pid=$AGENT_PID," "$T/ss.out" && fail "the agent listens: $(grep "pid=$AGENT_PID," "$T/ss.out")"
grep -q "pid=" "$T/ss.out" || fail "ss shows no process names (cannot prove anything)"
ok "ss -ltnp: no listening socket owned by the agent (pid $AGENT_PID)"

# A port opened later is reported within a few seconds; closing it removes it.
LATE=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$LATE)); s.listen(); time.sleep(6)" &
LATE_PID=$!
wait_for 5 "[p.get('process_name') for p in a['listening_ports'] if p['port']==$LATE]==['python3']" ||
    fail "port $LATE not reported with its process name"
kill $LATE_PID 2>/dev/null; wait $LATE_PID 2>/dev/null
wait_for 5 "$LATE not in [p['port'] for p in a['listening_ports']]" || fail "port $LATE still reported"
ok "a port opened later is reported, and leaves when closed"

# A wrong token: exit 77 with the primary's cause.
BADTOKEN="${TOKEN%?}$([ "${TOKEN: -1}" = a ] && echo b || echo a)"
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$BADTOKEN timeout 20 "$OUTPOST" agent >"$T/bad.log" 2>&1; rc=$?
[ $rc -eq 77 ] || fail "wrong token: exit $rc, want 77: $(cat "$T/bad.log")"
grep -q 'the primary refused the agent token.*invalid or was regenerated' "$T/bad.log" || fail "wrong token cause: $(cat "$T/bad.log")"
ok "a wrong token exits 77 naming the cause"

# SIGTERM: disconnected at once, exit 0.
kill -TERM "$AGENT_PID"
for ((i = 0; i < 50; i++)); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AGENT_PID" 2>/dev/null && fail "the agent did not exit within 5 s of SIGTERM"
wait "$AGENT_PID"; rc=$?
[ $rc -eq 0 ] || fail "SIGTERM exit code $rc"
a=$(status)
[ "$(field "$a" "a['status']=='disconnected' and a['lifecycle_state']=='off'")" = True ] || fail "after SIGTERM: $a"
ok "SIGTERM: exit 0 and the agent is disconnected at once"

# A regenerated token locks the running agent out: it exits 77.
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg agent2 "$OUTPOST" agent --manifest-interval 500ms
A2=$LAST_PID
wait_for 10 "a['status']=='connected' and a['lifecycle_state']=='ready'" || fail "agent 2 not connected"
"$OUTPOST" agent-token ws "${G[@]}" >"$T/regen.out" 2>&1 || fail "agent-token: $(cat "$T/regen.out")"
for ((i = 0; i < 50; i++)); do kill -0 "$A2" 2>/dev/null || break; sleep 0.1; done
kill -0 "$A2" 2>/dev/null && fail "the old agent still runs 5 s after its token was regenerated"
wait "$A2"; rc=$?
[ $rc -eq 77 ] || fail "regenerated token: exit $rc, want 77"
grep -q 'the primary refused the agent token' "$T/agent2.log" || fail "no cause logged: $(tail -3 "$T/agent2.log")"
ok "a regenerated token locks the old agent out (exit 77 within the manifest interval)"
