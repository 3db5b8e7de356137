#!/usr/bin/env bash
# scripts/quickstart.sh — Outpost in one command, on this machine, on loopback:
#   builds Outpost if needed, starts a primary (embedded SQLite store) with a first owner, creates the
#   workspace proxy "demo-proxy" (or regenerates its token when it already exists), starts
#   `outpost wsproxy server` for it, waits until `outpost wsproxy ls` shows both regions ok, then starts a
#   demo workspace: `outpost create demo` (or a new agent token when it exists), a tiny demo app (Python
#   http.server in a temp dir) and `outpost agent --app slug=web,...` for it, waits until `outpost list`
#   shows the agent connected to both regions, prints both tables and what to try next, then stays in the
#   foreground. Ctrl-C stops everything cleanly (the agent first: it reports itself disconnected). Re-runnable.
#
# State lives in ${XDG_DATA_HOME:-~/.local/share}/outpost-quickstart (database, CLI session, logs, and the
# generated owner password, mode 0600). Environment knobs: OUTPOST_BIN (binary to use),
# OUTPOST_QS_PRIMARY_PORT / OUTPOST_QS_PROXY_PORT / OUTPOST_QS_APP_PORT (defaults 7080 / 7081 / 7082, or the
# next free port),
# OUTPOST_QS_TIMEOUT (seconds to wait for "ok", default 60).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}/outpost-quickstart
OUTPOST=${OUTPOST_BIN:-$ROOT/build/rel/outpost}
TIMEOUT=${OUTPOST_QS_TIMEOUT:-60}
PROXY_NAME=demo-proxy

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# --- build what is missing ---
if [ -z "${OUTPOST_BIN:-}" ]; then # our own build: bring it up to date (a no-op when it is)
    [ -x "$OUTPOST" ] || say "Building Outpost (first run: installs build dependencies with apt, then make)"
    (cd "$ROOT" && scripts/deps.sh && make -j2 --no-print-directory >/dev/null) || die "build failed; see the output above"
fi
[ -x "$OUTPOST" ] || die "no outpost binary at $OUTPOST"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # pick_port PREFERRED: the preferred port, or the next free one
    local p=$1 i
    for ((i = 0; i < 200; i++)); do
        port_free $((p + i)) && { echo $((p + i)); return; }
    done
    die "no free port near $1"
}

mkdir -p "$DATA"
chmod 700 "$DATA"
export CODER_CONFIG_DIR=$DATA/cli # keep the quickstart's session apart from the user's own
PPORT=$(pick_port "${OUTPOST_QS_PRIMARY_PORT:-7080}")
XPORT=${OUTPOST_QS_PROXY_PORT:-7081}
[ "$XPORT" = "$PPORT" ] && XPORT=$((XPORT + 1))
XPORT=$(pick_port "$XPORT")
[ "$XPORT" = "$PPORT" ] && XPORT=$(pick_port $((PPORT + 1)))
PRIMARY_URL=http://127.0.0.1:$PPORT

PIDS=()
stopping=0
stop_all() {
    [ $stopping = 1 ] && return
    stopping=1
    echo
    say "Stopping (the agent reports itself disconnected, the proxy deregisters from the primary)"
    local i p
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do # agent, demo app, proxy, then the primary
        p=${PIDS[$i]}
        kill -TERM "$p" 2>/dev/null || continue
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    say "Stopped. Run scripts/quickstart.sh again to pick up where you left off (data: $DATA)."
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

say "Starting the primary on $PRIMARY_URL (data: $DATA)"
"$OUTPOST" server --http-address "127.0.0.1:$PPORT" --access-url "$PRIMARY_URL" --data-dir "$DATA/primary" \
    --wildcard-access-url "*.primary.localhost:$PPORT" --proxy-health-interval 5s >"$DATA/primary.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do
    port_free "$PPORT" || break
    kill -0 "${PIDS[0]}" 2>/dev/null || { tail -n 20 "$DATA/primary.log" >&2; die "the primary exited"; }
    sleep 0.1
done
port_free "$PPORT" && die "the primary is not listening on $PPORT (log: $DATA/primary.log)"

PWFILE=$DATA/admin-password
if [ ! -s "$PWFILE" ]; then
    PW="Qs-$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20)-7x"
    (umask 077 && printf '%s\n' "$PW" >"$PWFILE")
    "$OUTPOST" login "$PRIMARY_URL" --first-user-username admin --first-user-email admin@example.com \
        --first-user-password "$PW" </dev/null >"$DATA/login.log" 2>&1 || { cat "$DATA/login.log" >&2; rm -f "$PWFILE"; die "could not create the first owner"; }
    say "Created the first owner: username admin, password $PW"
    echo "    (shown once; it is also stored in $PWFILE, mode 0600)"
else
    "$OUTPOST" login "$PRIMARY_URL" --username admin --password "$(cat "$PWFILE")" </dev/null >"$DATA/login.log" 2>&1 ||
        { cat "$DATA/login.log" >&2; die "could not log in as admin (password in $PWFILE)"; }
    say "Logged in as admin (password in $PWFILE)"
fi

"$OUTPOST" wsproxy ls -o json >"$DATA/ls.json" 2>&1 || { cat "$DATA/ls.json" >&2; die "wsproxy ls failed"; }
TOKEN=
if grep -qE "\"name\":[[:space:]]*\"$PROXY_NAME\"" "$DATA/ls.json"; then
    TOKEN=$("$OUTPOST" wsproxy regenerate-token "$PROXY_NAME" --only-token </dev/null 2>"$DATA/token.log" | tail -n 1) || true
    say "Workspace proxy $PROXY_NAME exists: issued it a new token"
else
    TOKEN=$("$OUTPOST" wsproxy create --name "$PROXY_NAME" --display-name "Demo Proxy" --icon /emojis/1f5fa.png \
        --only-token </dev/null 2>"$DATA/token.log" |
        tail -n 1) || true
    say "Created workspace proxy $PROXY_NAME"
fi
[[ $TOKEN == *:* ]] || { cat "$DATA/token.log" >&2; die "no proxy token"; }

say "Starting outpost wsproxy server on http://127.0.0.1:$XPORT"
CODER_PROXY_SESSION_TOKEN=$TOKEN "$OUTPOST" wsproxy server --primary-access-url "$PRIMARY_URL" \
    --http-address "127.0.0.1:$XPORT" --wildcard-access-url "*.proxy.localhost:$XPORT" >"$DATA/proxy.log" 2>&1 &
PIDS+=($!)
unset TOKEN

say "Waiting for both regions to be ok (up to ${TIMEOUT}s)"
okay=0
for ((i = 0; i < TIMEOUT * 4; i++)); do
    kill -0 "${PIDS[1]}" 2>/dev/null || { tail -n 20 "$DATA/proxy.log" >&2; die "the proxy exited"; }
    if "$OUTPOST" wsproxy ls >"$DATA/ls.out" 2>&1 && grep -qE '^primary +.* ok *$' "$DATA/ls.out" &&
        grep -qE "^$PROXY_NAME +.* ok *\$" "$DATA/ls.out"; then
        okay=1
        break
    fi
    sleep 0.25
done
[ $okay = 1 ] || { cat "$DATA/ls.out" >&2; die "the regions did not become ok (logs in $DATA)"; }

# --- the demo workspace: its agent and a demo app ---
APORT=${OUTPOST_QS_APP_PORT:-7082}
for used in "$PPORT" "$XPORT"; do [ "$APORT" = "$used" ] && APORT=$((APORT + 1)); done
APORT=$(pick_port "$APORT")
for used in "$PPORT" "$XPORT"; do [ "$APORT" = "$used" ] && APORT=$(pick_port $((APORT + 1))); done
if "$OUTPOST" list -o json 2>/dev/null | grep -qE '"name":[[:space:]]*"demo"'; then
    ATOKEN=$("$OUTPOST" agent-token demo </dev/null 2>"$DATA/agent-token.log" | sed -n 's/^CODER_AGENT_TOKEN=//p') || true
    say "Workspace demo exists: issued its agent a new token"
else
    ATOKEN=$("$OUTPOST" create demo </dev/null 2>"$DATA/agent-token.log" | sed -n 's/^CODER_AGENT_TOKEN=//p') || true
    say "Created workspace demo"
fi
[[ $ATOKEN == *:* ]] || { cat "$DATA/agent-token.log" >&2; die "no agent token for the demo workspace"; }
mkdir -p "$DATA/demo-workspace/app"
cat >"$DATA/demo-workspace/app/index.html" <<HTML
<!doctype html><title>Outpost demo app</title><h1>Hello from the demo workspace</h1>
<p>Served by python3 -m http.server inside the workspace, reached through an Outpost region.</p>
HTML
say "Starting the demo app (python3 -m http.server) on 127.0.0.1:$APORT and outpost agent for workspace demo"
(cd "$DATA/demo-workspace/app" && exec python3 -m http.server "$APORT" --bind 127.0.0.1) >"$DATA/demo-app.log" 2>&1 &
PIDS+=($!)
(cd "$DATA/demo-workspace" && CODER_AGENT_URL=$PRIMARY_URL CODER_AGENT_TOKEN=$ATOKEN exec "$OUTPOST" agent \
    --app "slug=web,url=http://127.0.0.1:$APORT,name=Demo Web,share=owner") >"$DATA/agent.log" 2>&1 &
PIDS+=($!)
unset ATOKEN
okay=0
for ((i = 0; i < TIMEOUT * 4; i++)); do
    kill -0 "${PIDS[3]}" 2>/dev/null || { tail -n 20 "$DATA/agent.log" >&2; die "the agent exited"; }
    if "$OUTPOST" list >"$DATA/list.out" 2>&1 &&
        grep -qE "^admin/demo +main +connected +web +.*(demo-proxy,primary|primary,demo-proxy)" "$DATA/list.out"; then
        okay=1
        break
    fi
    sleep 0.25
done
[ $okay = 1 ] || { cat "$DATA/list.out" >&2; die "the demo agent did not connect to both regions (log: $DATA/agent.log)"; }

echo
"$OUTPOST" wsproxy ls
echo
"$OUTPOST" list
cat <<EOF


Outpost is running: a primary at $PRIMARY_URL, the workspace proxy "$PROXY_NAME" at http://127.0.0.1:$XPORT,
and the workspace "demo" whose agent serves the demo app (port $APORT inside the workspace) through both.

Dashboard: $PRIMARY_URL/   (sign in as admin; the password is in $PWFILE): your workspaces, the demo
app through the region you pick at the top right, and Deployment -> Workspace Proxies.

Or open the demo app directly, through the proxy:
  http://127.0.0.1:$XPORT/@admin/demo/apps/web/                  path app
  http://web--main--demo--admin.proxy.localhost:$XPORT/          subdomain app (*.localhost is loopback)
  http://$APORT--main--demo--admin.proxy.localhost:$XPORT/       the same port, as a port URL

Try next (in another terminal):
  export CODER_CONFIG_DIR=$DATA/cli
  $OUTPOST wsproxy ls -o json                      # status and health report of every region
  curl -s http://127.0.0.1:$XPORT/healthz-report    # what the proxy reports to the primary
  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | $OUTPOST tcp demo $APORT --proxy $PROXY_NAME
                                                   # the demo app, through the proxy, from the workspace
  $OUTPOST proxy ls                                # regions with latency; outpost proxy use NAME|auto
  $OUTPOST wsproxy create --name eu                # another region; run the command it prints
  tail -f $DATA/proxy.log $DATA/agent.log          # heartbeats, connections and errors

Press Ctrl-C to stop everything.
EOF

# Stay in the foreground until Ctrl-C, or until one of them exits.
while :; do
    for p in "${PIDS[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "quickstart: a process exited unexpectedly; logs: $DATA/primary.log, $DATA/proxy.log," \
                "$DATA/agent.log, $DATA/demo-app.log" >&2
            exit 1
        fi
    done
    sleep 1 &
    wait $! || true
done
