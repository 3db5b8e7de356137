#!/usr/bin/env bash
# Disk full under the SQLite primary: its data directory is a small tmpfs, filled up after the first
# workspace exists. Writes must fail with a clear error (507, "database is full") and change nothing,
# reads (workspace and user lists) keep working, the process keeps running; once space is freed, writes
# work again and the database passes SQLite's integrity check with exactly the rows that were committed.
# Short form: 10 refused writes; full form (make test-faults): 200.
. "$(dirname "$0")/../lib/common.sh"
[ "$(id -u)" = 0 ] || { echo "needs root to mount a tmpfs"; exit 77; }
N=10
[ "${OUTPOST_FAULTS:-short}" = full ] && N=200
mkdir -p "$T/data"
mount -t tmpfs -o size=8m tmpfs "$T/data" 2>"$T/mount.err" || { echo "cannot mount a tmpfs: $(cat "$T/mount.err")"; exit 77; }
umount_data() { umount -l "$T/data" 2>/dev/null; return 0; }
CLEANUP_HOOKS+=(umount_data)
P=$(free_port)
export CODER_CONFIG_DIR=$T/cli
bg primary "$OUTPOST" server --http-address 127.0.0.1:$P --access-url http://127.0.0.1:$P --data-dir "$T/data"
PRIMARY=$LAST_PID
wait_port $P
"$OUTPOST" login http://127.0.0.1:$P --first-user-username admin --first-user-email a@b.c \
    --first-user-password 'Sup3rSecret!pw' >"$T/login.out" 2>&1 || fail "login"
"$OUTPOST" create before >"$T/before.out" 2>&1 || fail "create before: $(cat "$T/before.out")"

dd if=/dev/zero of="$T/data/filler" bs=64k 2>/dev/null
avail=$(df --output=avail -k "$T/data" | tail -1 | tr -d ' ')
[ "$avail" -le 64 ] || fail "the tmpfs still has $avail KiB free"
refused=0
for ((i = 1; i <= N; i++)); do
    if "$OUTPOST" create "full$i" >"$T/full.out" 2>&1; then fail "create full$i succeeded on a full disk"; fi
    grep -q "database is full" "$T/full.out" || fail "unclear error on a full disk: $(cat "$T/full.out")"
    if "$OUTPOST" users create --username "u$i" --email "u$i@x.y" --password 'Another-pass-1' >"$T/u.out" 2>&1; then
        fail "users create u$i succeeded on a full disk"
    fi
    grep -q "database is full" "$T/u.out" || fail "unclear error on a full disk: $(cat "$T/u.out")"
    refused=$((refused + 2))
done
head -1 "$T/full.out"
ok "$refused writes refused with a clear error on a full disk"
"$OUTPOST" list >"$T/list.out" 2>&1 || fail "list on a full disk: $(cat "$T/list.out")"
grep -q "admin/before" "$T/list.out" || fail "list lost the workspace: $(cat "$T/list.out")"
"$OUTPOST" users list >"$T/users.out" 2>&1 || fail "users list on a full disk"
grep -q "^admin " "$T/users.out" || fail "users list lost admin"
kill -0 "$PRIMARY" || fail "the primary died"
ok "reads keep working and the primary keeps running"

rm -f "$T/data/filler"
"$OUTPOST" create after >"$T/after.out" 2>&1 || fail "create after freeing space: $(cat "$T/after.out")"
"$OUTPOST" users create --username later --email later@x.y --password 'Another-pass-1' >/dev/null 2>&1 ||
    fail "users create after freeing space"
ok "writes work again once space is freed"
python3 - "$T/data/outpost.db" <<'PY' || fail "database check"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity check failed"
ws = sorted(r[0] for r in c.execute("SELECT name FROM workspaces"))
assert ws == ["after", "before"], ws
users = sorted(r[0] for r in c.execute("SELECT username FROM users"))
assert users == ["admin", "later"], users
agents = c.execute("SELECT count(*) FROM workspace_agents").fetchone()[0]
assert agents == 2, agents
print("integrity ok; workspaces", ws, "users", users)
PY
ok "no partial writes: the database holds exactly the committed rows, integrity check ok"
