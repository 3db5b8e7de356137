#!/usr/bin/env bash
# The benchmark harness measured against known answers: its load generator (bench/loadgen.c) against
# servers of known speed (tests/lib/paced_server.py: a bulk source paced at 8 MB/s, an HTTP server that
# answers after 20 ms), and its report (bench/report.py) against a raw.tsv whose medians, ratios and
# spreads are known, including the refusal of a run that other processes disturbed.
. "$(dirname "$0")/../lib/common.sh"
LOADGEN=$BUILD_DIR/bench/loadgen
[ -x "$LOADGEN" ] || fail "no load generator at $LOADGEN (make bench-tools)"
PACED=$ROOT/tests/lib/paced_server.py
kv() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }

# --- loadgen bulk: 16 MiB from a source paced at 8 MB/s must read as 8 MB/s (never faster; a busy test
# machine may make it a little slower)
B=$(free_port)
bg paced_bulk python3 "$PACED" bulk "$B" 8000000
wait_port "$B"
out=$("$LOADGEN" bulk --connect "127.0.0.1:$B" --streams 1 --bytes $((16 << 20)) --dir down --timeout 30) ||
    fail "loadgen bulk failed: $out"
rate=$(kv bytes_per_s <<<"$out")
echo "bulk: $out"
awk -v r="$rate" 'BEGIN { exit !(r >= 6.4e6 && r <= 8.4e6) }' || fail "bulk rate $rate B/s is not 8 MB/s"
ok "loadgen bulk reads a paced 8 MB/s source as $rate B/s"

# --- loadgen rate: 50 req/s open loop against 20 ms answers: achieved 50/s, latency p50 20-40 ms
H=$(free_port)
bg paced_http python3 "$PACED" http "$H" 20
wait_port "$H"
out=$("$LOADGEN" rate --connect "127.0.0.1:$H" --conns 4 --rate 50 --duration 2 --warmup 0.2 --path /100) ||
    fail "loadgen rate failed: $out"
echo "rate: $out"
ach=$(kv rate_achieved <<<"$out") p50=$(kv p50_us <<<"$out") p99=$(kv p99_us <<<"$out")
awk -v a="$ach" 'BEGIN { exit !(a >= 45 && a <= 52) }' || fail "achieved rate $ach is not 50/s"
awk -v p="$p50" 'BEGIN { exit !(p >= 20000 && p <= 40000) }' || fail "p50 $p50 us is not 20 ms"
awk -v p="$p99" -v m="$p50" 'BEGIN { exit !(p >= m) }' || fail "p99 $p99 below p50 $p50"
ok "loadgen rate: $ach req/s achieved of 50, p50 $p50 us against a 20 ms server"

# --- report.py on known samples
R=$T/res
mkdir -p "$R"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$R/raw.tsv"; }
printf 'workload\tcase\tpeer\tmetric\tunit\tbetter\trep\tvalue\tnote\n' >"$R/raw.tsv"
for v in 100 120 110; do row 3 "100 B plain" outpost throughput req/s higher 1 "$v" ""; done
for v in 50 60 55; do row 3 "100 B plain" nginx throughput req/s higher 1 "$v" ""; done
for v in 2 3 1; do row 3 "100 B plain" outpost _bg % lower 1 "$v" ""; done
for v in 4 2 5; do row 3 "100 B plain" nginx _bg % lower 1 "$v" ""; done
row 3 "100 B plain" nginx _retries n lower 2 1 ""
row 3 "100 B plain" haproxy throughput req/s higher 1 n/a "not installed"
python3 "$ROOT/bench/report.py" "$R" --no-charts >"$T/report1.txt" 2>&1 || {
    cat "$T/report1.txt"
    fail "report refused a quiet run"
}
cat "$T/report1.txt"
python3 - "$R/results.json" <<'PY' || fail "report figures wrong"
import json, sys
r = {x["peer"]: x for x in json.load(open(sys.argv[1]))["results"]}
o, n = r["outpost"], r["nginx"]
assert o["median"] == 110 and o["min"] == 100 and o["max"] == 120, o
assert abs(o["spread_pct"] - 100 * 20 / 110) < 0.01, o["spread_pct"]
assert n["median"] == 55 and abs(n["ratio_vs_outpost"] - 0.5) < 1e-9, n
assert n["disturbed_repetitions_retried"] == 1 and o["disturbed_repetitions_retried"] == 0
assert r["haproxy"]["status"] == "n/a"
PY
grep -q "measured again" "$T/report1.txt" || fail "the retried repetition is not shown"
grep -Eq "outpost +110 +100-120 +18% +1.00x" "$T/report1.txt" || fail "the outpost row lacks its spread"
ok "report: medians, ratios, spreads and retries as computed by hand"

# the same run with one disturbed sample of nginx: refused (exit 3), accepted with --allow-disturbed
row 3 "100 B plain" nginx _bg % lower 3 25 ""
rc=0
python3 "$ROOT/bench/report.py" "$R" --no-charts >"$T/report2.txt" 2>&1 || rc=$?
[ "$rc" = 3 ] || { cat "$T/report2.txt"; fail "a disturbed run gave exit $rc, not 3"; }
grep -q "REFUSED.*W3 100 B plain nginx" "$T/report2.txt" || fail "the refusal does not name the row"
grep -Eq "nginx .* 25%!" "$T/report2.txt" || fail "the disturbed row is not marked"
python3 "$ROOT/bench/report.py" "$R" --no-charts --allow-disturbed >/dev/null 2>&1 ||
    fail "--allow-disturbed did not accept the run"
BENCH_BG_MAX=30 python3 "$ROOT/bench/report.py" "$R" --no-charts >/dev/null 2>&1 ||
    fail "BENCH_BG_MAX=30 still refused a 25% row"
ok "report: a disturbed row refuses the run unless allowed"
python3 "$ROOT/bench/report.py" >/dev/null 2>&1 && fail "report without arguments succeeded"
ok "bench harness"
