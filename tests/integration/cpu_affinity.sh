#!/usr/bin/env bash
# Worker pinning respects the process's CPU affinity: a relay started under `taskset -c 1` keeps its
# worker threads on CPU 1 (one worker, no offset, would otherwise be CPU 0); without a restriction,
# --cpu-offset 1 with two workers still puts worker 0 on CPU 1 and worker 1 on CPU 0. Needs 2 CPUs.
. "$(dirname "$0")/../lib/common.sh"
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs"; exit 77; }
command -v taskset >/dev/null || { echo "taskset missing"; exit 77; }
UP=$(free_port)
bg echo "$SERVERS" echo $UP
wait_port $UP
# worker_cpus PID NAME: the Cpus_allowed_list of the process's thread called NAME (bounded: 5 s)
worker_cpus() {
    local i t
    for ((i = 0; i < 50; i++)); do
        for t in /proc/$1/task/*; do
            [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { awk '/^Cpus_allowed_list/ {print $2}' "$t/status"; return 0; }
        done
        sleep 0.1
    done
    echo none
}
P1=$(free_port)
bg r1 taskset -c 1 "$OUTPOST" relay --listen 127.0.0.1:$P1 --upstream 127.0.0.1:$UP --workers 1
R1=$LAST_PID
wait_port $P1
got=$(worker_cpus $R1 outpost-w0)
[ "$got" = 1 ] || fail "under taskset -c 1, worker 0 is allowed CPUs '$got', not 1"
ok "under taskset -c 1, one worker stays on CPU 1"
[ "$(echo hi | socat -t 2 - TCP:127.0.0.1:$P1)" = hi ] || fail "the pinned relay does not relay"
ok "and relays"
P2=$(free_port)
bg r2 taskset -c 1 "$OUTPOST" relay --listen 127.0.0.1:$P2 --upstream 127.0.0.1:$UP --workers 2
R2=$LAST_PID
wait_port $P2
[ "$(worker_cpus $R2 outpost-w0),$(worker_cpus $R2 outpost-w1)" = "1,1" ] ||
    fail "under taskset -c 1, two workers: $(worker_cpus $R2 outpost-w0),$(worker_cpus $R2 outpost-w1)"
ok "under taskset -c 1, two workers both stay on CPU 1"
P3=$(free_port)
bg r3 "$OUTPOST" relay --listen 127.0.0.1:$P3 --upstream 127.0.0.1:$UP --workers 2 --cpu-offset 1
R3=$LAST_PID
wait_port $P3
[ "$(worker_cpus $R3 outpost-w0),$(worker_cpus $R3 outpost-w1)" = "1,0" ] ||
    fail "--cpu-offset 1: $(worker_cpus $R3 outpost-w0),$(worker_cpus $R3 outpost-w1), not 1,0"
ok "unrestricted, --cpu-offset 1 pins worker 0 to CPU 1 and worker 1 to CPU 0"
