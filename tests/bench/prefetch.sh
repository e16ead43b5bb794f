#!/usr/bin/env bash
# prefetch.sh - issue 14's benchmark: warrend's prefetch settings beside the
# tutorial's consumer and the broker's limit, measured in one run on one
# broker (the machine is noisy: only ratios of one run mean anything).
#
# usage: tests/bench/prefetch.sh [--messages N] [--runs R]
#   defaults: 200000 messages (~200 bytes of JSON), 3 runs
#
# Scenario 1 (no-op handler; the other scenarios of the issue are to come).
# Each run fills a fresh queue and drains it with each of these, in an
# order rotated from run to run, and prints the medians and the ratios:
#   limit       wr-baseline raw: bare rabbitmq-c, no JSON, prefetch 1000,
#               one multiple-ack per 100 (what the broker can deliver)
#   bare-json   wr-baseline multi: the same with the JSON parse
#   tutorial    the tutorial's consumer: Node amqplib, prefetch 100, ack
#               each (tests/node/tutorial_consume.js)
#   p10 .. p1000  warrend with the shipped conf's settings (pool_size 2,
#               workers 4) and a static prefetch, the plain (worker)
#               no-op handler (fx_count noop)
#   auto        the same with prefetch = "auto", if this warrend knows it
#   shipped     the same with the shipped conf/warren.conf's prefetch
# and last:
#     ratio auto/best-static: X.XX        (target >= 0.95)
#     ratio shipped/tutorial: X.XX        (target >= 1.7)
#     ratio shipped/limit: X.XX           (target >= 0.85)
#
# Builds nothing: takes the build from $BUILD_DIR (default build/), and
# needs node with tests/node's amqplib (npm ci there; it runs it if
# node_modules is missing). A private broker unless WARREN_TEST_AMQP_URL.
# Prints numbers, judges nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MESSAGES=200000 RUNS=3
WAIT_TIMEOUT=${BENCH_WAIT_TIMEOUT:-300}
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-45}

usage() { sed -n '6,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
is_uint() { [[ $1 =~ ^[1-9][0-9]{0,8}$ ]] && (($1 <= $2)); }

while (($#)); do
    case $1 in
        --messages) MESSAGES=${2:-}; shift 2 || usage ;;
        --runs) RUNS=${2:-}; shift 2 || usage ;;
        -h | --help) usage ;;
        *) echo "prefetch.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
is_uint "$MESSAGES" 100000000 || { echo "bad --messages" >&2; usage; }
is_uint "$RUNS" 100 || { echo "bad --runs (1..100)" >&2; usage; }

BUILD_DIR=$(cd "${BUILD_DIR:-$ROOT/build}" && pwd) || { echo "no build dir" >&2; exit 1; }
WARREND=$BUILD_DIR/warrend
FILL=$BUILD_DIR/tests/bench/wr-fill
BASELINE=$BUILD_DIR/tests/bench/wr-baseline
FX_COUNT=$BUILD_DIR/tests/fixtures/fx_count.so
NODE_DIR=$ROOT/tests/node
for f in "$WARREND" "$FILL" "$BASELINE" "$FX_COUNT"; do
    [[ -e $f ]] || { echo "prefetch.sh: missing $f (build first: ./dev.sh build)" >&2; exit 1; }
done
command -v node >/dev/null || { echo "prefetch.sh: needs node (./dev.sh deps)" >&2; exit 1; }
if [[ ! -d $NODE_DIR/node_modules/amqplib ]]; then
    (cd "$NODE_DIR" && npm ci --silent) || { echo "prefetch.sh: npm ci failed" >&2; exit 1; }
fi

log() { printf 'prefetch.sh: %s\n' "$*" >&2; }
. "$ROOT/tests/bench/bench_common.sh"

# The shipped conf's broker prefetch: a number, or auto.
SHIPPED=$(sed -n '/^broker {/,/^}/s/^ *prefetch *= *"\{0,1\}\([a-z0-9]*\)"\{0,1\}.*/\1/p' \
    "$ROOT/conf/warren.conf" | head -n 1)
[[ -n $SHIPPED ]] || fail "no prefetch in conf/warren.conf's broker section"

# Whether this warrend takes prefetch = "auto" (its -t says).
HAVE_AUTO=0
PREFETCH=auto POOL=2 write_bench_conf "$WORK/auto-check.conf" probe 4 fx_count "$FX_COUNT" noop
if env -u WARREN_AMQP_URL "$WARREND" -t -c "$WORK/auto-check.conf" >/dev/null 2>&1; then
    HAVE_AUTO=1
else
    log "this warrend does not take prefetch = \"auto\": no auto row"
fi

RATE=
run_baseline() { # RUN MODE PREFETCH
    local q="bench-$$-$1-base-$2" out
    fill "$q"
    out=$(timeout $((WAIT_TIMEOUT + 30)) "$BASELINE" "$URL" "$q" "$MESSAGES" "$3" "$2" \
        2>"$WORK/baseline.err") || { cat "$WORK/baseline.err" >&2; fail "wr-baseline $2"; }
    RATE=$(rate_of <<<"$out")
    [[ -n $RATE ]] || fail "cannot parse '$out'"
    check_empty_and_delete "$q"
}

run_tutorial() { # RUN
    local q="bench-$$-$1-tutorial" out
    fill "$q"
    out=$(timeout $((WAIT_TIMEOUT + 30)) node "$NODE_DIR/tutorial_consume.js" "$URL" "$q" \
        "$MESSAGES" 100 2>"$WORK/tutorial.err") || { cat "$WORK/tutorial.err" >&2; fail "tutorial"; }
    RATE=$(rate_of <<<"$out")
    [[ -n $RATE ]] || fail "cannot parse '$out'"
    check_empty_and_delete "$q"
}

run_warrend() { # RUN PREFETCH LABEL
    local q="bench-$$-$1-$3" conf="$WORK/$3-$1.conf"
    fill "$q" "$q.dlx"
    PREFETCH=$2 POOL=2 write_bench_conf "$conf" "$q" 4 fx_count "$FX_COUNT" noop \
        "expect = \"$MESSAGES\""
    drain_with_warrend "$q" "$conf" "$WORK/$3-$1.log" ""
}

ROWS=(limit bare-json tutorial p10 p100 p250 p1000 shipped)
((HAVE_AUTO)) && ROWS+=(auto)
declare -A RATES
log "$RUNS runs of $MESSAGES messages; shipped prefetch: $SHIPPED"
for ((run = 1; run <= RUNS; run++)); do
    line="run $run/$RUNS:"
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        row=${ROWS[(i + run - 1) % ${#ROWS[@]}]}
        case $row in
            limit) run_baseline "$run" raw 1000 ;;
            bare-json) run_baseline "$run" multi 1000 ;;
            tutorial) run_tutorial "$run" ;;
            p*) run_warrend "$run" "${row#p}" "$row" ;;
            auto) run_warrend "$run" auto auto ;;
            shipped) run_warrend "$run" "$SHIPPED" shipped ;;
        esac
        RATES[$row]+="$RATE "
        line+=" $row $RATE"
    done
    printf '%s\n' "$line"
done

declare -A MED
for row in "${ROWS[@]}"; do
    # shellcheck disable=SC2086 # the rates, one word each
    MED[$row]=$(median ${RATES[$row]})
    printf '%-10s median: %s msg/s\n' "$row" "${MED[$row]}"
done
best=0
for row in p10 p100 p250 p1000; do ((MED[$row] > best)) && best=${MED[$row]}; done
awk -v s="${MED[shipped]}" -v t="${MED[tutorial]}" -v l="${MED[limit]}" \
    -v a="${MED[auto]:-}" -v b="$best" 'BEGIN {
    if (a != "") printf "ratio auto/best-static: %.2f\n", a / b
    printf "ratio shipped/tutorial: %.2f\n", s / t
    printf "ratio shipped/limit: %.2f\n", s / l }'
