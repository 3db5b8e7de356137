#!/usr/bin/env bash
# Users, external workspaces and agents with real processes: `outpost server`, `outpost login`, `users create`,
# a member's login, `create` / `list` / `delete` / `agent-token`, the agent API with curl (Coder-Session-Token),
# agent status (connecting, connected, disconnected, timeout) with short windows, a member refused another
# user's workspace, exit codes and messages, and no token or password in the database files.
. "$(dirname "$0")/../lib/common.sh"
command -v curl >/dev/null || { echo "curl missing"; exit 77; }
fails=0
pass() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else bad "$what"; fi; }
has() { grep -qE -- "$2" <<<"$1"; } # has TEXT REGEX
py() { python3 -c "$@"; }

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
unset CODER_URL CODER_SESSION_TOKEN CODER_CONFIG_DIR
bg server "$OUTPOST" server --http-address "127.0.0.1:$PORT" --data-dir "$T/data" \
    --agent-heartbeat-interval 1s --agent-connection-timeout 6s --proxy-health-interval 1s
wait_port "$PORT"
ADMIN=(--global-config "$T/admin")
ALICE=(--global-config "$T/alice")
CAROL=(--global-config "$T/carol")
op() { "$OUTPOST" "$@"; }

out=$(op login "$URL" "${ADMIN[@]}" --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Admin-Pass-1' 2>&1)
check "first user logs in: $out" has "$out" "Welcome to Outpost, admin"

# --- users ---
out=$(op users create "${ADMIN[@]}" --username alice --email alice@example.com --password 'Alice-Pass-1' 2>&1); rc=$?
check "users create alice: exit 0, message" test $rc -eq 0 -a "$(head -1 <<<"$out")" = 'User "alice" created (member).'
out=$(op users create "${ADMIN[@]}" -u carol -e carol@example.com -p 'Carol-Pass-1' --role member 2>&1)
check "users create carol (short flags)" has "$out" '^User "carol" created \(member\)\.$'
out=$(op users create "${ADMIN[@]}" -u ops -e ops@example.com -p 'Ops-Pass-1' --role owner -o json 2>&1)
check "users create --role owner -o json" py "import json,sys; u=json.loads(sys.argv[1]); assert u['username']=='ops' and u['roles'][0]['name']=='owner'" "$out"
op users create "${ADMIN[@]}" -u dave -e dave@example.com </dev/null >/dev/null 2>"$T/err"; rc=$?
check "users create without --password on a non-TTY: EX_USAGE, cause: $(cat "$T/err")" \
    bash -c "test $rc -eq 64 && grep -q 'stdin is not a terminal; pass --password' '$T/err'"
op users create "${ADMIN[@]}" -u dave -e dave@example.com -p 'x-123456' --role admin >/dev/null 2>"$T/err"; rc=$?
check "users create --role admin: EX_USAGE" bash -c "test $rc -eq 64 && grep -q 'role must be owner or member' '$T/err'"
op users create "${ADMIN[@]}" -u ALICE -e other@example.com -p 'x-123456' >/dev/null 2>"$T/err"; rc=$?
check "duplicate user: EX_DATAERR and the primary's message" \
    bash -c "test $rc -eq 65 && grep -q 'outpost users create: creating the user failed: User already exists.' '$T/err'"
op users create "${ADMIN[@]}" -u dave -e not-an-email -p 'x-123456' >/dev/null 2>"$T/err"; rc=$?
check "invalid email: EX_DATAERR with the field: $(cat "$T/err")" bash -c "test $rc -eq 65 && grep -q 'email: Validation failed' '$T/err'"
# On a terminal the password is prompted for without echo (a pty from Python, bounded to 15 s; the script must not be named tty.py, which shadows a module pty imports).
cat >"$T/answer_prompt.py" <<'PY'
import os, pty, select, sys, time
prompt, answer, argv = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out, sent, end = b"", False, time.time() + 15
while time.time() < end:
    if not sent and prompt in out:
        os.write(fd, answer + b"\n"); sent = True
    r, _, _ = select.select([fd], [], [], 0.2)
    try:
        chunk = os.read(fd, 4096) if r else b"?"
    except OSError:
        chunk = b""
    if not chunk:
        break
    if r:
        out += chunk
else:
    os.kill(pid, 9)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
out=$(python3 "$T/answer_prompt.py" "Password:" "Prompted-Pass-1" "$OUTPOST" users create "${ADMIN[@]}" -u pat -e pat@example.com 2>&1); rc=$?
check "users create prompts for the password on a terminal, without echo" \
    bash -c "test $rc -eq 0 && grep -q 'User \"pat\" created (member).' <<<'$out' && ! grep -q Prompted-Pass-1 <<<'$out'"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"username":"pat","password":"Prompted-Pass-1"}' "$URL/api/v2/users/login")
check "the prompted password is the one set -> login 201" test "$code" = 201
out=$(op users delete pat "${ADMIN[@]}")
check "users delete pat" test "$out" = 'User "pat" deleted successfully'
out=$(op users list "${ADMIN[@]}")
check "users list: header and rows" bash -c "grep -Eq '^USERNAME +EMAIL +ROLE +CREATED AT +STATUS$' <<<'$out' &&
    grep -Eq '^alice +alice@example.com +member +[0-9T:.-]+Z +active$' <<<'$out' && grep -Eq '^ops +ops@example.com +owner ' <<<'$out'"
out=$(op users ls "${ADMIN[@]}" -c username,role)
check "users ls -c username,role" test "$(sed -n 1p <<<"$out" | tr -s ' ')" = "USERNAME ROLE"
out=$(op users list "${ADMIN[@]}" -o json)
check "users list -o json: 4 users" py "import json,sys; assert [u['username'] for u in json.loads(sys.argv[1])]==['admin','alice','carol','ops']" "$out"
op users list "${ADMIN[@]}" -c nope >/dev/null 2>"$T/err"; rc=$?
check "users list bad column: EX_USAGE" bash -c "test $rc -eq 64 && grep -q 'outpost users list: unknown column \"nope\"' '$T/err'"

out=$(op login "$URL" "${ALICE[@]}" --username alice --password 'Alice-Pass-1' 2>&1)
check "member alice logs in with the existing login: $out" has "$out" "alice"
op login "$URL" "${CAROL[@]}" --username carol --password 'Carol-Pass-1' >/dev/null 2>&1
ALICE_SESSION=$(cat "$T/alice/session")
CAROL_SESSION=$(cat "$T/carol/session")
op users create "${ALICE[@]}" -u eve -e eve@example.com -p 'x-123456' >/dev/null 2>"$T/err"; rc=$?
check "a member cannot create users: EX_NOPERM" bash -c "test $rc -eq 77 && grep -q 'Forbidden.' '$T/err'"

# --- workspaces ---
out=$(op create dev "${ALICE[@]}" 2>&1); rc=$?
check "create dev: exit 0" test $rc -eq 0
check "create prints the token once, as CODER_AGENT_TOKEN=" test "$(grep -c 'CODER_AGENT_TOKEN=[0-9a-f-]\{36\}:' <<<"$out")" = 1
check "create names the workspace and the agent" bash -c "grep -q '^Workspace \"alice/dev\" created.' <<<'$out' && grep -q '^Agent \"main\":$' <<<'$out'"
check "create explains how to start the agent" has "$out" "CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=<token> outpost agent"
DEV_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' <<<"$out")
out=$(op create ci --owner alice --agent build --agent test "${ADMIN[@]}" 2>&1)
check "owner creates ci for alice with two agents" test "$(grep -c '^CODER_AGENT_TOKEN=' <<<"$out")" = 2
BUILD_TOKEN=$(grep -A1 '^Agent "build":' <<<"$out" | sed -n 's/^CODER_AGENT_TOKEN=//p')
op create dev "${ALICE[@]}" >/dev/null 2>"$T/err"; rc=$?
check "duplicate workspace: EX_DATAERR: $(cat "$T/err")" bash -c "test $rc -eq 65 && grep -q 'Workspace \"dev\" already exists.' '$T/err'"
op create carol/x "${ALICE[@]}" >/dev/null 2>"$T/err"; rc=$?
check "member creates a workspace for another user: EX_NOPERM" bash -c "test $rc -eq 77 && grep -q 'Forbidden.' '$T/err'"
op create 'bad name' "${ALICE[@]}" >/dev/null 2>"$T/err"; rc=$?
check "invalid workspace name: EX_USAGE" test $rc -eq 64
op create x --owner nobody "${ADMIN[@]}" >/dev/null 2>"$T/err"; rc=$?
check "unknown owner: EX_DATAERR" bash -c "test $rc -eq 65 && grep -q 'user \"nobody\" not found' '$T/err'"

out=$(op list "${ALICE[@]}")
check "list: header" test "$(sed -n 1p <<<"$out" | tr -s ' ')" = "WORKSPACE AGENT STATUS APPS PORTS REGIONS"
check "list: alice/dev main connecting" has "$out" '^alice/dev +main +connecting$'
check "list: alice/ci has build and test" bash -c "grep -Eq '^alice/ci +build +connecting' <<<'$out' && grep -Eq '^alice/ci +test +connecting' <<<'$out'"
out=$(op ls "${ADMIN[@]}")
check "an owner's list shows only their own by default" test "$(wc -l <<<"$out")" = 1
out=$(op list -a "${ADMIN[@]}" -c workspace,agent)
check "list -a shows all users' workspaces to an owner" test "$(grep -c '^alice/' <<<"$out")" = 3
out=$(op list -a "${CAROL[@]}")
check "list -a shows a member nothing of others" test "$(wc -l <<<"$out")" = 1

# --- the agent API with curl ---
agent() { curl -s -H "Coder-Session-Token: $1" "${@:2}"; }
body=$(agent "$DEV_TOKEN" "$URL/api/v2/workspaceagents/me/manifest")
check "manifest: identity and the primary region: $body" py "import json,sys; m=json.loads(sys.argv[1]); assert m['agent_name']=='main' and m['workspace_name']=='dev' and m['owner_name']=='alice' and [r['name'] for r in m['regions']]==['primary'] and m['regions'][0]['access_url']=='$URL'" "$body"
code=$(agent "${DEV_TOKEN%?}x" -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceagents/me/manifest")
check "a wrong agent token -> 401" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceagents/me/manifest")
check "no agent token -> 401" test "$code" = 401
REPORT='{"lifecycle_state":"ready","version":"v0.1.0","apps":[{"slug":"web","url":"http://127.0.0.1:8000","display_name":"Web","sharing_level":"owner","subdomain":true}],"listening_ports":[{"port":8000,"network":"tcp","process_name":"python3"},{"port":22}],"regions":["primary"]}'
code=$(agent "$DEV_TOKEN" -o /dev/null -w '%{http_code}' -X POST -d "$REPORT" "$URL/api/v2/workspaceagents/me/report")
check "report -> 204" test "$code" = 204
# A report makes the agent connected for two heartbeats (2 s here); on a loaded machine the list after it may
# come later than that, so each attempt reports again right before listing.
report_and_see() { # token body regex
    for _ in 1 2 3 4 5; do
        agent "$1" -X POST -d "$2" "$URL/api/v2/workspaceagents/me/report" >/dev/null
        op list "${ALICE[@]}" | grep -Eq "$3" && return 0
    done
    op list "${ALICE[@]}" | sed 's/^/  /'
    return 1
}
check "list: dev connected with its app, ports (with the process name reported) and region" report_and_see "$DEV_TOKEN" '{}' '^alice/dev +main +connected +web +8000\(python3\),22 +primary$'
out=$(op list "${ALICE[@]}" -o json)
check "list -o json: agents with apps, ports, regions" py "import json,sys; w=[x for x in json.loads(sys.argv[1]) if x['name']=='dev'][0]; a=w['latest_build']['resources'][0]['agents'][0]; assert a['lifecycle_state']=='ready' and a['apps'][0]['slug']=='web' and a['listening_ports'][0]['port']==8000 and a['regions']==['primary']" "$out"
code=$(agent "$DEV_TOKEN" -o /dev/null -w '%{http_code}' -X POST -d '{"apps":[{"slug":"BAD","url":"x"}]}' "$URL/api/v2/workspaceagents/me/report")
check "a bad report -> 400" test "$code" = 400
body=$(agent "$DEV_TOKEN" -X POST "$URL/api/v2/workspaceagents/me/credential")
check "credential: a compact JWS and its expiry" py "import json,sys; c=json.loads(sys.argv[1]); assert len(c['credential'].split('.'))==3 and c['expires_at'].endswith('Z')" "$body"
AGENT_ID=${DEV_TOKEN%%:*}
body=$(agent "$ALICE_SESSION" -X POST -d '{"port":8000,"region":"primary"}' "$URL/api/v2/workspaceagents/$AGENT_ID/connect-token")
check "connect token for the owner of the workspace" py "import json,sys; assert len(json.loads(sys.argv[1])['signed_token'].split('.'))==3" "$body"

# --- the manifest follows healthy proxies: a registered, healthy proxy appears, an unreachable one leaves ---
PXTOKEN=$(op wsproxy create --name eu --only-token "${ADMIN[@]}")
PYPORT=$(free_port)
bg pyproxy python3 "$SERVERS" healthreport $PYPORT
PY_PID=$LAST_PID
wait_port "$PYPORT"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/v2/workspaceproxies/me/register" \
    -H "Coder-External-Proxy-Token: $PXTOKEN" \
    -d "{\"access_url\":\"http://127.0.0.1:$PYPORT\",\"derp_enabled\":true,\"replica_id\":\"$(py 'import uuid;print(uuid.uuid4())')\",\"hostname\":\"t\",\"version\":\"v0\"}")
check "proxy eu registers -> 201" test "$code" = 201
regions() { agent "$1" "$URL/api/v2/workspaceagents/me/manifest" | py "import json,sys; print(' '.join(r['name']+'='+r['access_url'] for r in json.load(sys.stdin)['regions']))"; }
wait_regions() { # token expected seconds
    for _ in $(seq 1 $(($3 * 10))); do [ "$(regions "$1")" = "$2" ] && return 0; sleep 0.1; done
    echo "  regions: $(regions "$1")"; return 1
}
check "manifest: the healthy proxy joins the regions with its access URL" \
    wait_regions "$DEV_TOKEN" "primary=$URL eu=http://127.0.0.1:$PYPORT" 5
body=$(agent "$ALICE_SESSION" -X POST -d '{"port":22,"region":"eu"}' "$URL/api/v2/workspaceagents/$AGENT_ID/connect-token")
check "connect token for region eu" py "import json,sys; assert json.loads(sys.argv[1])['region']=='eu'" "$body"
kill "$PY_PID"
check "manifest: an unreachable proxy leaves the regions" wait_regions "$DEV_TOKEN" "primary=$URL" 5

# --- a member is refused another user's workspace ---
code=$(agent "$CAROL_SESSION" -o /dev/null -w '%{http_code}' "$URL/api/v2/users/alice/workspace/dev")
check "carol GET alice's workspace -> 404" test "$code" = 404
code=$(agent "$CAROL_SESSION" -o /dev/null -w '%{http_code}' -X POST -d '{"port":8000,"region":"primary"}' "$URL/api/v2/workspaceagents/$AGENT_ID/connect-token")
check "carol gets no connect token for alice's agent -> 404" test "$code" = 404
op delete alice/dev -y "${CAROL[@]}" >/dev/null 2>"$T/err"; rc=$?
check "carol cannot delete alice's workspace: EX_DATAERR not found" bash -c "test $rc -eq 65 && grep -q 'workspace \"alice/dev\" not found' '$T/err'"
op agent-token alice/dev "${CAROL[@]}" >/dev/null 2>"$T/err"; rc=$?
check "carol cannot regenerate alice's agent token" test $rc -eq 65
code=$(agent "$DEV_TOKEN" -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceagents/me/manifest")
check "alice's agent token still works after carol's attempts" test "$code" = 200

# --- status rules with short windows (heartbeat 1s, connection timeout 6s) ---
wait_list() { # regex seconds
    for _ in $(seq 1 $(($2 * 10))); do op list "${ALICE[@]}" | grep -Eq "$1" && return 0; sleep 0.1; done
    return 1
}
check "silent for two heartbeats -> disconnected" wait_list '^alice/dev +main +disconnected' 5
check "never connected within the timeout -> timeout" wait_list '^alice/ci +build +timeout' 10
check "a late first report: timeout -> connected" report_and_see "$BUILD_TOKEN" '{}' '^alice/ci +build +connected'
check "a report reconnects dev" report_and_see "$DEV_TOKEN" '{}' '^alice/dev +main +connected'
agent "$DEV_TOKEN" -X POST -d '{"lifecycle_state":"shutting_down"}' "$URL/api/v2/workspaceagents/me/report" >/dev/null
check "a stopping agent is disconnected at once" bash -c "'$OUTPOST' list --global-config '$T/alice' | grep -Eq '^alice/dev +main +disconnected'"

# --- agent-token ---
out=$(op agent-token dev "${ALICE[@]}" 2>&1); rc=$?
NEW_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' <<<"$out")
check "agent-token dev: a new token, printed once: $(head -1 <<<"$out")" \
    bash -c "test $rc -eq 0 && [[ '$NEW_TOKEN' =~ ^$AGENT_ID:[A-Za-z0-9]{64}$ ]] && test '$NEW_TOKEN' != '$DEV_TOKEN'"
code=$(agent "$DEV_TOKEN" -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceagents/me/manifest")
check "the old token stops working at once -> 401" test "$code" = 401
code=$(agent "$NEW_TOKEN" -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceagents/me/manifest")
check "the new token works" test "$code" = 200
op agent-token ci "${ALICE[@]}" >/dev/null 2>"$T/err"; rc=$?
check "agent-token on a workspace with two agents wants .AGENT: $(cat "$T/err")" \
    bash -c "test $rc -eq 65 && grep -q 'has several agents; name one as ci.<agent> (build,test)' '$T/err'"
op agent-token ci.nope "${ALICE[@]}" >/dev/null 2>"$T/err"; rc=$?
check "agent-token with an unknown agent: EX_DATAERR" bash -c "test $rc -eq 65 && grep -q 'has no agent \"nope\"' '$T/err'"
out=$(op agent-token alice/ci.test "${ADMIN[@]}" 2>&1)
check "an owner regenerates a member's agent token" has "$out" '^CODER_AGENT_TOKEN='
TEST_TOKEN=$(sed -n 's/^CODER_AGENT_TOKEN=//p' <<<"$out")

# --- delete ---
op delete dev "${ALICE[@]}" </dev/null >/dev/null 2>"$T/err"; rc=$?
check "delete without -y on a non-TTY refuses: EX_USAGE" bash -c "test $rc -eq 64 && grep -q 'pass --yes' '$T/err'"
out=$(python3 "$T/answer_prompt.py" "Delete workspace alice/dev and its agents? (yes/no)" no "$OUTPOST" delete dev "${ALICE[@]}" 2>&1); rc=$?
check "answering no on a terminal keeps the workspace (EX_TEMPFAIL)" \
    bash -c "test $rc -eq 75 && '$OUTPOST' list --global-config '$T/alice' | grep -q '^alice/dev '"
out=$(op rm dev -y "${ALICE[@]}" 2>&1)
check "rm dev -y: $out" test "$out" = 'Workspace "alice/dev" deleted successfully'
code=$(agent "$NEW_TOKEN" -o /dev/null -w '%{http_code}' "$URL/api/v2/workspaceagents/me/manifest")
check "the deleted workspace's agent token -> 401" test "$code" = 401
op users delete alice "${ADMIN[@]}" >/dev/null 2>"$T/err"; rc=$?
check "deleting a user who owns workspaces: EX_DATAERR, cause: $(cat "$T/err")" \
    bash -c "test $rc -eq 65 && grep -q 'Delete their workspaces first.' '$T/err'"
out=$(op delete alice/ci -y "${ADMIN[@]}" 2>&1)
check "an owner deletes alice/ci" test "$out" = 'Workspace "alice/ci" deleted successfully'
out=$(op users delete alice "${ADMIN[@]}" 2>&1)
check "users delete alice: $out" test "$out" = 'User "alice" deleted successfully'
op users delete alice "${ADMIN[@]}" >/dev/null 2>"$T/err"; rc=$?
check "deleting her again: EX_DATAERR not found" bash -c "test $rc -eq 65 && grep -q 'user \"alice\" not found' '$T/err'"
code=$(agent "$ALICE_SESSION" -o /dev/null -w '%{http_code}' "$URL/api/v2/users/me")
check "the deleted user's session -> 401" test "$code" = 401

# --- secrets never stored in plaintext ---
leak=0
for s in "${DEV_TOKEN#*:}" "${NEW_TOKEN#*:}" "${BUILD_TOKEN#*:}" "${TEST_TOKEN#*:}" "${ALICE_SESSION#*-}" \
    "${CAROL_SESSION#*-}" Admin-Pass-1 Alice-Pass-1 Carol-Pass-1; do
    [ ${#s} -ge 12 ] || { echo "  empty secret"; leak=1; }
    for f in "$T"/data/outpost.db*; do grep -qF -- "$s" "$f" && { echo "  secret found in $f"; leak=1; }; done
done
check "no agent token, session secret or password in the database files" test $leak -eq 0

echo "$fails failures"
[ $fails -eq 0 ]
