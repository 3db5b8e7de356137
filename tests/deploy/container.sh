#!/usr/bin/env bash
# tests/deploy/container.sh — the workspace proxy image (scripts/container.sh: a mmdebstrap Debian root
# imported into podman, deploy/container/Dockerfile built on it) against a primary on the host (`make
# test-container`; not part of make test: the first base root takes about a minute to make):
#   - with deploy/container/seccomp-io_uring.json the proxy runs as uid 999, registers, and
#     `outpost wsproxy ls` turns ok; /healthz answers; SIGTERM (podman stop) drains and exits 0 and the
#     primary no longer reports it ok;
#   - with podman's default seccomp profile io_uring is refused and the proxy exits non-zero naming
#     io_uring, which is why the profile exists.
. "$(dirname "$0")/../lib/common.sh"
for t in podman mmdebstrap; do command -v $t >/dev/null || fail "$t is not installed (apt-get install $t)"; done
NAME=outpost-test-$$
trap 'rc=$?; podman rm -f -t 0 "$NAME" "$NAME-default" >/dev/null 2>&1; (exit $rc); cleanup' EXIT
image=$(bash "$ROOT/scripts/container.sh" 2>"$T/container-build.log") || fail "scripts/container.sh: $(tail -n 20 "$T/container-build.log")"
ok "image $image built from the mmdebstrap root"
[ "$(podman image inspect -f '{{.Config.User}} {{json .Config.Entrypoint}}' "$image")" = '999:999 ["/usr/bin/outpost","wsproxy","server"]' ] ||
    fail "image user/entrypoint: $(podman image inspect -f '{{.Config.User}} {{json .Config.Entrypoint}}' "$image")"

primary_with_proxy ct
Q=$(free_port)
runtime=()
[ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && command -v runc >/dev/null && runtime=(--runtime runc)
run() { # NAME [podman run options] -- the container in the foreground (bg keeps its output)
    local name=$1
    shift
    podman "${runtime[@]}" run --rm --name "$name" --network host --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" \
        --ulimit nproc=32768:32768 -e CODER_PRIMARY_ACCESS_URL=http://127.0.0.1:$P -e CODER_PROXY_SESSION_TOKEN="$TOKEN" \
        -e CODER_HTTP_ADDRESS=127.0.0.1:$Q -e CODER_ACCESS_URL=http://127.0.0.1:$Q "$@" "$image"
}

# --- podman's default profile blocks io_uring ---
run "$NAME-default" >"$T/default.log" 2>&1
rc=$?
[ $rc != 0 ] || fail "the proxy ran under podman's default seccomp profile"
grep -q 'io_uring setup failed' "$T/default.log" || fail "no io_uring cause in: $(tail -n 5 "$T/default.log")"
ok "default seccomp profile: exit $rc, $(grep -o 'io_uring setup failed[^"]*' "$T/default.log" | head -n 1)"

# --- with the shipped profile it runs and turns ok ---
bg proxy run "$NAME" --security-opt seccomp="$ROOT/deploy/container/seccomp-io_uring.json"
proxy_pid=$LAST_PID
for ((i = 0; i < 80; i++)); do
    "$OUTPOST" wsproxy ls >"$T/ls.out" 2>&1
    grep -Eq '^ct +.* ok' "$T/ls.out" && break
    kill -0 $proxy_pid 2>/dev/null || fail "the proxy container exited"
    sleep 0.25
done
grep -Eq '^ct +.* ok' "$T/ls.out" || fail "wsproxy ls did not show ct ok within 20 s: $(cat "$T/ls.out")"
ok "outpost wsproxy ls: ct ok (the proxy in the container registered with the host's primary)"
[ "$(curl -s http://127.0.0.1:$Q/healthz)" = OK ] || fail "/healthz through the container"
[ "$(podman exec "$NAME" id -u)" = 999 ] || fail "the container's process is not uid 999"
ok "/healthz answers; the proxy runs as uid 999"

podman stop -t 20 "$NAME" >/dev/null || fail "podman stop"
for ((i = 0; i < 80; i++)); do kill -0 $proxy_pid 2>/dev/null || break; sleep 0.25; done
kill -0 $proxy_pid 2>/dev/null && fail "the container is still running 20 s after podman stop"
wait $proxy_pid
rc=$?
[ $rc = 0 ] || fail "the proxy exited $rc on SIGTERM, want 0 (drained): $(tail -n 5 "$T/proxy.log")"
ok "podman stop: SIGTERM drained, exit 0"
