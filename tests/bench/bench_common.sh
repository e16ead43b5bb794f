# bench_common.sh - sourced by the benchmark scripts (throughput.sh,
# reload_pause.sh, prefetch.sh): a work dir, fail(), stopping warrend, the EXIT trap that
# cleans up (logs kept on failure), and the broker: WARREN_TEST_AMQP_URL, or
# a private node without scheduler busy-waiting (BENCH_BROKER_BUSY_WAIT=1:
# the Erlang default). The caller defines log() and sets ROOT and
# STOP_TIMEOUT first; sets URL, WORK, BROKER_DIR, WARREND_PID, BG_PIDS, WLOG,
# FAILED; defines write_bench_conf.
# shellcheck shell=bash

WORK=$(mktemp -d "${TMPDIR:-/tmp}/warren-bench.XXXXXX")
BROKER_DIR=
WARREND_PID=
BG_PIDS=() # further background processes (a publisher), killed on exit
WLOG=
FAILED=0

fail() {
    log "FAILED: $*"
    if [[ -n $WLOG && -s $WLOG ]]; then
        printf -- '--- last lines of %s ---\n' "$WLOG" >&2
        tail -n 30 "$WLOG" >&2
    fi
    FAILED=1
    exit 1
}

stop_warrend() {
    local pid=$WARREND_PID deadline
    [[ -n $pid ]] || return 0
    WARREND_PID=
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_warrend
    if [[ -n $BROKER_DIR ]]; then
        "$ROOT/tests/harness/broker.sh" stop "$BROKER_DIR" || true
    fi
    if ((FAILED || rc != 0)); then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${WARREN_TEST_AMQP_URL:-} ]]; then
    URL=$WARREN_TEST_AMQP_URL
    log "using broker $URL"
else
    BROKER_DIR=$WORK/broker
    if [[ ${BENCH_BROKER_BUSY_WAIT:-0} != 1 ]]; then
        export BROKER_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"
        log "broker without scheduler busy-waiting ($BROKER_ERL_ARGS)"
    fi
    URL=$("$ROOT/tests/harness/broker.sh" start "$BROKER_DIR") || fail "could not start a broker"
fi

# The drains: the caller sets MESSAGES, WAIT_TIMEOUT, FILL (wr-fill) and
# WARREND. fill QUEUE [DLX] puts MESSAGES messages in QUEUE.
fill() { # QUEUE [DLX]
    WR_FILL_DLX=${2:-} timeout "$WAIT_TIMEOUT" "$FILL" "$URL" "$1" "$MESSAGES" >"$WORK/fill.out" 2>&1 ||
        { cat "$WORK/fill.out" >&2; fail "wr-fill $1"; }
}

# The queue must be drained: nothing ready (nothing unacked either: both
# consumers have closed their connections, so unacked would be requeued).
check_empty_and_delete() { # QUEUE
    local out
    out=$(timeout 60 "$FILL" "$URL" "$1" 0 2>&1) || fail "checking queue $1: $out"
    [[ $out == "wr-fill: $1 holds 0 messages" ]] || fail "queue $1 not drained: $out"
    if [[ -n $BROKER_DIR ]]; then
        "$ROOT/tests/harness/broker.sh" ctl "$BROKER_DIR" -q delete_queue "$1" >/dev/null ||
            fail "delete_queue $1"
    fi
}

rate_of() { # extract R from "... N messages in S s (R msg/s)"
    sed -n 's/.* messages in [0-9.]* s (\([0-9.]*\) msg\/s).*/\1/p' | head -n 1
}

median() { # values... -> median
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}


# A clean shutdown of WARREND_PID: SIGTERM, bounded wait (STOP_TIMEOUT),
# exit status 0, or fail().
stop_warrend_clean() {
    local deadline rc=0
    kill -TERM "$WARREND_PID"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$WARREND_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$WARREND_PID" 2>/dev/null; then
        fail "warrend did not exit within ${STOP_TIMEOUT}s of SIGTERM"
    fi
    wait "$WARREND_PID" || rc=$?
    WARREND_PID=
    ((rc == 0)) || fail "warrend exited with status $rc after SIGTERM"
}

# The retry queues warrend declared for QUEUE from the default policy
# (our own broker only).
delete_queue_retries() { # QUEUE
    [[ -n $BROKER_DIR ]] || return 0
    local r
    for r in 5000 10000 20000; do
        "$ROOT/tests/harness/broker.sh" ctl "$BROKER_DIR" -q delete_queue "$1.retry.$r" \
            >/dev/null || fail "delete_queue $1.retry.$r"
    done
}

# drain_with_warrend QUEUE CONF LOG [LISTEN]: run warrend on CONF (its log
# in LOG) until its fx_count handler logs "bench: $MESSAGES messages in",
# stop it (SIGTERM, bounded, exit 0), check that QUEUE is empty and delete
# it and its default retry queues; sets RATE (msg/s). LISTEN: the HTTP
# endpoint's address (then /metrics is scraped once a second), "" for off.
# Runs in the main shell, not in $(...), so that fail() and WARREND_PID
# reach the EXIT trap.
drain_with_warrend() {
    local q=$1 line rate deadline rc scraper=
    WLOG=$3
    # The URL is in the config: keep the caller's environment from overriding it.
    env -u WARREN_AMQP_URL -u WARREN_AMQP_PASSWORD -u WARREN_PLUGIN_DIR \
        WARREN_HTTP_LISTEN="${4:-}" \
        "$WARREND" -c "$2" </dev/null >"$WLOG" 2>&1 &
    WARREND_PID=$!
    if [[ -n ${4:-} ]]; then
        scrape "$WLOG" &
        scraper=$!
        BG_PIDS+=("$scraper")
    fi
    deadline=$((SECONDS + WAIT_TIMEOUT))
    while :; do
        line=$(grep -m 1 -E "bench: $MESSAGES messages in " "$WLOG" 2>/dev/null || true)
        [[ -z $line ]] || break
        kill -0 "$WARREND_PID" 2>/dev/null || fail "warrend exited before handling $MESSAGES messages"
        ((SECONDS < deadline)) || fail "no 'bench:' line from warrend within ${WAIT_TIMEOUT}s"
        sleep 0.2
    done
    rate=$(rate_of <<<"$line")
    [[ -n $rate ]] || fail "cannot parse '$line'"
    [[ -z $scraper ]] || { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; }
    stop_warrend_clean
    check_empty_and_delete "$q"
    delete_queue_retries "$q"
    WLOG=
    # shellcheck disable=SC2034 # the caller's result
    RATE=$rate
}

# write_bench_conf CONF QUEUE WORKERS PLUGIN PATH HANDLER [PARAMS]: warrend's
# config for a benchmark: info logging, POOL connections (default 1) to URL
# with prefetch PREFETCH (the caller's: a number, or auto), QUEUE as wr-fill declares it (durable classic,
# dead-lettering to QUEUE.dlx), route "bench:noop" to PLUGIN's HANDLER.
# WORKERS "" keeps the default; PARAMS are lines of the plugin's params.
write_bench_conf() {
    local workers=""
    [[ -z $3 ]] || workers="workers = $3"
    cat >"$1" <<EOF
# Generated by $(basename "$0")
log_level = "info"
$workers
shutdown_timeout = 30

broker {
    url = "$URL"
    pool_size = ${POOL:-1}
    prefetch = $([[ $PREFETCH == auto ]] && echo '"auto"' || echo "$PREFETCH")
    # ack_batch and ack_delay_ms: the defaults (100 messages, 10 ms)
}

exchange "$2.dlx" {
    type = "fanout"
}

queue "$2" {
    durable = true
    type = "classic"
    type_from = "json"
    type_field = "type"
    dead_letter_exchange = "$2.dlx"
}

plugin "$4" {
    path = "$5"
    params {
        ${7:-}
    }
}

route "bench:noop" {
    queue = "$2"
    plugin = "$4"
    handler = "$6"
}
EOF
}

# scrape LOG: GET /metrics once a second from the endpoint LOG names, until
# killed (bash's /dev/tcp: no client to install).
scrape() {
    local port deadline=$((SECONDS + 30))
    until port=$(sed -n 's/.*serving \/metrics.* on [0-9.]*:\([0-9]*\)$/\1/p' "$1" | head -n 1) &&
        [[ -n $port ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
    while :; do
        if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
            printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
            cat <&3 >/dev/null
            exec 3<&-
        fi
        sleep 1
    done
}
