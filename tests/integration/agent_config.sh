#!/usr/bin/env bash
# tests/integration/agent_config.sh — `outpost agent` configuration from the outside: --help matches the
# golden file, docs/agent.md is the --docs-markdown output of the same table, --check accepts a valid
# configuration (flags, CODER_AGENT_* environment, YAML, a token file) and refuses each kind of bad value
# with exit 78 naming the option, --write-config never prints the token, a positional argument is EX_USAGE.
# UPDATE_GOLDEN=1 rewrites the golden file and docs/agent.md.
. "$(dirname "$0")/../lib/common.sh"
GOLDEN=$ROOT/tests/integration/golden/agent_help.golden
unset CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS CODER_AGENT_CONFIG

"$OUTPOST" agent --help >"$T/help.out" 2>&1 || fail "--help exit code"
[ -n "${UPDATE_GOLDEN:-}" ] && { mkdir -p "$(dirname "$GOLDEN")"; cp "$T/help.out" "$GOLDEN"; }
diff -u "$GOLDEN" "$T/help.out" || fail "--help differs from $GOLDEN (UPDATE_GOLDEN=1 to accept)"
for env in CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_TOKEN_FILE CODER_AGENT_APPS CODER_AGENT_CA_FILE \
    CODER_AGENT_SPARES CODER_AGENT_MAX_STREAMS CODER_AGENT_CONFIG; do
    grep -q "\$$env\$" "$T/help.out" || fail "--help does not list $env"
done
ok "--help matches the golden file and lists every option with its env name"
"$OUTPOST" agent --docs-markdown >"$T/docs.md" || fail "--docs-markdown"
[ -n "${UPDATE_GOLDEN:-}" ] && cp "$T/docs.md" "$ROOT/docs/agent.md"
diff -u "$ROOT/docs/agent.md" "$T/docs.md" || fail "docs/agent.md is stale (UPDATE_GOLDEN=1 to regenerate)"
ok "docs/agent.md is generated from the same option table"

TOKEN="0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0:$(printf 'Ab1%.0s' {1..21})x"
export CODER_AGENT_URL=http://127.0.0.1:1
CODER_AGENT_TOKEN=$TOKEN "$OUTPOST" agent --check --app 'slug=web,url=http://127.0.0.1:8000,name=Web' \
    --app 'slug=api,url=http://api.localhost:9000,share=public,subdomain=true' >"$T/out" 2>&1 ||
    fail "valid flags: $(cat "$T/out")"
grep -qx 'configuration OK' "$T/out" || fail "--check prints configuration OK"
ok "--check: token in the environment, two --app flags"
printf '%s\n' "$TOKEN" >"$T/token"
CODER_AGENT_TOKEN_FILE=$T/token CODER_AGENT_APPS='slug=a,url=http://127.0.0.1:1;slug=b,url=http://127.0.0.1:2' \
    "$OUTPOST" agent --check >"$T/out" 2>&1 || fail "token file + CODER_AGENT_APPS: $(cat "$T/out")"
ok "--check: CODER_AGENT_TOKEN_FILE and ';'-separated CODER_AGENT_APPS"
cat >"$T/agent.yaml" <<YAML
agent:
  url: http://127.0.0.1:3000
  tokenFile: $T/token
apps:
  - slug=web,url=http://127.0.0.1:8000,name=Web
limits:
  spares: 3
  maxStreams: 64
YAML
env -u CODER_AGENT_URL "$OUTPOST" agent --config "$T/agent.yaml" --check >"$T/out" 2>&1 || fail "YAML: $(cat "$T/out")"
env -u CODER_AGENT_URL "$OUTPOST" agent --config "$T/agent.yaml" --write-config >"$T/yaml.out" 2>&1 || fail "--write-config"
grep -q 'spares: 3' "$T/yaml.out" && grep -q 'maxStreams: 64' "$T/yaml.out" && grep -q 'slug=web,url=http://127.0.0.1:8000,name=Web' "$T/yaml.out" ||
    fail "--write-config shows the YAML values: $(cat "$T/yaml.out")"
CODER_AGENT_TOKEN=$TOKEN "$OUTPOST" agent --write-config >"$T/yaml2.out" 2>&1 || fail "--write-config with a token"
grep -q "${TOKEN#*:}" "$T/yaml2.out" && fail "--write-config printed the token"
ok "YAML config file; --write-config shows it and never the token"

bad() { # expected-text, then the arguments (CODER_AGENT_TOKEN set unless the test unsets it)
    local want=$1; shift
    CODER_AGENT_TOKEN=${TOK-$TOKEN} "$OUTPOST" agent --check "$@" >"$T/out" 2>&1; local rc=$?
    [ $rc -eq 78 ] || fail "$* → exit $rc, want 78: $(cat "$T/out")"
    grep -q -- "$want" "$T/out" || fail "$* → '$(cat "$T/out")' does not name '$want'"
}
TOK= bad 'agent-token: missing'
TOK=nope bad 'agent-token: expected'
bad 'app: app "slug=web": url must be' --app slug=web
bad 'share must be owner, authenticated or public' --app 'slug=web,url=http://x,share=team'
bad 'slug must be' --app 'slug=Web,url=http://x'
bad 'used twice' --app 'slug=a,url=http://x' --app 'slug=a,url=http://y'
bad 'spares: 9 is more than max-spares' --spares 9
bad 'max-streams: must be between' --max-streams 0
bad 'dial-timeout' --dial-timeout 1h
bad 'is not a duration' --manifest-interval soon
bad 'ca-file' --ca-file /nonexistent/ca.pem
bad 'agent-url' --agent-url ftp://x
bad 'give one of them, not both' --agent-token-file "$T/token"
ok "--check refuses bad values with exit 78 naming the option"
"$OUTPOST" agent extra >"$T/out" 2>&1; rc=$?
[ $rc -eq 64 ] && grep -q 'the agent takes no positional arguments' "$T/out" || fail "positional: $rc $(cat "$T/out")"
"$OUTPOST" agent --no-such-flag >"$T/out" 2>&1; rc=$?
[ $rc -eq 64 ] || fail "unknown flag: $rc"
ok "usage errors exit 64"
