#!/usr/bin/env bash
# tests/integration/wsproxy_reload.sh — SIGHUP on `outpost wsproxy server`: a good reload (YAML names a new
# certificate) switches the certificate served to new connections; a bad one (key does not match) keeps the
# running certificate and is counted; an env-file change (HSTS) is applied; a SIGHUP storm keeps the proxy
# serving with its fd count where it was.
. "$(dirname "$0")/../lib/common.sh"
certs
bash "$ROOT/tests/lib/certs.sh" "$T/certs2" >/dev/null || fail "certs2"

primary_with_proxy eu

H=$(free_port) S=$(free_port) M=$(free_port)
write_yaml() { # write_yaml CERT KEY
    cat >"$T/proxy.yaml" <<EOF
externalWorkspaceProxy:
  primaryAccessURL: http://127.0.0.1:$P
networking:
  http:
    httpAddress: 127.0.0.1:$H
  tls:
    enable: true
    address: 127.0.0.1:$S
    certFiles: [$1]
    keyFiles: [$2]
introspection:
  prometheus:
    enable: true
    address: 127.0.0.1:$M
EOF
}
write_yaml "$T/certs/server.pem" "$T/certs/server.key"
echo "CODER_STRICT_TRANSPORT_SECURITY=0" >"$T/proxy.env"
# systemd notifications: a datagram socket standing in for systemd records what the proxy sends.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True: f.write(s.recv(4096).decode() + "\n")
' "$T/notify.sock" "$T/notify.txt" &
PIDS+=($!)
for ((i = 0; i < 50; i++)); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
# No ASan quarantine for the proxy, so that its RSS reflects live memory (checked after the SIGHUP storm).
ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=0:thread_local_quarantine_size_kb=0 \
CODER_PROXY_SESSION_TOKEN=$TOKEN NOTIFY_SOCKET=$T/notify.sock bg proxy "$OUTPOST" wsproxy server \
    --config "$T/proxy.yaml" --env-file "$T/proxy.env"
PROXY_PID=$LAST_PID
wait_port $S
wait_port $M

serial() { openssl s_client -connect 127.0.0.1:$S -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial; }
metric() { curl -sf http://127.0.0.1:$M/metrics | awk -v k="$1" '$1 == k { print $2 }'; }
want1=$(openssl x509 -noout -serial -in "$T/certs/server.pem")
want2=$(openssl x509 -noout -serial -in "$T/certs2/server.pem")
[ "$(serial)" = "$want1" ] || fail "initial serial $(serial), want $want1"

# Good reload: the YAML names the second certificate; the env-file turns HSTS on.
write_yaml "$T/certs2/server.pem" "$T/certs2/server.key"
echo "CODER_STRICT_TRANSPORT_SECURITY=600" >"$T/proxy.env"
kill -HUP $PROXY_PID
for ((i = 0; i < 40; i++)); do [ "$(metric outpost_wsproxy_reloads_total)" = 1 ] && break; sleep 0.1; done
[ "$(metric outpost_wsproxy_reloads_total)" = 1 ] || fail "reload not counted"
[ "$(serial)" = "$want2" ] || fail "after a good reload: serial $(serial), want $want2"
curl -s -D - -o /dev/null --cacert "$T/certs2/ca.pem" https://localhost:$S/healthz | grep -qi '^Strict-Transport-Security: max-age=600' ||
    fail "env-file HSTS not applied by the reload"
ok "good reload: new certificate served to new connections, env-file change applied"

# Bad reload: the key does not match the certificate -> old config kept, failure counted.
write_yaml "$T/certs/server.pem" "$T/certs/mismatch.key"
kill -HUP $PROXY_PID
for ((i = 0; i < 40; i++)); do [ "$(metric outpost_wsproxy_reload_failures_total)" = 1 ] && break; sleep 0.1; done
[ "$(metric outpost_wsproxy_reload_failures_total)" = 1 ] || fail "reload failure not counted"
[ "$(serial)" = "$want2" ] || fail "after a bad reload: serial $(serial), want $want2 (the running one)"
grep -q 'reload rejected, keeping the running configuration' "$T/proxy.log" || fail "rejection not logged"
# A YAML syntax error is rejected the same way.
echo 'networking: [' >"$T/proxy.yaml"
kill -HUP $PROXY_PID
for ((i = 0; i < 40; i++)); do [ "$(metric outpost_wsproxy_reload_failures_total)" = 2 ] && break; sleep 0.1; done
[ "$(metric outpost_wsproxy_reload_failures_total)" = 2 ] || fail "YAML error not counted"
[ "$(serial)" = "$want2" ] || fail "after a broken YAML: serial changed"
[ "$(metric outpost_wsproxy_config_last_reload_successful)" = 0 ] || fail "last-reload gauge not 0 after a rejected reload"
ok "bad reloads (mismatched key, broken YAML): running certificate kept, failures counted and logged"

# SIGHUP storm with a good config: still serving, fds back where they were.
write_yaml "$T/certs2/server.pem" "$T/certs2/server.key"
kill -HUP $PROXY_PID
sleep 0.5
fds0=$(ls /proc/$PROXY_PID/fd | wc -l)
for i in $(seq 1 50); do kill -HUP $PROXY_PID; sleep 0.02; done
for ((i = 0; i < 50; i++)); do [ "$(metric outpost_wsproxy_reloads_total)" -ge 10 ] 2>/dev/null && break; sleep 0.1; done
sleep 0.5
for i in $(seq 1 5); do curl -sf --cacert "$T/certs2/ca.pem" https://localhost:$S/healthz >/dev/null || fail "serving after storm"; done
fds1=$(ls /proc/$PROXY_PID/fd | wc -l)
[ $((fds1 - fds0)) -le 2 ] || fail "fds grew from $fds0 to $fds1 over 50 reloads"
kill -0 $PROXY_PID || fail "proxy died during the storm"
# Memory: after the first storm (warm-up), 150 more good reloads, each building a new TLS context and
# retiring the old one, must not grow RSS by more than 2 MiB (a leaked context is ~100 KiB each).
rss() { awk '/^VmRSS/ {print $2}' /proc/$PROXY_PID/status; }
r0=$(metric outpost_wsproxy_reloads_total)
rss0=$(rss)
for i in $(seq 1 ${STORM:-150}); do kill -HUP $PROXY_PID; sleep 0.03; done
for ((i = 0; i < 100; i++)); do [ "$(metric outpost_wsproxy_reloads_total)" -ge $((r0 + 20)) ] 2>/dev/null && break; sleep 0.1; done
sleep 0.5
curl -sf --cacert "$T/certs2/ca.pem" https://localhost:$S/healthz >/dev/null || fail "serving after the second storm"
rss1=$(rss)
r1=$(metric outpost_wsproxy_reloads_total)
[ $((rss1 - rss0)) -le 2048 ] || fail "RSS grew from ${rss0} KiB to ${rss1} KiB over $((r1 - r0)) reloads"
ok "SIGHUP storm: $r1 reloads, still serving, fds $fds0 -> $fds1, RSS ${rss0} -> ${rss1} KiB over the last $((r1 - r0))"

# Under load: 100 reloads while wrk opens a new TLS connection per request; nothing may fail.
if command -v wrk >/dev/null; then
    r0=$(metric outpost_wsproxy_reloads_total)
    wrk -t1 -c8 -d5s -H 'Connection: close' https://127.0.0.1:$S/healthz >"$T/wrk.out" 2>&1 &
    WRK=$!
    sleep 0.3
    for i in $(seq 1 100); do kill -HUP $PROXY_PID; sleep 0.04; done
    wait $WRK || fail "wrk failed: $(cat "$T/wrk.out")"
    r1=$(metric outpost_wsproxy_reloads_total)
    grep -q 'requests in' "$T/wrk.out" || fail "wrk output: $(cat "$T/wrk.out")"
    grep -qE 'Non-2xx|Socket errors' "$T/wrk.out" && fail "requests failed during reloads: $(cat "$T/wrk.out")"
    ok "under load: $((r1 - r0)) reloads during $(awk '/requests in/ { print $1 }' "$T/wrk.out") requests (new TLS connection each), zero failures"
fi
kill -TERM $PROXY_PID
wait $PROXY_PID || fail "proxy exit code after reloads"
sleep 0.2
[ "$(head -n 1 "$T/notify.txt")" = READY=1 ] || fail "first notification: $(head -n 1 "$T/notify.txt")"
grep -qx 'RELOADING=1' "$T/notify.txt" && [ "$(tail -n 1 "$T/notify.txt")" = STOPPING=1 ] ||
    fail "notifications: $(tr '\n' ' ' <"$T/notify.txt")"
ok "sd_notify: READY=1 at start, RELOADING=1/READY=1 around reloads, STOPPING=1 at the end"
