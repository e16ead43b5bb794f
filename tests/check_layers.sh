#!/usr/bin/env bash
# check_layers.sh - the runtime's layers, declared once, checked on every
# #include "..." under runtime/.
#
#   tests/check_layers.sh [ROOT]     (ROOT: the repository, default ..)
#
# runtime/ is a stack of folders; a file may include headers of its own
# folder and of the folders below it, never of one above. LAYERS below is
# that stack, lowest first: the one place the order is written down (the
# README's Layout section must list the folders in the same order, and this
# script checks that it does). Fails, naming the file, line and include, on:
#   - a file directly in runtime/ or in a folder that is not a layer;
#   - an include of a higher layer (an arrow that runs back up);
#   - an include written without its folder ("conn.h" for "slot/conn.h"),
#     or one that resolves to nothing under runtime/ or sdk/;
#   - any include circle, between folders or between files;
#   - a README Layout section whose folders differ from LAYERS.
# Prints one line per problem and a summary; exit status 1 if any.
set -euo pipefail

LAYERS=(base message conf broker host exec slot observe daemon)

ROOT=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$ROOT"
[[ -d runtime ]] || { echo "check_layers: no runtime/ in $ROOT" >&2; exit 2; }

problems=0
fail() { echo "check_layers: $*" >&2; problems=$((problems + 1)); }

declare -A rank
for i in "${!LAYERS[@]}"; do rank[${LAYERS[$i]}]=$i; done

# Every include as "FILE LINE TARGET", and the edges of both graphs.
edges_files=$(mktemp) edges_dirs=$(mktemp)
trap 'rm -f "$edges_files" "$edges_dirs"' EXIT
nfiles=0 nincludes=0

while IFS= read -r -d '' f; do
    nfiles=$((nfiles + 1))
    rel=${f#runtime/}
    folder=${rel%%/*}
    if [[ $rel != */* ]]; then
        fail "$f: directly in runtime/; put it in one of the layers (${LAYERS[*]})"
        continue
    fi
    if [[ -z ${rank[$folder]+x} ]]; then
        fail "$f: folder '$folder' is not a layer (${LAYERS[*]}); add it to LAYERS in tests/check_layers.sh"
        continue
    fi
    while IFS=: read -r line inc; do
        nincludes=$((nincludes + 1))
        if [[ -f runtime/$inc ]]; then
            to=${inc%%/*}
            if [[ $inc != */* || -z ${rank[$to]+x} ]]; then
                fail "$f:$line: #include \"$inc\" is not in a layer folder"
                continue
            fi
            if ((rank[$to] > rank[$folder])); then
                fail "$f:$line: #include \"$inc\": $folder/ may not include from $to/, a higher layer (order: ${LAYERS[*]})"
            fi
            echo "$f runtime/$inc" >>"$edges_files"
            [[ $to == "$folder" ]] || echo "$folder $to" >>"$edges_dirs"
        elif [[ -f sdk/$inc ]]; then
            : # the SDK header: below every layer
        elif [[ -f $(dirname "$f")/$inc ]]; then
            fail "$f:$line: #include \"$inc\": write it with its folder, \"$folder/$inc\""
        else
            fail "$f:$line: #include \"$inc\" is neither under runtime/ nor sdk/"
        fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
        sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/')
done < <(find runtime -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

# circles GRAPH WHAT: print every circle of the edge list GRAPH ("a b" per
# line), one per line as "a -> b -> a".
circles() {
    sort -u "$1" | awk '
        { out[$1] = out[$1] " " $2; nodes[$1] = 1; nodes[$2] = 1 }
        function visit(n,   i, k, parts, m) {
            state[n] = 1; path[++depth] = n
            m = split(out[n], parts, " ")
            for (i = 1; i <= m; i++) {
                k = parts[i]
                if (state[k] == 1) {
                    s = ""
                    for (j = 1; j <= depth; j++)
                        if (path[j] == k || s != "")
                            s = s path[j] " -> "
                    print s k
                } else if (state[k] == 0) {
                    visit(k)
                }
            }
            depth--; state[n] = 2
        }
        END { for (n in nodes) if (state[n] == 0) visit(n) }'
}

while IFS= read -r c; do
    [[ -n $c ]] && fail "include circle between folders: $c"
done < <(circles "$edges_dirs")
while IFS= read -r c; do
    [[ -n $c ]] && fail "include circle between files: $c"
done < <(circles "$edges_files")

# The README's Layout section shows the same stack: its "  NAME/" lines
# under runtime/, in the same order.
readme=$(awk '/^## Layout/ { on = 1; next } /^## / { on = 0 } on' README.md |
    sed -n 's/^  \([a-z]*\)\/ .*/\1/p' | tr '\n' ' ')
if [[ $readme != "${LAYERS[*]} " ]]; then
    fail "README.md's Layout section lists the runtime folders as '${readme% }', not '${LAYERS[*]}'"
fi

if ((problems > 0)); then
    echo "check_layers: $problems problem(s) in $nfiles files" >&2
    exit 1
fi
echo "check_layers: ok: $nfiles files, $nincludes includes, layers ${LAYERS[*]} (lowest first), no circles"
