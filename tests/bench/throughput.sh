#!/usr/bin/env bash
# throughput.sh - warrend's consume throughput against a bare rabbitmq-c
# consumer, measured in one run on one broker.
#
# usage: tests/bench/throughput.sh [--messages N] [--runs R] [--prefetch P]
#                                  [--http]
#   defaults: 200000 messages, 5 runs, prefetch 100
#
# Builds nothing: takes the build from $BUILD_DIR (default: build/ at the
# repository root) and needs warrend, tests/bench/wr-fill,
# tests/bench/wr-baseline and tests/fixtures/fx_count.so in it. Starts a
# private broker with tests/harness/broker.sh unless WARREN_TEST_AMQP_URL is
# set. Each run fills a fresh queue and drains it four times over (in an
# order rotated from run to run): with
# wr-baseline acking each message, with wr-baseline sending one multiple-ack
# per 100 messages, and twice with warrend in its default settings
# (coalesced acks: at most 100 messages or 10 ms; 1 connection; the fx_count
# fixture plugin, which logs "bench: N messages in S s (R msg/s)" once it
# has handled N messages): "warrend" routes to its handler declared
# WARREN_HANDLER_NONBLOCKING (noop_nb: called on the connection's thread, as
# a no-op handler may be), "warrend-workers" to the same handler without
# the flag (noop: handed to a worker thread and back; 1 worker -- a no-op
# handler gains nothing from more; BENCH_WORKERS=N sets it for both). Prints each
# run, the medians, and last:
#
#     ratio warrend/baseline-each: X.XX
#     ratio warrend/baseline-multi: X.XX
#     ratio warrend-workers/baseline-each: X.XX
#     ratio warrend-workers/baseline-multi: X.XX
#
# warrend's HTTP endpoint is off in these drains (WARREN_HTTP_LISTEN="").
# --http adds a fifth drain to each run, "warrend-http": the same as
# "warrend" with the endpoint on (127.0.0.1, a free port) and /metrics
# scraped once a second for the whole drain, and prints last
#
#     ratio warrend-http/warrend: X.XX
#
# the cost of the endpoint and its scrapes, measured in one run.
#
# Timing assertions do not belong here: this prints numbers, it does not judge
# them. On a broker given by WARREN_TEST_AMQP_URL the drained (empty)
# bench-* queues are left behind (no rabbitmqctl there to delete them).
# The private broker runs without scheduler busy-waiting (+sbwt none for
# all three scheduler kinds): RabbitMQ's runtime guide advises that where
# the node shares its CPUs with other processes, and here the broker, the
# consumer under test and the filler share two cores. Both consumers meet
# the same broker, so the ratios stay fair; BENCH_BROKER_BUSY_WAIT=1 keeps
# the Erlang default instead.
# Tunables (environment): BENCH_WAIT_TIMEOUT (s a drain may take, default
# 300), BENCH_STOP_TIMEOUT (s warrend may take to exit after SIGTERM,
# default 45).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MESSAGES=200000 RUNS=5 PREFETCH=100 HTTP=0
WAIT_TIMEOUT=${BENCH_WAIT_TIMEOUT:-300}
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-45}

usage() { sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# is_uint VALUE MAX: VALUE is an integer in 1..MAX
is_uint() { [[ $1 =~ ^[1-9][0-9]{0,8}$ ]] && (($1 <= $2)); }

while (($#)); do
    case $1 in
        --messages) MESSAGES=${2:-}; shift 2 || usage ;;
        --runs) RUNS=${2:-}; shift 2 || usage ;;
        --prefetch) PREFETCH=${2:-}; shift 2 || usage ;;
        --http) HTTP=1; shift ;;
        -h | --help) usage ;;
        *) echo "throughput.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
is_uint "$MESSAGES" 100000000 || { echo "bad --messages" >&2; usage; }
is_uint "$RUNS" 100 || { echo "bad --runs (1..100)" >&2; usage; }
is_uint "$PREFETCH" 65535 || { echo "bad --prefetch (1..65535)" >&2; usage; }

if [[ -n ${BUILD_DIR:-} ]]; then
    BUILD_DIR=$(cd "$BUILD_DIR" && pwd) || { echo "no build dir $BUILD_DIR" >&2; exit 1; }
else
    BUILD_DIR=$ROOT/build
fi
WARREND=$BUILD_DIR/warrend
FILL=$BUILD_DIR/tests/bench/wr-fill
BASELINE=$BUILD_DIR/tests/bench/wr-baseline
FX_COUNT=$BUILD_DIR/tests/fixtures/fx_count.so
for f in "$WARREND" "$FILL" "$BASELINE" "$FX_COUNT"; do
    [[ -e $f ]] || { echo "throughput.sh: missing $f (build first: ./dev.sh build)" >&2; exit 1; }
done

log() { printf 'throughput.sh: %s\n' "$*" >&2; }
. "$ROOT/tests/bench/bench_common.sh"

# run_baseline and run_warrend set RATE (msg/s). They run in the main shell,
# not in $(...), so that fail() and WARREND_PID reach the EXIT trap.
RATE=
run_baseline() { # RUN each|multi
    local q="bench-$$-$1-baseline-$2" out rate
    fill "$q"
    out=$(timeout $((WAIT_TIMEOUT + 30)) "$BASELINE" "$URL" "$q" "$MESSAGES" "$PREFETCH" \
        "$2" 2>"$WORK/baseline.err") ||
        { cat "$WORK/baseline.err" >&2; fail "wr-baseline run $1"; }
    [[ $out =~ ^baseline:\  ]] || fail "wr-baseline printed '$out'"
    rate=$(rate_of <<<"$out")
    [[ -n $rate ]] || fail "cannot parse '$out'"
    check_empty_and_delete "$q"
    RATE=$rate
}

write_conf() { # QUEUE CONF HANDLER
    local workers=""
    # The default (4) for the non-blocking handler, whose calls no worker
    # sees; 1 for the other (see the top).
    if [[ $3 == noop || -n ${BENCH_WORKERS:-} ]]; then
        workers=${BENCH_WORKERS:-1}
    fi
    write_bench_conf "$2" "$1" "$workers" fx_count "$FX_COUNT" "$3" \
        "expect = \"$MESSAGES\""
}

run_warrend() { # RUN HANDLER [http]
    local q="bench-$$-$1-warrend-$2${3:+-http}" conf="$WORK/warrend-$1-$2${3:+-http}.conf"
    local listen=""
    [[ -z ${3:-} ]] || listen=127.0.0.1:0
    fill "$q" "$q.dlx"
    write_conf "$q" "$conf" "$2"
    drain_with_warrend "$q" "$conf" "$WORK/warrend-$1-$2${3:+-http}.log" "$listen"
}

log "$RUNS runs of $MESSAGES messages, prefetch $PREFETCH"
EACH_RATES=() MULTI_RATES=() WARREN_RATES=() WORKERS_RATES=() HTTP_RATES=() h=
ORDER=(each multi warrend workers)
((HTTP)) && ORDER+=(http)
for ((run = 1; run <= RUNS; run++)); do
    # Each run starts one later in the order: none of the four always
    # follows the same one (the broker's state after a drain, the
    # machine's load drifting over a run).
    for ((i = 0; i < ${#ORDER[@]}; i++)); do
        case ${ORDER[(i + run - 1) % ${#ORDER[@]}]} in
            each) run_baseline "$run" each; e=$RATE ;;
            multi) run_baseline "$run" multi; m=$RATE ;;
            warrend) run_warrend "$run" noop_nb; w=$RATE ;;
            workers) run_warrend "$run" noop; k=$RATE ;;
            http) run_warrend "$run" noop_nb http; h=$RATE ;;
        esac
    done
    ((HTTP)) && HTTP_RATES+=("$h")
    EACH_RATES+=("$e") MULTI_RATES+=("$m") WARREN_RATES+=("$w") WORKERS_RATES+=("$k")
    printf 'run %d/%d: baseline-each %s msg/s, baseline-multi %s msg/s, warrend %s msg/s, warrend-workers %s msg/s%s\n' \
        "$run" "$RUNS" "$e" "$m" "$w" "$k" "${h:+, warrend-http $h msg/s}"
done

EM=$(median "${EACH_RATES[@]}")
MM=$(median "${MULTI_RATES[@]}")
WM=$(median "${WARREN_RATES[@]}")
KM=$(median "${WORKERS_RATES[@]}")
printf 'baseline-each median: %s msg/s\n' "$EM"
printf 'baseline-multi median: %s msg/s\n' "$MM"
printf 'warrend median: %s msg/s\n' "$WM"
printf 'warrend-workers median: %s msg/s\n' "$KM"
awk -v w="$WM" -v k="$KM" -v e="$EM" -v m="$MM" 'BEGIN { if (e <= 0 || m <= 0) exit 1
    printf "ratio warrend/baseline-each: %.2f\n", w / e
    printf "ratio warrend/baseline-multi: %.2f\n", w / m
    printf "ratio warrend-workers/baseline-each: %.2f\n", k / e
    printf "ratio warrend-workers/baseline-multi: %.2f\n", k / m }' ||
    fail "a baseline rate is zero"
if ((HTTP)); then
    HM=$(median "${HTTP_RATES[@]}")
    printf 'warrend-http median: %s msg/s\n' "$HM"
    awk -v h="$HM" -v w="$WM" 'BEGIN { if (w <= 0) exit 1
        printf "ratio warrend-http/warrend: %.2f\n", h / w }' || fail "warrend's rate is zero"
fi
