#!/usr/bin/env bash
# With io_uring disabled by the kernel (sysctl kernel.io_uring_disabled=2, what a locked-down host or
# container does), the relay refuses to start with an error that names the cause. Needs root; the
# setting is restored at once (and by the trap on any exit).
. "$(dirname "$0")/../lib/common.sh"
F=/proc/sys/kernel/io_uring_disabled
[ -w "$F" ] || { echo "cannot write $F (not root, or no such sysctl)"; exit 77; }
old=$(cat "$F")
# restore keeps the exit status it was called with (cleanup reads $? to decide the test's result), and
# fails the test when the host setting cannot be put back.
restore() {
    local rc=$?
    [ "$(cat "$F")" = "$old" ] && return $rc
    echo "$old" >"$F" || { echo "FAIL: could not restore $F to $old" >&2; return 1; }
    return $rc
}
trap 'restore; cleanup' EXIT
trap 'exit 1' INT TERM HUP QUIT
P=$(free_port)
echo 2 >"$F" || { echo "cannot set $F"; exit 77; }
"$OUTPOST" relay --listen 127.0.0.1:$P --upstream 127.0.0.1:1 >"$T/out.log" 2>&1
rc=$?
restore
[ $rc -ne 0 ] || fail "relay started although io_uring is disabled"
grep -q 'io_uring setup failed: Operation not permitted (io_uring is blocked' "$T/out.log" ||
    fail "message does not name the cause: $(cat "$T/out.log")"
ok "io_uring disabled: refused to start (exit $rc): $(grep -o 'io_uring setup failed.*' "$T/out.log" | head -1)"
# And everything works again once it is allowed.
bg relay "$OUTPOST" relay --listen 127.0.0.1:$P --upstream 127.0.0.1:1
wait_port $P
ok "io_uring re-enabled: the relay starts"
