#!/usr/bin/env bash
# Golden tests for the admin CLI: every command's --help, and `wsproxy create` / `wsproxy ls` output in
# each format (text, json, table, custom columns), including an unhealthy proxy whose errors AND warnings
# are each printed once. Volatile values (ports, UUIDs, secrets, times) are normalised before comparing.
# UPDATE_GOLDEN=1 rewrites tests/golden/*.golden from the current binary.
. "$(dirname "$0")/../lib/common.sh"
G=$ROOT/tests/golden
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
command -v curl >/dev/null || { echo "curl missing"; exit 77; }
fails=0
normalize() {
    sed -E -e 's/127\.0\.0\.1:[0-9]{5}/127.0.0.1:PORT/g' \
        -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/UUID/g' \
        -e 's/UUID:[A-Za-z0-9]{64}/UUID:SECRET/g' \
        -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z/TIME/g'
}
golden() { # name, then the command; stdout is compared
    local name=$1; shift
    local got
    got=$("$@" 2>&1 | normalize)
    if [ "${UPDATE_GOLDEN:-}" = 1 ]; then
        printf '%s\n' "$got" >"$G/$name.golden"
        echo "updated $name"
        return
    fi
    if [ "$got" = "$(cat "$G/$name.golden" 2>/dev/null)" ]; then
        echo "ok   $name"
    else
        echo "FAIL $name"
        diff <(printf '%s\n' "$got") "$G/$name.golden" | head -40 | sed 's/^/    /'
        fails=$((fails + 1))
    fi
}

golden outpost_server_--help "$OUTPOST" server --help
golden outpost_login_--help "$OUTPOST" login --help
golden outpost_logout_--help "$OUTPOST" logout --help
golden outpost_wsproxy_--help "$OUTPOST" wsproxy --help
for sub in create ls edit delete regenerate-token; do
    golden "outpost_wsproxy_${sub}_--help" "$OUTPOST" wsproxy "$sub" --help
done

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
export CODER_CONFIG_DIR=$T/cfg
unset CODER_URL CODER_SESSION_TOKEN NO_COLOR
bg server "$OUTPOST" server --http-address "127.0.0.1:$PORT" --data-dir "$T/data" --proxy-health-interval 1s
for _ in $(seq 1 100); do curl -fsS "$URL/api/v2/buildinfo" >/dev/null 2>&1 && break; sleep 0.1; done
"$OUTPOST" login "$URL" --first-user-username admin --first-user-email admin@example.com \
    --first-user-password 'Golden-pass-1' >/dev/null || { echo "login failed"; cat "$T/server.log"; exit 1; }

golden wsproxy_create_text "$OUTPOST" wsproxy create --name eu --display-name Europe --icon /emojis/1f1ea.png
golden wsproxy_create_json "$OUTPOST" wsproxy create --name us --display-name "US East" -o json
golden wsproxy_create_table "$OUTPOST" wsproxy create --name ap -o table
golden wsproxy_create_table_columns "$OUTPOST" wsproxy create --name sa -o table -c "name,display name,proxy token"

# A proxy that reports one error and one warning: both must show, each exactly once.
PYPORT=$(free_port)
bg fakeproxy python3 "$SERVERS" healthreport $PYPORT "failed to get build info: connection refused" \
    "version mismatch: primary coderd (v0.1.0) != workspace proxy (v0.0.9)"
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PYPORT/healthz-report" >/dev/null && break; sleep 0.1; done
TOKEN=$("$OUTPOST" wsproxy create --name sick --only-token)
curl -s -o /dev/null -X POST "$URL/api/v2/workspaceproxies/me/register" -H "Coder-External-Proxy-Token: $TOKEN" \
    -d "{\"access_url\":\"http://127.0.0.1:$PYPORT\",\"derp_enabled\":true,\"replica_id\":\"$(python3 -c 'import uuid;print(uuid.uuid4())')\",\"hostname\":\"g\",\"version\":\"v0.0.9\"}"
for _ in $(seq 1 50); do "$OUTPOST" wsproxy ls | grep -q unhealthy && break; sleep 0.1; done

golden wsproxy_ls_table "$OUTPOST" wsproxy ls
golden wsproxy_ls_text "$OUTPOST" wsproxy ls -o text
golden wsproxy_ls_json "$OUTPOST" wsproxy ls -o json
golden wsproxy_ls_columns "$OUTPOST" wsproxy ls -c "name,display name,icon url,healthy,proxy status,derp enabled,version"
golden wsproxy_ls_bad_column "$OUTPOST" wsproxy ls -c "name,colour"

echo "$fails failures"
[ $fails -eq 0 ]
