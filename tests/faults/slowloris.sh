#!/usr/bin/env bash
# Slow clients on a workspace proxy: 500 connections (full form: 2,000) that send a request head one line a
# second and never finish it, while a probe requests /healthz and a public app through the agent 10 times a
# second each. The probe must see no failure and a p99 under 1 s; the proxy's head timeout (10 s) must close
# every slow connection with a 408, none surviving past 20 s.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/faults.sh"
CONNS=500
[ "$FAULTS" = full ] && CONNS=2000
[ "$(ulimit -n)" -ge $((CONNS + 200)) ] || ulimit -n $((CONNS + 500)) 2>/dev/null ||
    { echo "needs $((CONNS + 200)) open files"; exit 77; }
fault_deploy
python3 "$ROOT/tests/lib/slowloris.py" "127.0.0.1:$Q" "$CONNS" 25 /healthz "/@admin/ws/apps/pub/" >"$T/slow.json" 2>"$T/slow.err" ||
    fail "slowloris client: $(cat "$T/slow.err")"
cat "$T/slow.json"
python3 - "$T/slow.json" "$CONNS" <<'PY' || fail "slow clients hurt the proxy"
import json, sys
r, conns = json.load(open(sys.argv[1])), int(sys.argv[2])
errs = []
if r["probe_failures"]: errs.append("%d probe failures" % r["probe_failures"])
if r["probe_requests"] < 100: errs.append("only %d probe requests" % r["probe_requests"])
if r["probe_p99_ms"] is None or r["probe_p99_ms"] >= 1000: errs.append("probe p99 %s ms" % r["probe_p99_ms"])
if r["slow_still_open"]: errs.append("%d slow connections still open" % r["slow_still_open"])
if r["slow_408"] != conns: errs.append("%d of %d got 408" % (r["slow_408"], conns))
if r["closed_after_s"] and not (9 <= r["closed_after_s"][0] and r["closed_after_s"][2] <= 20):
    errs.append("closed after %s s, not at the 10 s head timeout" % r["closed_after_s"])
print("; ".join(errs) or "ok")
sys.exit(1 if errs else 0)
PY
kill -0 "$EU_PID" || fail "the proxy died"
ok "$CONNS slow clients: probe $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("p50 %s ms, p99 %s ms, %d requests, 0 failed; all slow connections closed with 408 after %s s" % (r["probe_p50_ms"], r["probe_p99_ms"], r["probe_requests"], r["closed_after_s"]))' "$T/slow.json")"
