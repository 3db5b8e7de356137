#!/usr/bin/env bash
# Every tracked C file follows the committed .clang-format (run `make format` to fix).
. "$(dirname "$0")/../lib/common.sh"
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
cd "$ROOT"
bad=()
while IFS= read -r f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find core util tls http proto ctl runner primary wsproxy cli bench tests -name '*.[ch]')
[ ${#bad[@]} -eq 0 ] || fail "not clang-formatted (run make format): ${bad[*]}"
ok "all C sources match .clang-format"
