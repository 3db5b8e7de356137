#!/usr/bin/env bash
# tests/integration/wsproxy_metrics.sh — the proxy's Prometheus listener (CODER_PROMETHEUS_ENABLE /
# CODER_PROMETHEUS_ADDRESS): after traffic this test generates (plain HTTP, TLS, a failed handshake), the
# counters summed over workers match it, in the text exposition format.
. "$(dirname "$0")/../lib/common.sh"
certs

primary_with_proxy eu

H=$(free_port) S=$(free_port) M=$(free_port)
bg proxy env CODER_PROXY_SESSION_TOKEN=$TOKEN CODER_PRIMARY_ACCESS_URL=http://127.0.0.1:$P \
    CODER_HTTP_ADDRESS=127.0.0.1:$H CODER_TLS_ADDRESS=127.0.0.1:$S CODER_TLS_ENABLE=true \
    CODER_TLS_REDIRECT_HTTP_TO_HTTPS=false CODER_ACCESS_URL=http://127.0.0.1:$H \
    CODER_TLS_CERT_FILE="$T/certs/server.pem" CODER_TLS_KEY_FILE="$T/certs/server.key" \
    CODER_PROMETHEUS_ENABLE=true CODER_PROMETHEUS_ADDRESS=127.0.0.1:$M CODER_WORKERS=2 \
    "$OUTPOST" wsproxy server
wait_port $M
wait_port $S

scrape() { curl -sf http://127.0.0.1:$M/metrics >"$T/m" || fail "scrape"; }
val() { # val METRIC_LINE_PREFIX: the value, 0 if absent
    awk -v k="$1" 'index($0, k " ") == 1 { print $NF; f = 1 } END { if (!f) print 0 }' "$T/m"
}
scrape
grep -q '^# TYPE outpost_wsproxy_connections_accepted_total counter$' "$T/m" || fail "TYPE line"
acc0=$(val outpost_wsproxy_connections_accepted_total)
hs0=$(val outpost_wsproxy_tls_handshakes_total)
hsf0=$(val outpost_wsproxy_tls_handshake_failures_total)
in0=$(val outpost_wsproxy_client_bytes_received_total)
dc0=$(val outpost_wsproxy_http_request_duration_seconds_count)

# Traffic: 20 plain /healthz (separate connections), 5 dashboard pages, 6 TLS /healthz, 1 failed handshake.
for i in $(seq 1 20); do curl -sf http://127.0.0.1:$H/healthz >/dev/null || fail "healthz $i"; done
for i in $(seq 1 5); do curl -s -o /dev/null http://127.0.0.1:$H/nowhere/$i; done
for i in $(seq 1 6); do curl -sf --cacert "$T/certs/ca.pem" https://localhost:$S/healthz >/dev/null || fail "tls $i"; done
# Plain HTTP on the TLS port: the handshake must fail and the proxy must close the connection (EOF within 5 s).
python3 - "$S" <<'PY' || fail "plain HTTP on the TLS port: the proxy did not close the connection"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
while s.recv(4096):
    pass
PY
sleep 0.3

scrape
cat "$T/m" >"$T/metrics.log"
got=$(val 'coderd_api_requests_processed_total{code="200",method="GET",path="/healthz"}')
[ "$got" = 26 ] || fail "healthz requests: $got, want 26"
got=$(val 'coderd_api_requests_processed_total{code="400",method="GET",path="/*"}')
[ "$got" = 5 ] || fail "dashboard requests: $got, want 5"
acc=$(val outpost_wsproxy_connections_accepted_total)
[ $((acc - acc0)) -ge 32 ] || fail "accepted grew by $((acc - acc0)), want >= 32 (31 requests + 1 handshake + scrape)"
hs=$(val outpost_wsproxy_tls_handshakes_total)
[ $((hs - hs0)) = 6 ] || fail "TLS handshakes grew by $((hs - hs0)), want 6"
hsf=$(val outpost_wsproxy_tls_handshake_failures_total)
[ $((hsf - hsf0)) -ge 1 ] || fail "TLS handshake failures did not grow"
in=$(val outpost_wsproxy_client_bytes_received_total)
[ $((in - in0)) -gt 2000 ] || fail "client bytes received grew by only $((in - in0))"
[ "$(val outpost_wsproxy_registered)" = 1 ] || fail "registered gauge"
[ "$(val outpost_wsproxy_registrations_total)" -ge 1 ] || fail "registrations counter"
[ "$(val outpost_wsproxy_http_responses_4xx_total)" -ge 5 ] || fail "4xx counter"
[ "$(val 'outpost_wsproxy_build_info{version="v'"$("$OUTPOST" version | awk '{print $2}')"'+outpost"}')" = 1 ] || fail "build_info"
[ "$(val process_open_fds)" -gt 5 ] && [ "$(val process_resident_memory_bytes)" -gt 1000000 ] || fail "process metrics"
[ "$(val outpost_wsproxy_config_last_reload_successful)" = 1 ] || fail "last reload gauge"
# Request-duration histogram: every request above was timed; buckets are cumulative and end at +Inf = count.
dc=$(val outpost_wsproxy_http_request_duration_seconds_count)
[ $((dc - dc0)) -ge 31 ] || fail "request-duration count grew by $((dc - dc0)), want >= 31"
grep '^outpost_wsproxy_http_request_duration_seconds_bucket' "$T/m" | awk -v count="$dc" '
    { if ($2 < prev) { print "bucket not cumulative: " $0; exit 1 } prev = $2; last = $0; lastv = $2 }
    END { if (last !~ /le="\+Inf"/ || lastv != count) { print "+Inf bucket " lastv " != count " count; exit 1 } }' ||
    fail "request-duration histogram"
# The region's agent-stream series: present with HELP and TYPE; no agent connects here, so all are 0.
for m in agents:gauge control_connections:gauge parked_streams:gauge waiting_clients:gauge \
    streams_opened_total:counter streams_failed_total:counter spares_parked_total:counter \
    dead_spares_total:counter; do
    n=outpost_region_${m%:*}
    grep -q "^# HELP $n ." "$T/m" || fail "no HELP for $n"
    grep -q "^# TYPE $n ${m#*:}\$" "$T/m" || fail "no TYPE ${m#*:} for $n"
    grep -q "^$n 0\$" "$T/m" || fail "$n: $(grep "^$n " "$T/m"), want 0"
done
ok "region series (agents, control connections, parked, waiting, streams opened/failed, spares parked, dead spares) present, 0 without an agent"
ok "metrics after traffic: per-route request counts exact, accepted, TLS handshakes and failures, bytes, registration"
# Every sample line is "name{labels} value" or "name value" with a preceding TYPE for its family.
awk '/^#/ { next } { if (NF != 2 || $2 !~ /^[0-9]+(\.[0-9]+)?$/) { print "bad line: " $0; exit 1 } }' "$T/m" || fail "format"
# One TYPE per family, before its samples.
awk '/^# TYPE / { if (seen[$3]++) { print "duplicate TYPE " $3; exit 1 } }' "$T/m" || fail "duplicate TYPE"
tail -c 1 "$T/m" | od -c | grep -q '\\n' || fail "last line does not end in a newline"
ok "text format well-formed"

# One agent stream through the proxy (tests/lib/fake_agent.py, as region_streams.sh): the region series follow.
SC() { python3 "$ROOT/tests/lib/stream_client.py" "$@"; }
E=$(free_port)
new_workspace dev http://127.0.0.1:$P
bg echo python3 "$SERVERS" echo $E
wait_port $E
bg agent python3 "$ROOT/tests/lib/fake_agent.py" --primary http://127.0.0.1:$P --token "$ATOKEN" \
    --region http://127.0.0.1:$H
for i in $(seq 100); do grep -q '^control up' "$T/agent.log" && break; sleep 0.1; done
grep -q "^control up http://127.0.0.1:$H eu" "$T/agent.log" || fail "no control connection to the proxy"
TOK=$(SC token http://127.0.0.1:$P "$(cat "$T/cli/session")" "$AGENT" $E eu) || fail "connect token"
out=$(SC setup http://127.0.0.1:$H "$AGENT" $E "$TOK" 1) || fail "one stream: $out"
sleep 0.3
scrape
[ "$(val outpost_region_streams_opened_total)" = 1 ] || fail "streams opened: $(val outpost_region_streams_opened_total), want 1"
[ "$(val outpost_region_streams_failed_total)" = 0 ] || fail "streams failed: $(val outpost_region_streams_failed_total)"
[ "$(val outpost_region_agents)" = 1 ] || fail "agents gauge: $(val outpost_region_agents), want 1"
[ "$(val outpost_region_control_connections)" -ge 1 ] || fail "control connections gauge"
[ "$(val outpost_region_spares_parked_total)" -ge 1 ] || fail "spares parked counter"
ok "after one agent stream through the proxy: streams_opened_total 1, failed 0, agents 1, control and spares counted"
