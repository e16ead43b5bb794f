#!/usr/bin/env bash
# instructions.sh - warrend's CPU instructions per message, counted by
# valgrind's callgrind: the same number for the same binary and input
# whatever else the machine is doing, so two builds compare without the
# noise of a timed run on a shared 2-core machine.
#
# usage: tests/bench/instructions.sh [--messages N] [--against BUILD_DIR]
#                                    [--http]
#   defaults: 20000 messages; without --against, one build only
#
# For each build (BUILD_DIR, default build/ at the repository root, and the
# --against one): fills a fresh queue with N bench:noop messages (wr-fill),
# runs that build's warrend under callgrind with the fx_count plugin on the
# plain (worker) handler "noop" and then on the non-blocking one "noop_nb"
# (1 connection, prefetch 100, 1 worker, as throughput.sh), waits for
# fx_count's "bench: N messages" line, stops warrend with SIGTERM and sums
# the instructions of every thread (start-up and shutdown included: the
# same work for both builds). Prints per handler and build:
#
#     noop BUILD: I instructions, I/N per message
#     ratio noop build/against: X.XXX   (above 1: the build costs more)
#
# The endpoint is off in these runs. --http counts BUILD_DIR's non-blocking
# run once more with the endpoint on and /metrics scraped every second
# (the scrapes' own work included) and prints "ratio noop_nb http/off".
#
# Numbers only, no judgement. Needs valgrind. Tunables: BENCH_WAIT_TIMEOUT
# (s a drain may take under callgrind, default 600).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MESSAGES=20000 PREFETCH=100 AGAINST= HTTP=0
WAIT_TIMEOUT=${BENCH_WAIT_TIMEOUT:-600}
STOP_TIMEOUT=120

usage() { sed -n '7,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
is_uint() { [[ $1 =~ ^[1-9][0-9]{0,8}$ ]] && (($1 <= $2)); }
while (($#)); do
    case $1 in
        --messages) MESSAGES=${2:-}; shift 2 || usage ;;
        --against) AGAINST=${2:-}; shift 2 || usage ;;
        --http) HTTP=1; shift ;;
        -h | --help) usage ;;
        *) echo "instructions.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
is_uint "$MESSAGES" 10000000 || { echo "bad --messages" >&2; usage; }
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 1; }

absdir() { (cd "$1" && pwd) || { echo "instructions.sh: no build dir $1" >&2; exit 1; }; }
BUILDS=("$(absdir "${BUILD_DIR:-$ROOT/build}")")
[[ -z $AGAINST ]] || BUILDS+=("$(absdir "$AGAINST")")
for b in "${BUILDS[@]}"; do
    for f in warrend tests/bench/wr-fill tests/fixtures/fx_count.so; do
        [[ -e $b/$f ]] || { echo "instructions.sh: missing $b/$f (build first)" >&2; exit 1; }
    done
done

log() { printf 'instructions.sh: %s\n' "$*" >&2; }
. "$ROOT/tests/bench/bench_common.sh"

# count BUILD HANDLER -> sets COUNT (instructions of the whole run)
COUNT=
count() { # BUILD HANDLER [http]
    local b=$1 h=$2 tag q conf out line deadline rc listen="" scraper=""
    tag=$(basename "$b")-$h${3:+-http}
    [[ -z ${3:-} ]] || listen=127.0.0.1:0
    q="bench-$$-$tag"
    conf=$WORK/$tag.conf out=$WORK/$tag.callgrind WLOG=$WORK/$tag.log
    WR_FILL_DLX="$q.dlx" timeout "$WAIT_TIMEOUT" "$b/tests/bench/wr-fill" "$URL" "$q" \
        "$MESSAGES" >"$WORK/fill.out" 2>&1 || { cat "$WORK/fill.out" >&2; fail "wr-fill $q"; }
    write_bench_conf "$conf" "$q" 1 fx_count "$b/tests/fixtures/fx_count.so" "$h" \
        "expect = \"$MESSAGES\""
    env -u WARREN_AMQP_URL -u WARREN_AMQP_PASSWORD -u WARREN_PLUGIN_DIR WARREN_HTTP_LISTEN="$listen" \
        valgrind --tool=callgrind --callgrind-out-file="$out" --separate-threads=no \
        "$b/warrend" -c "$conf" </dev/null >"$WLOG" 2>&1 &
    WARREND_PID=$!
    if [[ -n $listen ]]; then
        scrape "$WLOG" &
        scraper=$!
        BG_PIDS+=("$scraper")
    fi
    deadline=$((SECONDS + WAIT_TIMEOUT))
    until grep -q -E "bench: $MESSAGES messages in " "$WLOG"; do
        kill -0 "$WARREND_PID" 2>/dev/null || fail "warrend exited before handling $MESSAGES messages"
        ((SECONDS < deadline)) || fail "no 'bench:' line within ${WAIT_TIMEOUT}s"
        sleep 0.5
    done
    [[ -z $scraper ]] || { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; }
    kill -TERM "$WARREND_PID"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$WARREND_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -0 "$WARREND_PID" 2>/dev/null && fail "warrend did not exit within ${STOP_TIMEOUT}s"
    rc=0
    wait "$WARREND_PID" || rc=$?
    WARREND_PID=
    ((rc == 0)) || fail "warrend exited with status $rc"
    line=$(grep -m 1 '^summary:' "$out" || true)
    [[ -n $line ]] || fail "no summary in $out"
    COUNT=${line#summary: }
    WLOG=
}

log "$MESSAGES messages per run; builds: ${BUILDS[*]}"
for h in noop noop_nb; do
    counts=()
    for b in "${BUILDS[@]}"; do
        count "$b" "$h"
        counts+=("$COUNT")
        printf '%s %s: %s instructions, %s per message\n' "$h" "$b" "$COUNT" \
            "$((COUNT / MESSAGES))"
    done
    if ((${#counts[@]} == 2)); then
        awk -v a="${counts[0]}" -v b="${counts[1]}" -v h="$h" \
            'BEGIN { printf "ratio %s build/against: %.3f\n", h, a / b }'
    fi
done
if ((HTTP)); then
    count "${BUILDS[0]}" noop_nb
    off=$COUNT
    count "${BUILDS[0]}" noop_nb http
    printf 'noop_nb %s, endpoint on and scraped: %s instructions\n' "${BUILDS[0]}" "$COUNT"
    awk -v a="$COUNT" -v b="$off" 'BEGIN { printf "ratio noop_nb http/off: %.3f\n", a / b }'
fi
