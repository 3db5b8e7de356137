#!/usr/bin/env bash
# tests/integration/wsproxy_fake_primary.sh — `outpost wsproxy server` against a scripted primary (python):
#   a primary behind TLS with a private CA fails start-up with an actionable message, and works with
#   --tls-client-ca-file; a major.minor version mismatch is a warning (log + /healthz-report), not an error;
#   /healthz-report answers 500 while the proxy shuts down (deregistration in progress); a primary that
#   changes the proxy's DERP region id makes the proxy exit non-zero.
. "$(dirname "$0")/../lib/common.sh"
certs

cat >"$T/fake.py" <<'EOF'
import json, os, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, version = int(sys.argv[1]), sys.argv[2]
dereg_delay = float(os.environ.get("DEREG_DELAY", "0"))
region_change = os.environ.get("REGION_CHANGE") == "1"
calls = {"register": 0}
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, obj):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/api/v2/buildinfo":
            self.reply(200, {"version": version, "workspace_proxy": False, "dashboard_url": "x", "external_url": "x"})
        elif self.path.startswith("/api/v2/workspaceproxies/me/crypto-keys"):
            self.reply(200, {"crypto_keys": []})
        else:
            self.reply(404, {"message": "Route not found."})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/me/register"):
            with lock:
                calls["register"] += 1
                n = calls["register"]
            self.reply(201, {"derp_mesh_key": "", "derp_region_id": 10 + (n if region_change else 0),
                             "derp_map": {}, "sibling_replicas": []})
        elif self.path.endswith("/me/deregister"):
            time.sleep(dereg_delay)
            self.reply(204, None)
        else:
            self.reply(404, {"message": "Route not found."})
srv = ThreadingHTTPServer(("127.0.0.1", port), H)
if os.environ.get("TLS_CERT"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
TOKEN="00000000-1111-4222-8333-444444444444:$(printf 'a%.0s' {1..64})"
export CODER_PROXY_SESSION_TOKEN=$TOKEN

# --- TLS primary with a private CA ---
F=$(free_port) Q=$(free_port)
TLS_CERT=$T/certs/server.pem TLS_KEY=$T/certs/server.key DEREG_DELAY=3 bg fake python3 "$T/fake.py" $F v9.9.1
wait_port $F
timeout 20 "$OUTPOST" wsproxy server --primary-access-url https://localhost:$F --http-address 127.0.0.1:$Q \
    >"$T/noca.log" 2>&1
rc=$?
[ $rc = 69 ] || fail "TLS primary without its CA: exit $rc, want 69"
grep -q "TLS connection to the primary at https://localhost:$F failed" "$T/noca.log" && grep -q -- '--tls-client-ca-file' "$T/noca.log" ||
    fail "TLS failure message not actionable: $(cat "$T/noca.log")"
ok "TLS primary with an unknown CA: exit 69, message names the TLS failure and --tls-client-ca-file"

bg proxy "$OUTPOST" wsproxy server --primary-access-url https://localhost:$F --http-address 127.0.0.1:$Q \
    --tls-client-ca-file "$T/certs/ca.pem"
PROXY_PID=$LAST_PID
wait_port $Q
grep -q 'version mismatch: primary coderd (v9.9.1) != workspace proxy (v' "$T/proxy.log" || fail "mismatch not logged"
report=$(curl -s http://127.0.0.1:$Q/healthz-report)
[[ $report == '{"errors":[],"warnings":["version mismatch: primary coderd (v9.9.1) != workspace proxy (v'*')"]}' ]] ||
    fail "healthz-report: $report"
ok "--tls-client-ca-file: registered; version mismatch is a warning in the log and in /healthz-report"

# --- /healthz-report is 500 while shutting down (the fake primary holds deregistration for 3 s) ---
kill -TERM $PROXY_PID
sleep 0.5
code=$(curl -s -o "$T/b" -w '%{http_code}' http://127.0.0.1:$Q/healthz-report)
[ "$code" = 500 ] && [ "$(cat "$T/b")" = '"workspace proxy in middle of shutting down"' ] ||
    fail "healthz-report during shutdown: $code $(cat "$T/b")"
wait $PROXY_PID || fail "proxy exit code after SIGTERM"
grep -q 'deregistered replica' "$T/proxy.log" || fail "not deregistered"
ok "/healthz-report answers 500 while shutting down; then deregistered and exit 0"

# --- a changed DERP region id is fatal ---
G=$(free_port)
REGION_CHANGE=1 bg fake2 python3 "$T/fake.py" $G v0.1.7
wait_port $G
bg proxy2 "$OUTPOST" wsproxy server --primary-access-url http://127.0.0.1:$G --http-address 127.0.0.1:$Q \
    --heartbeat-interval 200ms
PROXY_PID=$LAST_PID
for ((i = 0; i < 40; i++)); do kill -0 $PROXY_PID 2>/dev/null || break; sleep 0.25; done
kill -0 $PROXY_PID 2>/dev/null && fail "proxy still running after its region id changed"
wait $PROXY_PID
rc=$?
[ $rc = 1 ] || fail "region change: exit $rc, want 1"
grep -q 'changed this proxy.s DERP region id' "$T/proxy2.log" || fail "region change not logged"
grep -q 'version mismatch' "$T/proxy2.log" && fail "v0.1.7 vs v0.1.0 is not a mismatch (patch ignored)"
ok "a changed DERP region id ends the proxy (exit 1); a patch-level difference is no mismatch"
