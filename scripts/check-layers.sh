#!/usr/bin/env bash
# scripts/check-layers.sh [ROOT] — fails when an #include points up or sideways in the module stack.
# The order is read from docs/layers.md ("layer N: mod mod ..." lines); every #include "dir/file" of a
# module's .c/.h file must name its own folder or one on a lower layer. Also fails when a source folder
# is missing from that order or from the Makefile's MODULES list.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
declare -A level
while read -r _ n mods; do
    for m in $mods; do level[$m]=${n%:}; done
done < <(grep -E '^layer [0-9]+: ' docs/layers.md)
[ ${#level[@]} -gt 0 ] || { echo "check-layers: no 'layer N:' lines in docs/layers.md" >&2; exit 2; }

bad=0
# Folders holding C sources, outside tests/ and bench/ (they may include anything).
mapfile -t dirs < <(find . -mindepth 2 -maxdepth 2 -name '*.[ch]' -not -path './tests/*' -not -path './bench/*' \
    -not -path './build/*' -not -path './.git/*' | cut -d/ -f2 | sort -u)
for d in "${dirs[@]}"; do
    if [ -z "${level[$d]+x}" ]; then
        echo "check-layers: $d/ is not in the layer order of docs/layers.md" >&2
        bad=1
    fi
done
modules=" $(sed -n 's/^MODULES *:= *//p' Makefile | tr -s ' ') "
for d in "${dirs[@]}"; do
    [[ "$modules" == *" $d "* ]] || { echo "check-layers: $d/ is missing from MODULES in the Makefile" >&2; bad=1; }
done
for m in $modules; do
    [ -d "$m" ] || { echo "check-layers: MODULES lists $m, which is not a folder" >&2; bad=1; }
done

for d in "${dirs[@]}"; do
    [ -n "${level[$d]+x}" ] || continue
    for f in "$d"/*.[ch]; do
        while IFS=: read -r line inc; do
            dep=${inc%%/*}
            [ "$dep" = "$d" ] && continue
            [ -n "${level[$dep]+x}" ] || continue # not one of our modules (a system or library header)
            if [ "${level[$dep]}" -ge "${level[$d]}" ]; then
                how=sideways
                [ "${level[$dep]}" -gt "${level[$d]}" ] && how=up
                echo "check-layers: $f:$line includes \"$inc\": $how ($d is layer ${level[$d]}, $dep is layer ${level[$dep]})" >&2
                bad=1
            fi
        done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[^"/]+/[^"]+"' "$f" |
            sed -E 's/^([0-9]+):[^"]*"([^"]+)".*/\1:\2/')
    done
done
[ $bad -eq 0 ] && echo "check-layers: every #include points down (${#dirs[@]} modules)"
exit $bad
