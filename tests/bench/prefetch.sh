#!/usr/bin/env bash
# prefetch.sh - issue 14's benchmark: warrend's prefetch settings beside the
# tutorial's consumer and the broker's limit, measured in one run on one
# broker (the machine is noisy: only ratios of one run mean anything).
#
# usage: tests/bench/prefetch.sh [--scenario 1|2|3|4|5|all] [--messages N] [--runs R]
#   defaults: all five; 200000 messages (~200 bytes of JSON) in 1; 5 runs
#   of 1 (the noisiest: its best static row is a maximum of four), 3 of 2,
#   3 and 5
#
# Every warrend row has the shipped conf's settings (pool_size 2, workers
# 4) and the prefetch its row names: p10 .. p1000 static, auto (prefetch =
# "auto"), shipped (conf/warren.conf's). Each run fills a fresh queue per
# row, in an order rotated from run to run; medians of the runs.
#
# 1. No-op handler, N messages drained. Rows:
#      limit      wr-baseline raw: bare rabbitmq-c, no JSON, prefetch 1000,
#                 one multiple-ack per 100 (what the broker can deliver)
#      bare-json  wr-baseline multi: the same with the JSON parse
#      tutorial   the tutorial's consumer: Node amqplib, prefetch 100, ack
#                 each (tests/node/tutorial_consume.js)
#      nb         warrend, the no-op declared non-blocking, prefetch auto
#      p10 .. p1000, auto, shipped: the plain (worker) no-op handler
#    ratio auto/best-static (target >= 0.95), shipped/tutorial (>= 1.7),
#    shipped/limit (>= 0.85), plain/nb at auto (>= 0.95).
# 2. A handler that sleeps 5 ms, 4 workers, 4000 messages: p10 .. p1000,
#    auto; ratio auto/best-static (>= 0.95) and, from the broker's
#    channels (sampled every 0.5 s), the most unacked messages one
#    consumer held with auto, beside 2 x workers + ack_batch.
# 3. Two warrend instances on one queue of 2000 messages, a 20 ms handler,
#    the second started once the first has: each one's share with auto
#    (target 40-60 %) and with static 1000 (which hoards).
# 4. RSS of warrend with auto: idle (started on an empty queue), at the
#    end of draining a 1,000,000-message backlog (fewer with --messages
#    under 1M), and 3 s after it (warrend trims its heap once idle).
# 5. One publisher (warren-load, x-warren-published-us in each message)
#    paced at 1,000, 10,000 and 20,000 msg/s for 10 s, 3 runs each into a
#    bare rabbitmq-c consumer (wr-baseline latency: the floor) and into
#    warrend with the shipped conf's prefetch and the plain `latency`
#    handler, alternating: publish-to-handler p50 / p99 / max, medians,
#    and warrend's p99 over the floor's (targets at 20,000: keeps up, p99
#    <= 5 ms; at 10,000: p99 <= 1 ms; 1,000 shows the machine's floor at
#    rest). BENCH_S5_PREFETCH=N|auto measures another prefetch instead,
#    BENCH_S5_HANDLER=latency_nb the non-blocking path.
#
# Builds nothing: takes the build from $BUILD_DIR (default build/), and
# needs node with tests/node's amqplib (npm ci there; it runs it if
# node_modules is missing). A private broker unless WARREN_TEST_AMQP_URL
# (then scenario 2's unacked count is not sampled). Prints numbers,
# judges nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCENARIO=all MESSAGES=200000 RUNS=
WAIT_TIMEOUT=${BENCH_WAIT_TIMEOUT:-300}
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-45}

usage() { sed -n '6,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
is_uint() { [[ $1 =~ ^[1-9][0-9]{0,8}$ ]] && (($1 <= $2)); }

while (($#)); do
    case $1 in
        --scenario) SCENARIO=${2:-}; shift 2 || usage ;;
        --messages) MESSAGES=${2:-}; shift 2 || usage ;;
        --runs) RUNS=${2:-}; shift 2 || usage ;;
        -h | --help) usage ;;
        *) echo "prefetch.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[[ $SCENARIO =~ ^([1-5]|all)$ ]] || { echo "bad --scenario" >&2; usage; }
is_uint "$MESSAGES" 100000000 || { echo "bad --messages" >&2; usage; }
[[ -z $RUNS ]] || is_uint "$RUNS" 100 || { echo "bad --runs (1..100)" >&2; usage; }
N1=$MESSAGES
N4=$((MESSAGES < 1000000 ? MESSAGES : 1000000))
((MESSAGES == 200000)) && N4=1000000

BUILD_DIR=$(cd "${BUILD_DIR:-$ROOT/build}" && pwd) || { echo "no build dir" >&2; exit 1; }
WARREND=$BUILD_DIR/warrend
FILL=$BUILD_DIR/tests/bench/wr-fill
BASELINE=$BUILD_DIR/tests/bench/wr-baseline
LOAD=$BUILD_DIR/warren-load
FX_COUNT=$BUILD_DIR/tests/fixtures/fx_count.so
NODE_DIR=$ROOT/tests/node
for f in "$WARREND" "$FILL" "$BASELINE" "$LOAD" "$FX_COUNT"; do
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
PREFETCH=auto POOL=2 write_bench_conf "$WORK/auto-check.conf" probe 4 fx_count "$FX_COUNT" noop
env -u WARREN_AMQP_URL "$WARREND" -t -c "$WORK/auto-check.conf" >/dev/null 2>&1 ||
    fail "this warrend does not take prefetch = \"auto\""
log "shipped prefetch: $SHIPPED; logs in $WORK"

# ---- helpers ---------------------------------------------------------------

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

# run_warrend RUN PREFETCH LABEL HANDLER [PARAMS]: fill, drain, set RATE.
run_warrend() {
    local q="bench-$$-$1-$3" conf="$WORK/$3-$1.conf"
    fill "$q" "$q.dlx"
    PREFETCH=$2 POOL=2 write_bench_conf "$conf" "$q" 4 fx_count "$FX_COUNT" "$4" \
        "expect = \"$MESSAGES\"
        ${5:-}"
    drain_with_warrend "$q" "$conf" "$WORK/$3-$1.log" ""
}

# The most unacked messages any one channel of the broker held, sampled
# every 0.5 s into FILE until killed (needs our own broker: BROKER_DIR).
sample_unacked() { # FILE
    while :; do
        "$ROOT/tests/harness/broker.sh" ctl "$BROKER_DIR" -q list_channels \
            messages_unacknowledged 2>/dev/null >>"$1" || true
        sleep 0.5
    done
}
max_of_file() { awk 'BEGIN { m = 0 } $1 ~ /^[0-9]+$/ && $1 > m { m = $1 } END { print m }' "$1"; }

# Medians of RATES[row] for the rows named; sets MED[row] and prints them
# (in this shell: MED is read after).
declare -A RATES MED
print_medians() {
    local row
    for row in "$@"; do
        # shellcheck disable=SC2086 # the rates, one word each
        MED[$row]=$(median ${RATES[$row]})
        printf '%-10s median: %s msg/s\n' "$row" "${MED[$row]}"
    done
}
best_static() {
    local row best=0
    for row in p10 p100 p250 p1000; do ((MED[$row] > best)) && best=${MED[$row]}; done
    echo "$best"
}
ratio() { awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN { printf "ratio %s: %.2f\n", n, a / b }'; }

# Start a warrend on CONF in the background (log LOG) and wait for its
# "started" line; sets STARTED_PID.
start_warrend_bg() { # CONF LOG
    local deadline=$((SECONDS + 60))
    env -u WARREN_AMQP_URL -u WARREN_AMQP_PASSWORD -u WARREN_PLUGIN_DIR WARREN_HTTP_LISTEN= \
        "$WARREND" -c "$1" </dev/null >"$2" 2>&1 &
    STARTED_PID=$!
    until grep -q "started (pid" "$2"; do
        kill -0 "$STARTED_PID" 2>/dev/null || { WLOG=$2; fail "warrend exited at start"; }
        ((SECONDS < deadline)) || { WLOG=$2; fail "warrend not started in 60 s"; }
        sleep 0.1
    done
}

# SIGTERM PID and wait (bounded) for exit 0; wait_pid: the wait alone,
# once the signal is sent.
stop_pid() { # PID LOG
    kill -TERM "$1"
    wait_pid "$@"
}
wait_pid() { # PID LOG
    local deadline=$((SECONDS + STOP_TIMEOUT)) rc=0
    while kill -0 "$1" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -0 "$1" 2>/dev/null && { WLOG=$2; fail "warrend did not stop in ${STOP_TIMEOUT}s"; }
    wait "$1" || rc=$?
    ((rc == 0)) || { WLOG=$2; fail "warrend exited $rc"; }
}

handled_in() { sed -n 's/.*bench: handled \([0-9]*\) messages.*/\1/p' "$1" | tail -n 1; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# ---- 1: no-op handler --------------------------------------------------------

# run_rotated RUNNER ROWS...: RUNS runs of every row, in an order rotated
# from run to run; RUNNER RUN ROW measures one and sets RATE. Prints a
# line per run; RATES[row] holds each row's rates, then MED its median.
run_rotated() {
    local runner=$1 run i row line
    shift
    local rows=("$@")
    RATES=()
    for ((run = 1; run <= RUNS; run++)); do
        line="run $run/$RUNS:"
        for ((i = 0; i < ${#rows[@]}; i++)); do
            row=${rows[(i + run - 1) % ${#rows[@]}]}
            "$runner" "$run" "$row"
            RATES[$row]+="$RATE "
            line+=" $row $RATE"
        done
        printf '%s\n' "$line"
    done
    print_medians "${rows[@]}"
}

# ---- 1: no-op handler --------------------------------------------------------

scenario1_row() { # RUN ROW
    case $2 in
        limit) run_baseline "$1" raw 1000 ;;
        bare-json) run_baseline "$1" multi 1000 ;;
        tutorial) run_tutorial "$1" ;;
        nb) run_warrend "$1" auto nb noop_nb ;;
        p* | auto) run_warrend "$1" "${2#p}" "$2" noop ;;
        shipped) run_warrend "$1" "$SHIPPED" shipped noop ;;
    esac
}

scenario1() {
    local RUNS=${RUNS:-5}
    MESSAGES=$N1
    log "scenario 1: $RUNS runs of $MESSAGES messages, no-op handler"
    run_rotated scenario1_row limit bare-json tutorial nb p10 p100 p250 p1000 auto shipped
    ratio auto/best-static "${MED[auto]}" "$(best_static)"
    ratio shipped/tutorial "${MED[shipped]}" "${MED[tutorial]}"
    ratio shipped/limit "${MED[shipped]}" "${MED[limit]}"
    ratio plain/nb "${MED[auto]}" "${MED[nb]}"
}

# ---- 2: a 5 ms handler ------------------------------------------------------

MAX_UNACKED=0
scenario2_row() { # RUN ROW; with auto, samples the broker's unacked counts
    local sampler='' m
    if [[ $2 == auto && -n $BROKER_DIR ]]; then
        : >"$WORK/unacked-$1"
        sample_unacked "$WORK/unacked-$1" &
        sampler=$!
        BG_PIDS+=("$sampler")
    fi
    run_warrend "$1" "${2#p}" "s2-$2" sleep 'sleep_us = "5000"'
    if [[ -n $sampler ]]; then
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        m=$(max_of_file "$WORK/unacked-$1")
        ((m > MAX_UNACKED)) && MAX_UNACKED=$m
    fi
    return 0
}

scenario2() {
    local RUNS=${RUNS:-3}
    MESSAGES=4000
    log "scenario 2: $RUNS runs of $MESSAGES messages, a 5 ms handler, 4 workers"
    run_rotated scenario2_row p10 p100 p250 p1000 auto
    ratio auto/best-static "${MED[auto]}" "$(best_static)"
    if [[ -n $BROKER_DIR ]]; then
        printf 'max unacked on one consumer with auto: %s (2 x 4 workers + ack_batch 100 = 108)\n' \
            "$MAX_UNACKED"
    fi
}

# ---- 3: two instances, a 20 ms handler ---------------------------------------

# share_run PREFETCH LABEL RUN: sets SPLIT to "A B", the two instances'
# percentages of the messages. In the main shell, for fail() and BG_PIDS.
SPLIT=
share_run() {
    local q="bench-$$-$3-s3-$2" a b pa pb deadline out
    MESSAGES=2000
    fill "$q" "$q.dlx"
    for inst in a b; do
        PREFETCH=$1 POOL=2 write_bench_conf "$WORK/s3-$2-$inst.conf" "$q" 4 fx_count \
            "$FX_COUNT" sleep 'sleep_us = "20000"'
    done
    start_warrend_bg "$WORK/s3-$2-a.conf" "$WORK/s3-$2-a-$3.log"
    pa=$STARTED_PID
    BG_PIDS+=("$pa")
    start_warrend_bg "$WORK/s3-$2-b.conf" "$WORK/s3-$2-b-$3.log"
    pb=$STARTED_PID
    BG_PIDS+=("$pb")
    # Until nothing is ready; what the two hold, they handle as they stop.
    deadline=$((SECONDS + WAIT_TIMEOUT))
    while :; do
        out=$(timeout 60 "$FILL" "$URL" "$q" 0 2>&1) || fail "checking $q: $out"
        [[ $out == "wr-fill: $q holds 0 messages" ]] && break
        ((SECONDS < deadline)) || fail "$q not drained in ${WAIT_TIMEOUT}s"
        sleep 0.2
    done
    kill -TERM "$pa" "$pb"
    wait_pid "$pa" "$WORK/s3-$2-a-$3.log"
    wait_pid "$pb" "$WORK/s3-$2-b-$3.log"
    a=$(handled_in "$WORK/s3-$2-a-$3.log")
    b=$(handled_in "$WORK/s3-$2-b-$3.log")
    [[ -n $a && -n $b ]] || fail "no 'handled' line from the two warrends"
    ((a + b == MESSAGES)) || fail "the two handled $a + $b, not $MESSAGES"
    check_empty_and_delete "$q"
    delete_queue_retries "$q"
    SPLIT="$((100 * a / MESSAGES)) $((100 * b / MESSAGES))"
}
scenario3() {
    local run label RUNS=${RUNS:-3}
    log "scenario 3: $RUNS runs, two warrends on one queue of 2000 messages, a 20 ms handler"
    for ((run = 1; run <= RUNS; run++)); do
        for label in auto p1000; do
            share_run "${label#p}" "$label" "$run"
            printf 'run %d/%d: %-6s first %s %%, second %s %%\n' "$run" "$RUNS" "$label" \
                "${SPLIT% *}" "${SPLIT#* }"
        done
    done
}

# ---- 4: memory after a backlog -----------------------------------------------

scenario4() {
    local q="bench-$$-s4" idle peak after pid conf="$WORK/s4.conf"
    MESSAGES=$N4
    log "scenario 4: RSS with auto, idle and after draining $MESSAGES messages"
    PREFETCH=auto POOL=2 write_bench_conf "$conf" "$q" 4 fx_count "$FX_COUNT" noop \
        "expect = \"$MESSAGES\""
    # Idle: the same conf on the queue while it is empty.
    start_warrend_bg "$conf" "$WORK/s4-idle.log"
    pid=$STARTED_PID
    BG_PIDS+=("$pid")
    idle=$(rss_kib "$pid")
    stop_pid "$pid" "$WORK/s4-idle.log"
    fill "$q" "$q.dlx"
    start_warrend_bg "$conf" "$WORK/s4-drain.log"
    pid=$STARTED_PID
    BG_PIDS+=("$pid")
    local deadline=$((SECONDS + WAIT_TIMEOUT))
    until grep -q "bench: $MESSAGES messages in " "$WORK/s4-drain.log"; do
        ((SECONDS < deadline)) || { WLOG=$WORK/s4-drain.log; fail "not drained"; }
        sleep 0.2
    done
    peak=$(rss_kib "$pid")
    # warrend gives freed memory back once idle for a second (conn_loop.c:
    # trim_when_idle): read it 3 s after the drain.
    sleep 3
    after=$(rss_kib "$pid")
    stop_pid "$pid" "$WORK/s4-drain.log"
    check_empty_and_delete "$q"
    delete_queue_retries "$q"
    printf 'rss idle: %d KiB; at the end of draining %d messages: %d KiB; 3 s after: %d KiB (%+d KiB of idle); rate %s msg/s\n' \
        "$idle" "$MESSAGES" "$peak" "$after" $((after - idle)) \
        "$(rate_of <"$WORK/s4-drain.log")"
}

# ---- 5: latency of a paced stream ------------------------------------------

# paced_load Q RATE: warren-load's MESSAGES to Q at RATE msg/s (one
# publisher: a second one costs this machine's two cores more than it
# paces, and the bare floor's p99 rose from 4.4 to 6 ms with it); sets
# PUBLISHED to its "S s: R msg/s".
PUBLISHED=
paced_load() {
    local out
    out=$(timeout $((MESSAGES * 4 / $2 + 60)) "$LOAD" --url "$URL" --queue "$1" \
        --type bench:noop --count "$MESSAGES" --rate "$2" --publishers 1 2>&1) ||
        { printf '%s\n' "$out" >&2; fail "warren-load at $2 msg/s"; }
    PUBLISHED=$(sed -n 's/^summary: sent [0-9]* confirmed [0-9]* .* in \([0-9.]* s: [0-9.]* msg\/s\).*/\1/p' \
        <<<"$out")
}

# "p50 A us, p99 B us, max C us" -> "A B C"
latency_us() { sed -n 's/.*p50 \([0-9]*\) us, p99 \([0-9]*\) us, max \([0-9]*\) us.*/\1 \2 \3/p'; }

# s5_bare RUN RATE: wr-baseline latency (prefetch 1000) on a paced stream;
# sets LAT to "p50 p99 max" in us.
LAT=
s5_bare() {
    local q="bench-$$-s5-bare-$2-$1" out=$WORK/s5-bare-$2-$1.out bpid
    WR_FILL_DLX=$q.dlx timeout 60 "$FILL" "$URL" "$q" 0 >/dev/null 2>&1 ||
        fail "declaring $q"
    "$BASELINE" "$URL" "$q" "$MESSAGES" 1000 latency >"$out" 2>&1 &
    bpid=$!
    BG_PIDS+=("$bpid")
    paced_load "$q" "$2"
    wait "$bpid" || { cat "$out" >&2; fail "wr-baseline latency"; }
    LAT=$(latency_us <"$out")
    [[ -n $LAT ]] || fail "no latency from wr-baseline at $2 msg/s"
    printf 'run %d, %d msg/s, bare:    published %s; handled at %s msg/s; p50/p99/max %s us\n' \
        "$1" "$2" "$PUBLISHED" "$(rate_of <"$out")" "$LAT"
    check_empty_and_delete "$q"
}

# s5_warrend RUN RATE PREFETCH: the same stream through warrend.
s5_warrend() {
    local q="bench-$$-s5-$2-$1" conf=$WORK/s5-$2-$1.conf log=$WORK/s5-$2-$1.log pid
    PREFETCH=$3 POOL=2 write_bench_conf "$conf" "$q" 4 fx_count "$FX_COUNT" \
        "${BENCH_S5_HANDLER:-latency}" "expect = \"$MESSAGES\""
    start_warrend_bg "$conf" "$log"
    pid=$STARTED_PID
    BG_PIDS+=("$pid")
    paced_load "$q" "$2"
    local deadline=$((SECONDS + WAIT_TIMEOUT))
    until grep -q "bench: $MESSAGES messages in " "$log"; do
        ((SECONDS < deadline)) || { WLOG=$log; fail "not all handled"; }
        sleep 0.2
    done
    stop_pid "$pid" "$log"
    LAT=$(grep 'bench: latency of ' "$log" | tail -n 1 | latency_us)
    [[ -n $LAT ]] || fail "no latency line at $2 msg/s"
    printf 'run %d, %d msg/s, warrend: published %s; handled at %s msg/s; p50/p99/max %s us\n' \
        "$1" "$2" "$PUBLISHED" "$(rate_of <"$log")" "$LAT"
    check_empty_and_delete "$q"
    delete_queue_retries "$q"
}

# ms US: microseconds as milliseconds, two decimals.
ms() { awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'; }

# med_col COLUMN "a b c" "a b c" ...: the median of one column.
med_col() {
    local col=$1 v=() t f
    shift
    for t in "$@"; do
        read -r -a f <<<"$t"
        v+=("${f[col]}")
    done
    median "${v[@]}"
}

scenario5() {
    local RUNS=${RUNS:-3} seconds=10 pf=${BENCH_S5_PREFETCH:-$SHIPPED} rate run b w
    log "scenario 5: $RUNS runs of a publisher paced for ${seconds}s;" \
        "bare: wr-baseline latency (prefetch 1000); warrend: prefetch $pf," \
        "the ${BENCH_S5_HANDLER:-latency} handler"
    for rate in 1000 10000 20000; do
        MESSAGES=$((rate * seconds))
        local bare=() wd=()
        for ((run = 1; run <= RUNS; run++)); do
            # Alternating which goes first: the machine's load drifts.
            if ((run % 2)); then
                s5_bare "$run" "$rate"; b=$LAT
                s5_warrend "$run" "$rate" "$pf"; w=$LAT
            else
                s5_warrend "$run" "$rate" "$pf"; w=$LAT
                s5_bare "$run" "$rate"; b=$LAT
            fi
            bare+=("$b") wd+=("$w")
        done
        b=$(med_col 1 "${bare[@]}") w=$(med_col 1 "${wd[@]}")
        printf 'paced %d msg/s, medians of %d (p50 / p99 / max, ms): bare %s / %s / %s, warrend %s / %s / %s; ratio p99 warrend/bare: %s\n' \
            "$rate" "$RUNS" \
            "$(ms "$(med_col 0 "${bare[@]}")")" "$(ms "$b")" "$(ms "$(med_col 2 "${bare[@]}")")" \
            "$(ms "$(med_col 0 "${wd[@]}")")" "$(ms "$w")" "$(ms "$(med_col 2 "${wd[@]}")")" \
            "$(awk -v a="$w" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"
    done
}

case $SCENARIO in
    all) scenario1; scenario2; scenario3; scenario4; scenario5 ;;
    *) "scenario$SCENARIO" ;;
esac
