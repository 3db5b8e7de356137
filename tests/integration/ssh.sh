#!/usr/bin/env bash
# tests/integration/ssh.sh — the agent's own SSH server with the real OpenSSH client, through a workspace
# proxy (eu) and through the primary: a primary, one proxy, the real `outpost agent` (no sshd anywhere).
# `outpost config-ssh --ssh-config-file` then `ssh -F`: a command's output and exit codes pass through, the
# environment (SetEnv) and a PTY, scp of 64 MiB each way with matching SHA-256 (MiB/s printed per region),
# sftp, rsync, ssh -L to a Python HTTP server, `outpost ssh` itself, and host-key checking on: a changed key
# in the known-hosts file is refused until config-ssh writes the recorded one again. config-ssh keeps the
# rest of the file and rewrites its section idempotently.
. "$(dirname "$0")/../lib/common.sh"
for c in ssh scp sftp rsync ssh-keygen; do command -v $c >/dev/null || { echo "$c missing (scripts/deps.sh)"; exit 77; }; done
unset CODER_URL CODER_SESSION_TOKEN CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS
export CODER_CONFIG_DIR=$T/cli
P=$(free_port) Q=$(free_port)
primary_eu_workspace
mkdir -p "$T/ws"
cd "$T/ws"
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg agent "$OUTPOST" agent --data-dir "$T/agent-data"
AGENT_PID=$LAST_PID
cd "$ROOT"
agent_field() {
    "$OUTPOST" list -o json | python3 -c '
import json,sys
a=json.load(sys.stdin)[0]["latest_build"]["resources"][0]["agents"][0]
print(",".join(sorted(a["regions"])) if sys.argv[1]=="regions" else a.get(sys.argv[1],""))' "$1"
}
for ((i = 0; i < 100; i++)); do
    [ "$(agent_field regions)" = eu,primary ] && [ -n "$(agent_field ssh_host_key)" ] && break
    sleep 0.2
done
[ "$(agent_field regions)" = eu,primary ] || fail "the agent is not connected to primary and eu"
KEY=$(agent_field ssh_host_key)
[ -f "$T/agent-data/ssh_host_ed25519_key" ] || fail "no host key in the agent's data directory"
[ "$(stat -c %a "$T/agent-data/ssh_host_ed25519_key")" = 600 ] || fail "the host key is not mode 0600"
[ "$(ssh-keygen -y -f "$T/agent-data/ssh_host_ed25519_key")" = "$KEY" ] ||
    fail "the primary's key ($KEY) is not the agent's"
ss -ltnpH | grep -q "pid=$AGENT_PID," && fail "the agent listens: $(ss -ltnpH | grep "pid=$AGENT_PID,")"
ok "the agent generated its ed25519 host key (0600) and the primary returns it on the agent JSON; no listening socket"

# --- config-ssh: the section is written between markers, the rest of the file kept, a rerun (with Coder's -y) is a no-op ---
printf 'Host other\n    HostName 192.0.2.1\n    User me\n' >"$T/ssh_config"
"$OUTPOST" config-ssh --ssh-config-file "$T/ssh_config" --proxy eu >"$T/cfg.out" 2>&1 || fail "config-ssh: $(cat "$T/cfg.out")"
cp "$T/ssh_config" "$T/ssh_config.1"
"$OUTPOST" config-ssh -y --ssh-config-file "$T/ssh_config" --proxy eu >"$T/cfg2.out" 2>&1 || fail "config-ssh again"
cmp -s "$T/ssh_config" "$T/ssh_config.1" || fail "a second config-ssh changed the file: $(diff "$T/ssh_config.1" "$T/ssh_config")"
grep -q '^Unchanged:' "$T/cfg2.out" || fail "the rerun did not say unchanged: $(cat "$T/cfg2.out")"
[ "$(head -3 "$T/ssh_config")" = "$(printf 'Host other\n    HostName 192.0.2.1\n    User me')" ] || fail "other content lost"
[ "$(grep -c 'START-OUTPOST' "$T/ssh_config")" = 1 ] && grep -q '^Host outpost\.\*$' "$T/ssh_config" ||
    fail "no managed section: $(cat "$T/ssh_config")"
grep -q "^outpost.ws $KEY\$" "$T/cli/known_hosts" || fail "known_hosts: $(cat "$T/cli/known_hosts")"
sed "s/--proxy 'eu'/--proxy 'primary'/" "$T/ssh_config" >"$T/ssh_config_primary"
ok "config-ssh wrote the Host outpost.* section (markers, other content kept, rerun unchanged) and the agent's key to known_hosts"

# --- commands, exit codes, environment, PTY, through each region ---
for region in eu primary; do
    F=$T/ssh_config; [ $region = primary ] && F=$T/ssh_config_primary
    out=$(ssh -F "$F" outpost.ws 'echo $((6*7))' 2>"$T/ssh-$region.err"); rc=$?
    [ "$out" = 42 ] && [ $rc = 0 ] || fail "$region: ssh outpost.ws 'echo \$((6*7))': '$out' rc $rc: $(cat "$T/ssh-$region.err")"
    ssh -F "$F" outpost.ws 'exit 3' 2>/dev/null; rc=$?
    [ $rc = 3 ] || fail "$region: exit 3 came back as $rc"
    out=$(ssh -F "$F" -o SetEnv=OUTPOST_T=hello outpost.ws 'echo "$OUTPOST_T $USER"; echo err >&2' 2>"$T/err-$region")
    [ "$out" = "hello $(id -un)" ] && [ "$(cat "$T/err-$region")" = err ] || fail "$region: env/stderr: '$out' '$(cat "$T/err-$region")'"
    out=$(ssh -F "$F" -tt outpost.ws 'tty; echo "TERM=$TERM"; stty size' </dev/null 2>/dev/null | tr -d '\r')
    grep -q '^/dev/pts/' <<<"$out" && grep -q '^TERM=.' <<<"$out" || fail "$region: no PTY: $out"
    ok "$region: ssh -F: 'echo \$((6*7))' printed 42 (exit 0), 'exit 3' exited 3, SetEnv and stderr passed, a PTY with TERM"
done
out=$("$OUTPOST" ssh ws --proxy primary -- 'echo $((6*7)); exit 5' 2>"$T/outpost-ssh.err"); rc=$?
[ "$out" = 42 ] && [ $rc = 5 ] || fail "outpost ssh: '$out' rc $rc: $(cat "$T/outpost-ssh.err")"
ok "outpost ssh ws --proxy primary -- command: output and exit status 5 passed through"

# --- scp 64 MiB each way, sftp, rsync ---
head -c $((64 << 20)) /dev/urandom >"$T/big"
SUM=$(sha256sum <"$T/big" | cut -d' ' -f1)
for region in eu primary; do
    F=$T/ssh_config; [ $region = primary ] && F=$T/ssh_config_primary
    s=$(date +%s.%N)
    scp -q -F "$F" "$T/big" "outpost.ws:$T/ws/big.$region" 2>"$T/scp-$region.err" || fail "$region: scp up: $(cat "$T/scp-$region.err")"
    m=$(date +%s.%N)
    scp -q -F "$F" "outpost.ws:$T/ws/big.$region" "$T/big.back.$region" 2>>"$T/scp-$region.err" || fail "$region: scp down: $(cat "$T/scp-$region.err")"
    e=$(date +%s.%N)
    [ "$(sha256sum <"$T/ws/big.$region" | cut -d' ' -f1)" = "$SUM" ] || fail "$region: scp up: SHA-256 differs"
    [ "$(sha256sum <"$T/big.back.$region" | cut -d' ' -f1)" = "$SUM" ] || fail "$region: scp down: SHA-256 differs"
    ok "$region: scp 64 MiB up and down, SHA-256 matches ($(python3 -c "print('%.0f MiB/s up, %.0f MiB/s down' % (64/($m-$s), 64/($e-$m)))"))"
    rm -f "$T/ws/big.$region" "$T/big.back.$region"
done
echo "sftp payload $RANDOM" >"$T/small"
printf 'put %s %s\nget %s %s\nls %s\n' "$T/small" "$T/ws/small.sftp" "$T/ws/small.sftp" "$T/small.back" "$T/ws" >"$T/batch"
sftp -q -F "$T/ssh_config" -b "$T/batch" outpost.ws >"$T/sftp.out" 2>&1 || fail "sftp: $(cat "$T/sftp.out")"
cmp -s "$T/small" "$T/ws/small.sftp" && cmp -s "$T/small" "$T/small.back" && grep -q small.sftp "$T/sftp.out" || fail "sftp: $(cat "$T/sftp.out")"
ok "sftp through eu: put, get and ls"
mkdir -p "$T/tree/sub" && head -c 100000 /dev/urandom >"$T/tree/sub/f" && echo a >"$T/tree/a"
rsync -a -e "ssh -F $T/ssh_config" "$T/tree/" "outpost.ws:$T/ws/tree/" 2>"$T/rsync.err" || fail "rsync: $(cat "$T/rsync.err")"
diff -r "$T/tree" "$T/ws/tree" >/dev/null || fail "rsync: the trees differ"
ok "rsync -e 'ssh -F ...' through eu: the tree arrived"

# --- ssh -L to a Python HTTP server in the workspace ---
H=$(free_port) L=$(free_port)
mkdir -p "$T/www" && head -c 300000 /dev/urandom >"$T/www/blob"
bg http python3 -m http.server $H --bind 127.0.0.1 --directory "$T/www"
wait_port $H
bg sshL ssh -F "$T/ssh_config" -N -L 127.0.0.1:$L:127.0.0.1:$H outpost.ws
wait_port $L
for i in 1 2 3; do
    curl -sf "http://127.0.0.1:$L/blob" -o "$T/blob.$i" || fail "ssh -L: curl $i failed: $(cat "$T/sshL.log")"
    cmp -s "$T/www/blob" "$T/blob.$i" || fail "ssh -L: the body differs"
done
ok "ssh -L $L:127.0.0.1:$H through eu: three HTTP downloads of 300 kB identical"

# --- host-key checking is on: a changed key is refused, config-ssh restores the recorded one ---
ssh-keygen -q -t ed25519 -N '' -f "$T/otherkey" >/dev/null
sed -i "s|^outpost.ws .*|outpost.ws $(cut -d' ' -f1,2 "$T/otherkey.pub")|" "$T/cli/known_hosts"
out=$(ssh -F "$T/ssh_config" outpost.ws 'echo reached' 2>"$T/changed.err"); rc=$?
[ $rc = 255 ] && [ -z "$out" ] && grep -qi 'host key' "$T/changed.err" || fail "a changed key was not refused: rc $rc '$out' $(cat "$T/changed.err")"
"$OUTPOST" config-ssh --ssh-config-file "$T/ssh_config" --proxy eu >/dev/null 2>&1 || fail "config-ssh to restore"
[ "$(ssh -F "$T/ssh_config" outpost.ws 'echo reached' 2>/dev/null)" = reached ] || fail "the restored key does not work"
ok "a changed key in the known-hosts file is refused (exit 255: $(grep -io 'host key verification failed' "$T/changed.err" | head -1)); config-ssh restores the recorded one"

# --- the session limit: with --ssh-max-sessions 1 a second session is refused with a clear error ---
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
CODER_AGENT_URL=$URL CODER_AGENT_TOKEN=$TOKEN bg agent2 "$OUTPOST" agent --data-dir "$T/agent-data" --ssh-max-sessions 1
AGENT_PID=$LAST_PID
for ((i = 0; i < 100; i++)); do
    [ "$(ssh -F "$T/ssh_config" outpost.ws 'echo up' 2>/dev/null)" = up ] && break
    sleep 0.2
done
[ $i -lt 100 ] || fail "the restarted agent does not take SSH sessions: $(tail -5 "$T/agent2.log")"
ssh -F "$T/ssh_config" outpost.ws 'echo held; sleep 4' >"$T/held.out" 2>&1 &
HELD=$!
for ((i = 0; i < 50; i++)); do grep -q held "$T/held.out" && break; sleep 0.1; done
out=$(ssh -F "$T/ssh_config" outpost.ws 'echo second' 2>"$T/second.err"); rc=$?
[ $rc != 0 ] && [ -z "$out" ] && grep -q 'too many SSH sessions' "$T/second.err" ||
    fail "a second session over --ssh-max-sessions 1: rc $rc '$out' $(cat "$T/second.err")"
wait $HELD || fail "the first session did not finish: $(cat "$T/held.out")"
[ "$(ssh -F "$T/ssh_config" outpost.ws 'echo again' 2>/dev/null)" = again ] || fail "no session after the first ended"
ok "--ssh-max-sessions 1: a second session is refused ($(grep -o 'too many SSH sessions' "$T/second.err" | head -1)), the next one after the first ended works"
