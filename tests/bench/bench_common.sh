# bench_common.sh - sourced by the benchmark scripts (throughput.sh,
# reload_pause.sh): a work dir, fail(), stopping warrend, the EXIT trap that
# cleans up (logs kept on failure), and the broker: WARREN_TEST_AMQP_URL, or
# a private node without scheduler busy-waiting (BENCH_BROKER_BUSY_WAIT=1:
# the Erlang default). The caller defines log() and sets ROOT and
# STOP_TIMEOUT first; sets URL, WORK, BROKER_DIR, WARREND_PID, BG_PIDS, WLOG,
# FAILED.
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
