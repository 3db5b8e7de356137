#!/usr/bin/env bash
# bench/run.sh quick|full — Outpost vs nginx vs HAProxy (and the direct path), side by side, one run.
# See bench/README.md for the method. Environment:
#   OUTPOST_BIN        the outpost binary (make bench sets it); rows show "n/a (relay missing)" without it
#   BENCH_ONLY=1,3     run only these workloads (default all ten)
#   BENCH_REPS=N       repetitions per cell (default 3 quick, 5 full; at least 3 is recommended)
#   BENCH_RELAY_CPU / BENCH_LOAD_CPU   pinning (default 1 / 0), BENCH_WORKERS (default 1)
#   BENCH_BG_MAX=10    a repetition during which other processes took this % of the relay CPU is measured
#                      again (BENCH_BG_RETRIES=2 times at most); a row still disturbed after that makes the
#                      report refuse the run (exit 3) unless BENCH_ALLOW_DISTURBED=1
#   BENCH_W6_RATE      fixed request rate for workload 6 (default: 50% of the lowest relay peak from W3)
# Prints a table per workload on stdout; progress on stderr; results in bench/results/<timestamp>/.
set -uo pipefail

MODE=${1:-quick}
case "$MODE" in quick | full) ;; *)
    echo "usage: bench/run.sh quick|full" >&2
    exit 64
    ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUTPOST_BIN=${OUTPOST_BIN:-$ROOT/build/rel/outpost}
RELAY_CPU=${BENCH_RELAY_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
WORKERS=${BENCH_WORKERS:-1}
ONLY=${BENCH_ONLY:-1,2,3,4,5,6,7,8,9,10}
MIB=$((1 << 20))

if [ "$MODE" = quick ]; then
    REPS=${BENCH_REPS:-3}
    W1_BYTES=$((256 * MIB)) W2_BYTES=$((48 * MIB))
    W3_SECS=1 W4_SECS=0.8 W5_PLAIN=600 W5_TLS=300 W6_SECS=1 W6_WARM=0.3 W7_BYTES=$((256 * MIB))
    W8_TERMS=100 W8_SECS=2 W8_WARM=0.5 W9_TERMS=300 W10_SECS=2
else
    REPS=${BENCH_REPS:-5}
    W1_BYTES=$((4096 * MIB)) W2_BYTES=$((1024 * MIB))
    W3_SECS=5 W4_SECS=5 W5_PLAIN=9000 W5_TLS=9000 W6_SECS=15 W6_WARM=2 W7_BYTES=$((1024 * MIB))
    W8_TERMS=100 W8_SECS=10 W8_WARM=2 W9_TERMS=9000 W10_SECS=10
fi
HTTP_CONNS=64
T_START=$(date +%s)

log() { printf 'bench: %s\n' "$*" >&2; }
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------------ tools
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null || ! command -v wrk >/dev/null ||
    ! command -v gnuplot >/dev/null || ! [ -f /usr/include/openssl/ssl.h ]; then
    log "installing the benchmark peers (scripts/deps.sh --bench)"
    scripts/deps.sh --bench || { log "scripts/deps.sh --bench failed"; exit 1; }
fi
for t in nginx haproxy wrk gnuplot openssl python3 taskset setsid ss timeout; do
    command -v "$t" >/dev/null || { log "missing tool: $t"; exit 1; }
done
make -s --no-print-directory bench-tools || { log "building the load generator failed"; exit 1; }
LOADGEN=$ROOT/build/rel/bench/loadgen
AGENTD=$ROOT/build/rel/bench/agentd
TERMLOAD=$ROOT/build/rel/bench/termload
MINRELAY=$ROOT/build/rel/bench/minrelay
if [ "$(nproc)" -le "$RELAY_CPU" ] || [ "$(nproc)" -le "$LOAD_CPU" ]; then
    log "this machine has $(nproc) CPUs; set BENCH_RELAY_CPU/BENCH_LOAD_CPU"
    exit 1
fi
# The harness's own shell (and every awk/grep/python it forks) stays off the relay CPU too.
taskset -pc "$LOAD_CPU" $$ >/dev/null 2>&1 || log "could not pin the harness to CPU $LOAD_CPU"
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((2 * W5_PLAIN + 200)) ]; then
    log "ulimit -n is $NOFILE; workload 5 needs $((2 * W5_PLAIN + 200)) (raise it or lower the idle count)"
    exit 1
fi

# Background load: how busy each core is before we start anything (1 s sample of /proc/stat).
cpu_busy() {
    local a b
    a=$(grep -E '^cpu[0-9]+ ' /proc/stat)
    sleep 1
    b=$(grep -E '^cpu[0-9]+ ' /proc/stat)
    paste <(echo "$a") <(echo "$b") | awk '{
        n = (NF) / 2; t0 = 0; t1 = 0
        for (i = 2; i <= n; i++) { t0 += $i; t1 += $(i + n) }
        idle0 = $5 + $6; idle1 = $(5 + n) + $(6 + n)
        dt = t1 - t0; busy = 0
        if (dt > 0) busy = 100 * (1 - (idle1 - idle0) / dt)
        printf "%s%s=%.0f%%", (NR > 1 ? " " : ""), $1, busy }'
}
BUSY_BEFORE=$(cpu_busy | tr '\n' ' ')
case "$BUSY_BEFORE" in *=[1-9][0-9]%* | *=100%*)
    log "WARNING: other processes keep the CPUs busy ($BUSY_BEFORE) — numbers will be noisy; see bench/README.md" ;;
esac

OUTPOST_OK=0
OUTPOST_NOTE="relay missing"
if [ -x "$OUTPOST_BIN" ] && "$OUTPOST_BIN" relay --help 2>&1 | grep -q -- '--upstream'; then
    OUTPOST_OK=1
    OUTPOST_NOTE=""
fi

# ------------------------------------------------------------------ run directory, cleanup
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=$ROOT/bench/results/$STAMP
mkdir -p "$RES" || exit 1
RUN=$(mktemp -d /tmp/outpost-bench.XXXXXX) || exit 1
chmod 755 "$RUN"
RAW=$RES/raw.tsv
printf 'workload\tcase\tpeer\tmetric\tunit\tbetter\trep\tvalue\tnote\n' >"$RAW"

PGIDS=() # every process group the harness started (each peer runs under setsid)
kill_group() {
    local pg=$1
    kill -TERM -- "-$pg" 2>/dev/null || return 0
    for _ in $(seq 1 60); do
        kill -0 -- "-$pg" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -KILL -- "-$pg" 2>/dev/null
    return 0
}
cleanup() {
    local pg
    for pg in "${PGIDS[@]}"; do kill_group "$pg"; done
    PGIDS=()
    if [ -d "$RUN" ]; then
        mkdir -p "$RES/run"
        cp -r "$RUN"/. "$RES/run/" 2>/dev/null
        find "$RES/run" -name '*.pem' ! -name cert.pem -delete 2>/dev/null
        rm -rf "$RUN"
    fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

DROP=()
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    DROP=(setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups)
fi

# Free ports: N distinct ports that bind right now, chosen below the ephemeral range (32768+) so that
# the thousands of outgoing connections of a run (ours or anyone's) cannot take them in between.
free_ports() {
    python3 -c '
import random, socket, sys
want, got, held = int(sys.argv[1]), [], []
for _ in range(2000):
    if len(got) == want: break
    p = random.randrange(20000, 32000)
    if p in got: continue
    s = socket.socket()
    try: s.bind(("127.0.0.1", p))
    except OSError: s.close(); continue
    got.append(p); held.append(s)
for s in held: s.close()  # release them before the caller reads the line (it does not wait for exit)
print(" ".join(map(str, got)), flush=True)' "$1"
}

# wait_listen PID PORT: poll until PORT listens (bounded, 8 s); fails early if PID dies.
wait_listen() {
    local pid=$1 port=$2
    for _ in $(seq 1 160); do
        if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------------ certificate, upstream
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$RUN/key.pem" -out "$RUN/cert.pem" 2>/dev/null || { log "openssl req failed"; exit 1; }
cat "$RUN/cert.pem" "$RUN/key.pem" >"$RUN/combined.pem"
chmod 644 "$RUN"/*.pem

UP_PID=""
for _ in 1 2 3 4 5; do
    read -r UP_PORT < <(free_ports 1)
    UPSTREAM=127.0.0.1:$UP_PORT
    setsid taskset -c "$LOAD_CPU" "$LOADGEN" server --listen "$UPSTREAM" >"$RUN/upstream.log" 2>&1 &
    UP_PID=$!
    PGIDS+=("$UP_PID")
    wait_listen "$UP_PID" "$UP_PORT" && break
    kill_group "$UP_PID"
    cat "$RUN/upstream.log" >&2
    UP_PID=""
done
[ -n "$UP_PID" ] || { log "the upstream did not start (see $RUN/upstream.log)"; exit 1; }

# ------------------------------------------------------------------ peers
# start_peer NAME FLAVOUR (tcp|tls|http|https): sets PEER_PID (empty for direct) and PEER_ADDR.
declare -A PEER_PID PEER_ADDR PEER_STATE PEER_NOTE
start_peer_once() {
    local name=$1 fl=$2 dir="$RUN/$1-$2" pid="" port
    local -a ports
    PEER_PID[$name]="" PEER_ADDR[$name]="" PEER_STATE[$name]=ok PEER_NOTE[$name]=""
    if [ "$name" = direct ]; then
        PEER_ADDR[$name]=$UPSTREAM
        return 0
    fi
    mkdir -p "$dir/var/tmp"
    [ ${#DROP[@]} -gt 0 ] && chown -R nobody "$dir/var"
    read -r -a ports < <(free_ports 4)
    case $fl in tcp) port=${ports[0]} ;; tls) port=${ports[1]} ;; http) port=${ports[2]} ;; https) port=${ports[3]} ;; esac
    local -a cmd
    case $name in
    outpost | outpost-copy | outpost-splice-uring | outpost-relay)
        if [ $OUTPOST_OK = 0 ]; then
            PEER_STATE[$name]=na PEER_NOTE[$name]=$OUTPOST_NOTE
            return 1
        fi
        # Outpost pins its workers itself: worker i on CPU (offset + i), inside the taskset mask.
        cmd=("$OUTPOST_BIN" relay --listen "127.0.0.1:$port" --upstream "$UPSTREAM" --workers "$WORKERS"
            --cpu-offset "$RELAY_CPU" --log-level warn)
        case $fl in tcp | tls) cmd+=(--mode tcp) ;; *) cmd+=(--mode http) ;; esac
        case $fl in tls | https) cmd+=(--tls-cert-file "$RUN/cert.pem" --tls-key-file "$RUN/key.pem") ;; esac
        # plaintext tcp: inline splice unless told otherwise (the default; measured against these)
        [ "$name" = outpost-copy ] && cmd+=(--splice=off)
        [ "$name" = outpost-splice-uring ] && cmd+=(--splice=uring)
        ;;
    min-copy | min-splice) # the ceiling: bench/minrelay.c, one thread, epoll, 1 MiB buffers or pipes
        cmd=("$MINRELAY" --listen "${ports[0]}" --upstream "$UPSTREAM" --mode "${name#min-}")
        ;;
    nginx)
        sed -e "s|@VAR@|$dir/var|g" -e "s|@WORKERS@|$WORKERS|g" -e "s|@RELAY_CPU@|$RELAY_CPU|g" \
            -e "s|@UPSTREAM@|$UPSTREAM|g" -e "s|@CERT@|$RUN/cert.pem|g" -e "s|@KEY@|$RUN/key.pem|g" \
            -e "s|@PORT_TCP@|${ports[0]}|g" -e "s|@PORT_TLS@|${ports[1]}|g" \
            -e "s|@PORT_HTTP@|${ports[2]}|g" -e "s|@PORT_HTTPS@|${ports[3]}|g" \
            bench/configs/nginx.conf.tmpl >"$dir/nginx.conf"
        cmd=(nginx -p "$dir/var" -e "$dir/var/error.log" -c "$dir/nginx.conf" -g 'daemon off;')
        ;;
    haproxy | haproxy-splice)
        local splice=""
        [ "$name" = haproxy-splice ] && splice=$'    option splice-request\n    option splice-response'
        SPLICE=$splice python3 -c '
import os, sys
t = open(sys.argv[1]).read()
for k, v in [("@SPLICE@", os.environ["SPLICE"])] + [tuple(a.split("=", 1)) for a in sys.argv[3:]]:
    t = t.replace(k, v)
open(sys.argv[2], "w").write(t)' bench/configs/haproxy.cfg.tmpl "$dir/haproxy.cfg" \
            "@WORKERS@=$WORKERS" "@RELAY_CPU@=$RELAY_CPU" "@MAXCONN@=9500" "@UPSTREAM@=$UPSTREAM" \
            "@PEM@=$RUN/combined.pem" "@PORT_TCP@=${ports[0]}" "@PORT_TLS@=${ports[1]}" \
            "@PORT_HTTP@=${ports[2]}" "@PORT_HTTPS@=${ports[3]}"
        cmd=(haproxy -f "$dir/haproxy.cfg" -db)
        ;;
    *)
        log "unknown peer $name"
        return 1
        ;;
    esac
    printf '%q ' "${cmd[@]}" >"$dir/cmdline"
    echo >>"$dir/cmdline"
    setsid taskset -c "$RELAY_CPU" "${DROP[@]}" "${cmd[@]}" >"$dir/stdout.log" 2>"$dir/stderr.log" </dev/null &
    pid=$!
    PGIDS+=("$pid")
    if ! wait_listen "$pid" "$port"; then
        log "$name ($fl) did not start; see $dir/stderr.log"
        kill_group "$pid"
        PEER_STATE[$name]=error PEER_NOTE[$name]="failed to start"
        return 1
    fi
    PEER_PID[$name]=$pid
    PEER_ADDR[$name]=127.0.0.1:$port
    return 0
}

# start_peer NAME FLAVOUR: start_peer_once, retried with fresh ports if someone took a port meanwhile
# (other jobs on a shared machine pick ports too).
start_peer() {
    local a
    for a in 1 2 3 4 5; do
        start_peer_once "$@" && return 0
        [ "${PEER_STATE[$1]}" = na ] && return 1
        cp "$RUN/$1-$2/stderr.log" "$RUN/$1-$2/stderr.attempt$a.log" 2>/dev/null
        grep -qi 'address already in use' "$RUN/$1-$2/stderr.log" 2>/dev/null || return 1
        log "$1 ($2): a port was taken meanwhile; retrying with new ports"
    done
    return 1
}

stop_peer() {
    local name=$1 pid=${PEER_PID[$1]:-}
    [ -n "$pid" ] && kill_group "$pid"
    PEER_PID[$name]=""
}

# A started peer that died since is an error from then on.
peer_alive() {
    local pid=${PEER_PID[$1]:-}
    [ "$1" = direct ] && return 0
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# ------------------------------------------------------------------ recording
# rec WL CASE PEER METRIC UNIT BETTER REP VALUE [NOTE]
rec() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "${9:-}" >>"$RAW"; }

# kv KEY < line: value of KEY=... in a loadgen output line
kv() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }

# group_pids PGID: the pids of a peer's process group (nginx master + workers)
group_pids() { pgrep -g "$1" 2>/dev/null; }
# group_rss_kb PGID: summed VmRSS in KiB
group_rss_kb() {
    local p t=0 v
    for p in $(group_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo $t
}
# group_cpu_ns PGID: CPU time (ns) of every thread of the group's live processes (/proc/*/task/*/schedstat;
# nanosecond resolution, unlike utime+stime in clock ticks)
group_cpu_ns() {
    local p
    for p in $(group_pids "$1"); do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{s += $1} END {printf "%.0f", s}'
}

LG=(taskset -c "$LOAD_CPU" "$LOADGEN")

# Background load on the relay CPU during one sample: task time on RELAY_CPU (user + nice + system, plus
# steal, from /proc/stat) minus the relay's own task time, as a share of the elapsed time. irq/softirq
# time is left out on both sides: the kernel accounts the relay's loopback network work there, not to
# the relay. Recorded as metric "_bg" next to every sample.
CLK_TCK=$(getconf CLK_TCK)
cpu_busy_ns() { # CPU -> task ns since boot
    awk -v c="cpu$1" -v hz="$CLK_TCK" '$1 == c { printf "%.0f", ($2 + $3 + $4 + $9) * 1e9 / hz }' /proc/stat
}
bg_begin() {
    BG_T0=$(date +%s%N)
    BG_C0=$(cpu_busy_ns "$RELAY_CPU")
    BG_R0=0
    [ -n "${PEER_PID[$1]:-}" ] && BG_R0=$(group_cpu_ns "${PEER_PID[$1]}")
}
bg_end() { # WL CASE PEER REP
    local t1 c1 r1=0
    c1=$(cpu_busy_ns "$RELAY_CPU")
    [ -n "${PEER_PID[$3]:-}" ] && r1=$(group_cpu_ns "${PEER_PID[$3]}")
    t1=$(date +%s%N)
    BG_LAST=$(awk -v t0="$BG_T0" -v t1="$t1" -v c0="$BG_C0" -v c1="$c1" -v r0="$BG_R0" -v r1="$r1" \
        'BEGIN { b = 100 * ((c1 - c0) - (r1 - r0)) / (t1 - t0); if (b < 0) b = 0; printf "%.0f", b }')
    rec "$1" "$2" "$3" _bg % lower "$4" "$BG_LAST"
}

# measure_rep FN WL CASE PEER REP: one repetition of one row, with its background load. A repetition
# during which other processes took BG_MAX % or more of the relay CPU is disturbed: it is measured again
# (at most BG_RETRIES times) and only the last attempt's samples are kept, with the number of attempts
# thrown away as metric "_retries". The direct row does not use the relay CPU and is never repeated.
BG_MAX=${BENCH_BG_MAX:-10}
BG_RETRIES=${BENCH_BG_RETRIES:-2}
measure_rep() {
    local fn=$1 wl=$2 cs=$3 peer=$4 rep=$5 try raw=$RAW tmp=$RES/.rep.tsv
    for ((try = 0; ; try++)); do
        : >"$tmp"
        RAW=$tmp
        bg_begin "$peer"
        "$fn" "$wl" "$cs" "$peer" "$rep"
        bg_end "$wl" "$cs" "$peer" "$rep"
        RAW=$raw
        if [ "$peer" = direct ] || [ "$BG_LAST" -lt "$BG_MAX" ] || [ "$try" -ge "$BG_RETRIES" ]; then break; fi
        log "W$wl $cs, $peer, repetition $rep: other processes took ${BG_LAST}% of the relay CPU; measuring it again"
    done
    cat "$tmp" >>"$RAW"
    rm -f "$tmp"
    [ "$try" -gt 0 ] && rec "$wl" "$cs" "$peer" _retries n lower "$rep" "$try"
    return 0
}

# ------------------------------------------------------------------ measurements
# Each measure_* runs one repetition against PEER_ADDR[$peer] and records its metrics (or "error").

# measure_bulk WL CASE PEER TLS(0|1) CIPHER STREAMS BYTES DIR REP
measure_bulk() {
    local wl=$1 cs=$2 peer=$3 tls=$4 cipher=$5 streams=$6 bytes=$7 dir=$8 rep=$9 out args pg=${PEER_PID[$3]:-} c0 c1
    args=(bulk --connect "${PEER_ADDR[$peer]}" --streams "$streams" --bytes "$bytes" --dir "$dir" --timeout 120)
    [ "$tls" = 1 ] && args+=(--tls --cipher "$cipher")
    [ -n "$pg" ] && c0=$(group_cpu_ns "$pg")
    if out=$(timeout 150 "${LG[@]}" "${args[@]}" 2>>"$RUN/loadgen.err") && [ -n "$out" ]; then
        rec "$wl" "$cs" "$peer" throughput MB/s higher "$rep" \
            "$(awk -v b="$(kv bytes_per_s <<<"$out")" 'BEGIN {printf "%.1f", b / 1e6}')"
        if [ -n "$pg" ]; then # bytes moved per CPU-second the relay spent (all its processes/threads)
            c1=$(group_cpu_ns "$pg")
            rec "$wl" "$cs" "$peer" "MB per relay CPU-second" "MB/CPU-s" higher "$rep" \
                "$(awk -v b="$(kv bytes <<<"$out")" -v t0="$c0" -v t1="$c1" \
                    'BEGIN { t = (t1 - t0) / 1e9; if (t <= 0) print "error"; else printf "%.1f", b / 1e6 / t }')"
        fi
    else
        rec "$wl" "$cs" "$peer" throughput MB/s higher "$rep" error "loadgen failed"
        [ -n "$pg" ] && rec "$wl" "$cs" "$peer" "MB per relay CPU-second" "MB/CPU-s" higher "$rep" error "loadgen failed"
    fi
}

# to_us VALUE-WITH-UNIT (wrk: 812.00us, 1.23ms, 2.00s)
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1e6; else if (u == "m") f = 6e7; else f = -1
        if (f < 0) print "error"; else printf "%.1f", n * f }'
}

# measure_wrk WL CASE PEER URL REP
measure_wrk() {
    local wl=$1 cs=$2 peer=$3 url=$4 rep=$5 out rps p50 p99 errs note
    out=$(timeout $((W3_SECS + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$HTTP_CONNS" -d"${W3_SECS}s" --latency "$url" 2>&1)
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx/' <<<"$out")
    note=$(awk '/Socket errors/ {sub(/^ +/, ""); print}' <<<"$out")
    if [ -z "$rps" ] || [ -z "$p50" ] || [ -n "$errs" ] || [ "${rps%.*}" = 0 ]; then
        echo "$out" >>"$RUN/wrk.err"
        rec "$wl" "$cs" "$peer" "requests/s" "req/s" higher "$rep" error "wrk failed"
        rec "$wl" "$cs" "$peer" "p50 latency" "us" lower "$rep" error "wrk failed"
        rec "$wl" "$cs" "$peer" "p99 latency" "us" lower "$rep" error "wrk failed"
        return
    fi
    rec "$wl" "$cs" "$peer" "requests/s" "req/s" higher "$rep" "$rps" "$note"
    rec "$wl" "$cs" "$peer" "p50 latency" "us" lower "$rep" "$(to_us "$p50")" "$note"
    rec "$wl" "$cs" "$peer" "p99 latency" "us" lower "$rep" "$(to_us "$p99")" "$note"
}

# measure_hs WL CASE PEER RESUME(0|1) REP
measure_hs() {
    local wl=$1 cs=$2 peer=$3 resume=$4 rep=$5 out pg=${PEER_PID[$3]} c0 c1 conns secs args
    args=(handshakes --connect "${PEER_ADDR[$peer]}" --duration "$W4_SECS" --procs 4)
    [ "$resume" = 1 ] && args+=(--resume)
    c0=$(group_cpu_ns "$pg")
    if out=$(timeout 60 "${LG[@]}" "${args[@]}" 2>>"$RUN/loadgen.err") && [ -n "$out" ]; then
        c1=$(group_cpu_ns "$pg")
        conns=$(kv conns <<<"$out")
        secs=$(kv seconds <<<"$out")
        rec "$wl" "$cs" "$peer" "connections/s" "conn/s" higher "$rep" "$(kv conns_per_s <<<"$out")"
        rec "$wl" "$cs" "$peer" "connections per server CPU-second" "conn/CPU-s" higher "$rep" \
            "$(awk -v n="$conns" -v t0="$c0" -v t1="$c1" 'BEGIN { t = (t1 - t0) / 1e9; if (t <= 0) print "error"; else printf "%.0f", n / t }')" \
            "server CPU $(awk -v t0="$c0" -v t1="$c1" -v s="$secs" 'BEGIN {printf "%.0f%%", 100 * (t1 - t0) / 1e9 / s}')"
    else
        rec "$wl" "$cs" "$peer" "connections/s" "conn/s" higher "$rep" error "loadgen failed"
        rec "$wl" "$cs" "$peer" "connections per server CPU-second" "conn/CPU-s" higher "$rep" error "loadgen failed"
    fi
}

# measure_idle WL CASE PEER TLS(0|1) N REP — RSS growth of the relay's processes per idle connection
measure_idle() {
    local wl=$1 cs=$2 peer=$3 tls=$4 n=$5 rep=$6 pg=${PEER_PID[$3]} r0 r1 lpid est f="$RUN/idle.$$.out" args
    args=(idle --connect "${PEER_ADDR[$peer]}" --conns "$n" --hold 120 --timeout 90)
    [ "$tls" = 1 ] && args+=(--tls)
    sleep 0.2
    r0=$(group_rss_kb "$pg")
    : >"$f"
    setsid "${LG[@]}" "${args[@]}" >"$f" 2>>"$RUN/loadgen.err" &
    lpid=$!
    PGIDS+=("$lpid")
    for _ in $(seq 1 1000); do # bounded: 100 s
        grep -q READY "$f" && break
        kill -0 "$lpid" 2>/dev/null || break
        sleep 0.1
    done
    est=$(kv established <"$f" | head -1)
    if grep -q READY "$f" && [ "${est:-0}" -gt 0 ]; then
        sleep 0.3
        r1=$(group_rss_kb "$pg")
        rec "$wl" "$cs" "$peer" "RSS per idle connection" "bytes" lower "$rep" \
            "$(awk -v a="$r0" -v b="$r1" -v n="$est" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')" \
            "$est connections; RSS $r0 -> $r1 KiB"
    else
        rec "$wl" "$cs" "$peer" "RSS per idle connection" "bytes" lower "$rep" error "idle connections failed"
    fi
    kill_group "$lpid"
}

# measure_rate WL CASE PEER RATE REP
measure_rate() {
    local wl=$1 cs=$2 peer=$3 rate=$4 rep=$5 out m note
    if out=$(timeout 90 "${LG[@]}" rate --connect "${PEER_ADDR[$peer]}" --conns "$HTTP_CONNS" \
        --rate "$rate" --duration "$W6_SECS" --warmup "$W6_WARM" --path /100 2>>"$RUN/loadgen.err") && [ -n "$out" ]; then
        note="achieved $(kv rate_achieved <<<"$out") req/s, max $(kv max_us <<<"$out") us"
        rec "$wl" "$cs" "$peer" "p50 latency" us lower "$rep" "$(kv p50_us <<<"$out")" "$note"
        rec "$wl" "$cs" "$peer" "p99 latency" us lower "$rep" "$(kv p99_us <<<"$out")" "$note"
        rec "$wl" "$cs" "$peer" "p99.9 latency" us lower "$rep" "$(kv p999_us <<<"$out")" "$note"
    else
        for m in "p50 latency" "p99 latency" "p99.9 latency"; do
            rec "$wl" "$cs" "$peer" "$m" us lower "$rep" error "loadgen failed or >1% errors"
        done
    fi
}

# ------------------------------------------------------------------ the driver
# run_group WL FLAVOUR "PEERS" "CASES" FN: start every peer for FLAVOUR, then for each case and each
# repetition run every peer in turn (interleaved, so slow drift hits all peers alike), then stop them.
# FN is called as FN WL CASE PEER REP; METRICS_<FN> lists what to record when a peer cannot run.
declare -A METRICS=(
    [w_bulk]="throughput|MB/s|higher;MB per relay CPU-second|MB/CPU-s|higher"
    [w_wrk]="requests/s|req/s|higher;p50 latency|us|lower;p99 latency|us|lower"
    [w_hs]="connections/s|conn/s|higher;connections per server CPU-second|conn/CPU-s|higher"
    [w_idle]="RSS per idle connection|bytes|lower"
    [w_rate]="p50 latency|us|lower;p99 latency|us|lower;p99.9 latency|us|lower"
)
rec_unavailable() { # WL CASE PEER FN VALUE NOTE
    local IFS=';' m name unit better
    for m in ${METRICS[$4]}; do
        IFS='|' read -r name unit better <<<"$m"
        rec "$1" "$2" "$3" "$name" "$unit" "$better" 0 "$5" "$6"
    done
}
run_group() {
    local wl=$1 fl=$2 peers=$3 cases=$4 fn=$5 restart=${6:-0} p c rep
    local IFS_SAVE=$IFS
    IFS=';' read -r -a case_list <<<"$cases"
    IFS=$IFS_SAVE
    if [ "$restart" = 0 ]; then
        for p in $peers; do start_peer "$p" "$fl"; done
    fi
    for c in "${case_list[@]}"; do
        for rep in $(seq 1 "$REPS"); do
            for p in $peers; do
                [ "$restart" = 1 ] && start_peer "$p" "$fl"
                if [ "${PEER_STATE[$p]}" = na ]; then
                    [ "$rep" = 1 ] && rec_unavailable "$wl" "$c" "$p" "$fn" n/a "${PEER_NOTE[$p]}"
                elif [ "${PEER_STATE[$p]}" = error ] || ! peer_alive "$p"; then
                    [ "$rep" = 1 ] || [ "${PEER_STATE[$p]}" = ok ] &&
                        rec_unavailable "$wl" "$c" "$p" "$fn" error "${PEER_NOTE[$p]:-peer exited}"
                    PEER_STATE[$p]=error
                    PEER_NOTE[$p]=${PEER_NOTE[$p]:-peer exited}
                else
                    measure_rep "$fn" "$wl" "$c" "$p" "$rep"
                fi
                [ "$restart" = 1 ] && stop_peer "$p"
            done
        done
        log "W$wl $fl: $c done ($(($(date +%s) - T_START)) s)"
    done
    for p in $peers; do stop_peer "$p"; done
}

# Case names carry their parameters; the w_* adapters decode them.
w_bulk() { # CASE: "<n> stream(s)" or "<cipher> <dir> <n> stream(s)"
    local wl=$1 cs=$2 peer=$3 rep=$4 f
    read -r -a f <<<"$cs"
    if [ "$wl" = 1 ]; then
        measure_bulk "$wl" "$cs" "$peer" 0 "" "${f[0]}" "$W1_BYTES" up "$rep"
    else
        local cipher=TLS_AES_128_GCM_SHA256
        [ "${f[0]}" = CHACHA20-POLY1305 ] && cipher=TLS_CHACHA20_POLY1305_SHA256
        measure_bulk "$wl" "$cs" "$peer" 1 "$cipher" "${f[2]}" "$W2_BYTES" "${f[1]}" "$rep"
    fi
}
w_wrk() { # CASE: "100 B plain" ...
    local wl=$1 cs=$2 peer=$3 rep=$4 path=/100 scheme=http
    case $cs in 16*) path=/16384 ;; esac
    case $cs in *TLS) scheme=https ;; esac
    measure_wrk "$wl" "$cs" "$peer" "$scheme://${PEER_ADDR[$peer]}$path" "$rep"
}
w_hs() { local r=0; [ "$2" = resumed ] && r=1; measure_hs "$1" "$2" "$3" "$r" "$4"; }
w_idle() {
    if [ "$2" = TLS ]; then measure_idle "$1" "$2" "$3" 1 "$W5_TLS" "$4"; else measure_idle "$1" "$2" "$3" 0 "$W5_PLAIN" "$4"; fi
}
W6_RATE=""
w_rate() { measure_rate "$1" "$2" "$3" "$W6_RATE" "$4"; }

log "mode=$MODE reps=$REPS relay CPU $RELAY_CPU, load generator + upstream CPU $LOAD_CPU, workers=$WORKERS"
log "outpost: $([ $OUTPOST_OK = 1 ] && echo "$OUTPOST_BIN" || echo "n/a ($OUTPOST_NOTE)"); results: $RES"

if want 1; then
    run_group 1 tcp "direct min-copy min-splice outpost outpost-copy outpost-splice-uring nginx haproxy haproxy-splice" \
        "1 stream;32 streams" w_bulk
fi
if want 2; then
    c=""
    for ci in AES-128-GCM CHACHA20-POLY1305; do
        for d in up down; do c+="$ci $d 1 stream;$ci $d 32 streams;"; done
    done
    run_group 2 tls "outpost nginx haproxy" "${c%;}" w_bulk
fi
if want 3; then
    run_group 3 http "direct outpost nginx haproxy" "100 B plain;16 KiB plain" w_wrk
    run_group 3 https "outpost nginx haproxy" "100 B TLS;16 KiB TLS" w_wrk
fi
if want 4; then
    run_group 4 tls "outpost nginx haproxy" "full;resumed" w_hs
fi
if want 5; then
    # A fresh relay per repetition: freed memory would otherwise be reused by the next repetition.
    run_group 5 tcp "outpost nginx haproxy" "plain" w_idle 1
    run_group 5 tls "outpost nginx haproxy" "TLS" w_idle 1
fi
if want 6; then
    W6_RATE=${BENCH_W6_RATE:-}
    if [ -z "$W6_RATE" ]; then
        # 50% of the lowest relay peak (best repetition of req/s, 100 B plain, W3): every peer then runs at
        # <= 50% of its own peak. The best repetition, not the median: one disturbed run must not drag it.
        W6_RATE=$(python3 -c '
import csv, statistics, sys
v = {}
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    if r["workload"] == "3" and r["case"] == "100 B plain" and r["peer"] != "direct" and r["metric"] == "requests/s":
        try: v.setdefault(r["peer"], []).append(float(r["value"]))
        except ValueError: pass
m = [max(x) for x in v.values() if x]
print(int(min(m) / 2) if m else "")' "$RAW")
    fi
    [ -z "$W6_RATE" ] && W6_RATE=10000
    log "W6 offered load: $W6_RATE req/s"
    run_group 6 http "direct outpost nginx haproxy" "100 B plain @ $W6_RATE req/s" w_rate
fi

. bench/workspace.sh
want 7 && workload_7
want 8 && workload_8
want 9 && workload_9
want 10 && workload_10

# ------------------------------------------------------------------ report
cat >"$RES/meta.json" <<EOF
{"mode": "$MODE", "reps": $REPS, "timestamp": "$STAMP", "relay_cpu": $RELAY_CPU, "load_cpu": $LOAD_CPU,
 "workers": $WORKERS, "outpost": "$([ $OUTPOST_OK = 1 ] && echo "$OUTPOST_BIN" || echo "n/a")",
 "outpost_commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)",
 "kernel": "$(uname -r)", "cpu": "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)",
 "nproc": $(nproc), "nginx": "$(nginx -v 2>&1 | sed 's|.*/||')",
 "haproxy": "$(haproxy -v 2>/dev/null | awk 'NR == 1 {print $3}')", "wrk": "$(wrk -v 2>&1 | awk 'NR == 1 {print $2}')",
 "openssl": "$(openssl version | awk '{print $2}')",
 "busy_before": "$BUSY_BEFORE", "busy_after": "$(cpu_busy | tr '\n' ' ')",
 "loadavg_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "sizes": {"w1_bytes": $W1_BYTES, "w2_bytes": $W2_BYTES, "w3_seconds": $W3_SECS, "w4_seconds": $W4_SECS,
           "w5_plain_conns": $W5_PLAIN, "w5_tls_conns": $W5_TLS, "w6_seconds": $W6_SECS, "w6_rate": ${W6_RATE:-0}, "w7_bytes": $W7_BYTES, "w8_terminals": $W8_TERMS, "w8_seconds": $W8_SECS, "w9_terminals": $W9_TERMS, "w10_seconds": $W10_SECS,
           "http_conns": $HTTP_CONNS}}
EOF
cleanup
BENCH_BG_MAX=$BG_MAX python3 bench/report.py "$RES"
rc=$?
[ $rc = 3 ] && { log "the run was disturbed by other processes (see the '!' rows); rerun on a quiet machine"; exit 3; }
[ $rc = 0 ] || { log "report failed"; exit 1; }
ln -sfn "$STAMP" "$ROOT/bench/results/latest"
log "done in $(($(date +%s) - T_START)) s; results in bench/results/$STAMP (bench/results/latest)"
