#!/usr/bin/env bash
# Interactive prompts on a real terminal (a pty from Python): `outpost login <url>` on a fresh primary
# asks for the first user's username, email and password (without echoing the password), and
# `outpost wsproxy create` asks for the name, display name (default: the name) and icon; `wsproxy delete`
# asks for confirmation.
set -u
. "$(dirname "$0")/../lib/common.sh" # $T, sanitizer reports in $T/*.log fail the test
: "${OUTPOST_BIN:?}"
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
command -v curl >/dev/null || { echo "curl missing"; exit 77; }
SERVER_PID=
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
export CODER_CONFIG_DIR=$T/cfg
unset CODER_URL CODER_SESSION_TOKEN
"$OUTPOST_BIN" server --http-address "127.0.0.1:$PORT" --data-dir "$T/data" >"$T/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 1 100); do curl -fsS "$URL/api/v2/buildinfo" >/dev/null 2>&1 && break; sleep 0.1; done

cat >"$T/drive_tty.py" <<'PY'
import os, pty, select, sys, time
# usage: pty.py <expect1> <answer1> ... -- argv...
sep = sys.argv.index("--")
pairs = sys.argv[1:sep]
argv = sys.argv[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
buf = b""
def expect(s, timeout=10):
    global buf
    end = time.time() + timeout
    while s.encode() not in buf:
        if time.time() > end:
            sys.stdout.write(buf.decode(errors="replace"))
            sys.exit("timeout waiting for %r" % s)
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    buf = buf[buf.index(s.encode()) + len(s):]
for i in range(0, len(pairs), 2):
    expect(pairs[i])
    os.write(fd, pairs[i + 1].encode() + b"\n")
rest = b""
status = None
end = time.time() + 20  # bounded: a child still waiting for input must not hang the test
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if chunk:
            rest += chunk
            continue
        break  # the child closed the pty (it exited)
    wpid, st = os.waitpid(pid, os.WNOHANG)
    if wpid:
        status = st
        break
if status is None:
    wpid, st = os.waitpid(pid, os.WNOHANG)
    if wpid:
        status = st
    elif time.time() >= end:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sys.stdout.write((buf + rest).decode(errors="replace"))
        sys.exit("child still running after its answers (waiting for input?)")
    else:
        status = os.waitpid(pid, 0)[1]
sys.stdout.write((buf + rest).decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
PY
fails=0
out=$(python3 "$T/drive_tty.py" "What username would you like?" admin "What's your email?" admin@example.com \
    "Enter a password:" "Prompted-pass-1" -- "$OUTPOST_BIN" login "$URL" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "Welcome to Outpost, admin!" && ! echo "$out" | grep -q "Prompted-pass-1"; then
    echo "ok   login prompts for the first user (password not echoed)"
else
    echo "FAIL login prompts (rc=$rc): $out"; fails=$((fails + 1))
fi
out=$(python3 "$T/drive_tty.py" "Proxy Name:" eu "Display Name: (eu)" "" "Icon URL: (/emojis/1f5fa.png)" "" \
    -- "$OUTPOST_BIN" wsproxy create 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q 'Workspace Proxy "eu" created successfully.'; then
    echo "ok   wsproxy create prompts for name, display name and icon"
else
    echo "FAIL create prompts (rc=$rc): $out"; fails=$((fails + 1))
fi
got=$("$OUTPOST_BIN" wsproxy ls -c "name,display name,icon url" | grep '^eu')
if echo "$got" | grep -Eq '^eu +eu +/emojis/1f5fa.png$'; then
    echo "ok   prompt defaults applied (display name = name, default icon)"
else
    echo "FAIL defaults: $got"; fails=$((fails + 1))
fi
out=$(python3 "$T/drive_tty.py" "Delete this workspace proxy: eu? (yes/no)" no -- "$OUTPOST_BIN" wsproxy delete eu 2>&1); rc=$?
if [ $rc -ne 0 ] && "$OUTPOST_BIN" wsproxy ls | grep -q '^eu '; then
    echo "ok   answering no keeps the proxy"
else
    echo "FAIL delete no (rc=$rc): $out"; fails=$((fails + 1))
fi
out=$(python3 "$T/drive_tty.py" "Delete this workspace proxy: eu? (yes/no)" yes -- "$OUTPOST_BIN" wsproxy delete eu 2>&1); rc=$?
if [ $rc -eq 0 ] && ! "$OUTPOST_BIN" wsproxy ls | grep -q '^eu '; then
    echo "ok   answering yes deletes it"
else
    echo "FAIL delete yes (rc=$rc): $out"; fails=$((fails + 1))
fi
echo "$fails failures"
[ $fails -eq 0 ]
