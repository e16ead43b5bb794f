#!/usr/bin/env bash
# reload_pause.sh - how long a reload (SIGHUP) pauses message handling under
# load, against the gaps of the same drain when nothing is reloaded.
#
# usage: tests/bench/reload_pause.sh [--messages N] [--reloads R] [--rate M]
#        tests/bench/reload_pause.sh --analyze LOG [CONTROL_LOG CONTROL_TICKS]
#   defaults: 40000 messages, 30 reloads, rate 4000 msg/s (0: deep drain)
#
# Builds nothing: takes the build from $BUILD_DIR (default: build/ at the
# repository root) and needs warrend, tests/bench/wr-fill and
# tests/fixtures/fx_version_v1.so and fx_version_v2.so in it. Starts a
# private broker with tests/harness/broker.sh unless WARREN_TEST_AMQP_URL is
# set. Makes two runs, each on a fresh queue that gets N bench:noop messages
# (wr-fill; each has an integer "id"): by default as a steady stream of M
# messages a second published while warrend consumes (load as in service:
# the queue stays short, so the gaps between completions are the
# consumer's, not a deep queue's stalls); with --rate 0 all of them before
# warrend starts, which it then drains as fast as it can (the broker's own
# pauses along a deep drain reach some 30-40 ms here, reload or not). With
# fx_version_v1.so
# installed as WORK/RUN/plugins/fx_version.so (by rename, as users must) and
# warrend (log_level "info", 1 connection, prefetch 100, 1 worker --
# BENCH_WORKERS=N changes it) routing bench:noop to its handler "version",
# which logs "version=<V> handled id=<I>" per message. Once messages flow
# and BENCH_LEAD_MS (default 500) have passed, R times, every ~150 ms while
# messages are still handled, the run installs the other build (v2, v1, v2,
# ...) at the same path and
#   - control run: does nothing else (these ticks are the baseline moments);
#   - reload run: sends SIGHUP.
# After the queue is empty and every id was handled it stops warrend with
# SIGTERM (exit status 0 and an empty queue are checked) and reads the log,
# whose lines start with a millisecond timestamp:
#
#  - reload pause: for each "reload: generation G ready in T ms" line at
#    time t inside the drain, the largest gap between consecutive "handled"
#    lines among the gaps that overlap [t - 200, t + 200] ms (so the gap
#    that spans t counts, however long). Reloads are ~150 ms apart: windows
#    of neighbouring reloads overlap, one long pause can show in up to
#    three of them.
#  - reload swap gap: the gap between the last message handled before the
#    "ready" line (the swap) and the first one after it: the pause the
#    swap itself causes, without the drain's own stalls nearby.
#  - baseline gap: the same statistic around the control run's ticks (as
#    many as reloads were counted): same drain, same work by this script,
#    no reload. (Moments between reloads would all lie within 200 ms of a
#    reload, and a quiet stretch before or after the reloads is a different
#    phase of the drain: the broker's stalls change along it.)
#
# Prints the counts, "reload pause p50/p99/max: X ms", "reload swap gap
# p50/p99/max", and the same two for the baseline (nearest rank), the messages handled by v1 and by v2,
# and the ids handled more than once (at-least-once: a reload should not
# make that grow). If the reload run logged no ready line (a warrend without
# reload ignores SIGHUP), prints "no reloads seen" and exits 1.
#
# --analyze reads kept logs only (a failed run keeps WORK: RUN/warrend.log,
# RUN/ticks.ms with the ticks' times in ms since the epoch).
#
# Timing assertions do not belong here: this prints numbers, it does not
# judge them. On a broker given by WARREN_TEST_AMQP_URL the drained (empty)
# bench-* queues are left behind. The private broker runs without scheduler
# busy-waiting, as in throughput.sh (BENCH_BROKER_BUSY_WAIT=1: the Erlang
# default). Tunables (environment): BENCH_WAIT_TIMEOUT (s a drain may take,
# default 300), BENCH_STOP_TIMEOUT (s warrend may take to exit after SIGTERM,
# default 45), BENCH_LEAD_MS (above).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MESSAGES=40000 RELOADS=30 PREFETCH=100 RATE=4000
WAIT_TIMEOUT=${BENCH_WAIT_TIMEOUT:-300}
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-45}
LEAD_MS=${BENCH_LEAD_MS:-500}
# Half the width of the window around a moment, and the ticks' period (ms).
WINDOW_MS=200 TICK_MS=150
ANALYZE_LOG="" ANALYZE_CLOG="" ANALYZE_CTICKS=""

usage() { sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# is_uint VALUE MAX: VALUE is an integer in 1..MAX
is_uint() { [[ $1 =~ ^[1-9][0-9]{0,8}$ ]] && (($1 <= $2)); }

while (($#)); do
    case $1 in
        --messages) MESSAGES=${2:-}; shift 2 || usage ;;
        --reloads) RELOADS=${2:-}; shift 2 || usage ;;
        --rate) RATE=${2:-}; shift 2 || usage ;;
        --analyze)
            ANALYZE_LOG=${2:-}; shift 2 || usage
            if (($# >= 2)) && [[ $1 != -* ]]; then
                ANALYZE_CLOG=$1 ANALYZE_CTICKS=$2; shift 2
            fi
            ;;
        -h | --help) usage ;;
        *) echo "reload_pause.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
is_uint "$MESSAGES" 100000000 || { echo "bad --messages" >&2; usage; }
is_uint "$RELOADS" 1000 || { echo "bad --reloads (1..1000)" >&2; usage; }
[[ $RATE == 0 ]] || is_uint "$RATE" 1000000 || { echo "bad --rate (0..1000000)" >&2; usage; }
[[ $LEAD_MS =~ ^[0-9]{1,6}$ ]] || { echo "bad BENCH_LEAD_MS" >&2; usage; }

log() { printf 'reload_pause.sh: %s\n' "$*" >&2; }

# parse_log LOG DIR: from a warrend log (lines start
# "YYYY-MM-DDTHH:MM:SS.mmmZ ", runtime/log.c) write DIR/handled.sorted (ms
# since the epoch of each handled line, sorted), DIR/ready (time and T of
# each ready line) and DIR/counts ("key value" lines: handled v1 v2 noid
# dup ready failed). mawk's printf "%d" stops at 2^31-1: ms go out as "%.0f".
parse_log() {
    local wlog=$1 dir=$2
    [[ -r $wlog ]] || { log "cannot read $wlog"; return 2; }
    mkdir -p "$dir"
    : >"$dir/handled" && : >"$dir/ready" || return 2
    awk -v out="$dir" '
        function days(y, m, d,   era, yoe, doy) { # days since 1970-01-01
            y -= (m <= 2)
            era = int((y >= 0 ? y : y - 399) / 400)
            yoe = y - era * 400
            doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
            return era * 146097 + yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy - 719468
        }
        function ms_of(ts,   d) {
            d = days(substr(ts, 1, 4) + 0, substr(ts, 6, 2) + 0, substr(ts, 9, 2) + 0)
            d = ((d * 24 + substr(ts, 12, 2)) * 60 + substr(ts, 15, 2)) * 60 + substr(ts, 18, 2)
            return d * 1000 + substr(ts, 21, 3)
        }
        $1 !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]Z$/ { next }
        / version=v[12] handled id=/ {
            printf "%.0f\n", ms_of($1) > (out "/handled")
            v = $0; sub(/.* version=/, "", v); byv[substr(v, 1, 2)]++
            id = $0; sub(/.* handled id=/, "", id)
            if (id == "-") noid++
            else if (++seen[id] == 2) dup++
            nh++
            next
        }
        /reload: generation [0-9]+ ready in / {
            x = $0; sub(/.* ready in /, "", x); sub(/ .*/, "", x)
            printf "%.0f %s\n", ms_of($1), x > (out "/ready")
            nready++
            next
        }
        /reload: generation [0-9]+ failed/ { nfail++ }
        END {
            printf "handled %d\nv1 %d\nv2 %d\nnoid %d\ndup %d\nready %d\nfailed %d\n",
                nh, byv["v1"], byv["v2"], noid, dup, nready, nfail > (out "/counts")
        }' "$wlog" || { log "cannot parse $wlog"; return 2; }
    sort -n "$dir/handled" >"$dir/handled.sorted"
}

# count_of DIR KEY: a number from DIR/counts.
count_of() { awk -v k="$2" '$1 == k { print $2 }' "$1/counts"; }

# window_stats LABEL HANDLED_SORTED MOMENTS LIMIT: for the first LIMIT
# moments (ms, first field of each line) inside the drain, the largest gap
# between consecutive handled times among the gaps that overlap
# [moment - WINDOW_MS, moment + WINDOW_MS]. Prints "LABEL moments: K
# (O outside the drain)" and, if K > 0, "LABEL p50/p99/max: X ms".
# Returns 1 if K is 0.
window_stats() {
    awk -v label="$1" -v moments="$3" -v limit="$4" -v w="${5:-$WINDOW_MS}" '
        function gap_at(t,   lo, hi, mid, j, g, best) {
            lo = 1; hi = n
            while (lo < hi) { mid = int((lo + hi) / 2); if (h[mid] >= t - w) hi = mid; else lo = mid + 1 }
            best = 0
            for (j = lo > 1 ? lo - 1 : 1; j < n && h[j] <= t + w; j++) {
                g = h[j + 1] - h[j]
                if (g > best) best = g
            }
            return best
        }
        function isort(a, k,   i, j, x) {
            for (i = 2; i <= k; i++) {
                x = a[i]
                for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]
                a[j + 1] = x
            }
        }
        function rank(a, k, p,   r) { r = int(k * p); if (r < k * p) r++; if (r < 1) r = 1; return a[r] }
        { h[++n] = $1 + 0 }
        END {
            k = 0; outside = 0
            while (k < limit && (getline l < moments) > 0) {
                split(l, f, " ")
                t = f[1] + 0
                if (n >= 2 && t > h[1] && t < h[n]) v[++k] = gap_at(t)
                else outside++
            }
            printf "%s moments: %d (%d outside the drain)\n", label, k, outside
            if (k == 0) exit 1
            isort(v, k)
            printf "%s p50: %.0f ms\n", label, rank(v, k, 0.50)
            printf "%s p99: %.0f ms\n", label, rank(v, k, 0.99)
            printf "%s max: %.0f ms\n", label, v[k]
        }' "$2"
}

# analyze LOG [CONTROL_LOG CONTROL_TICKS] TMPDIR: print everything; returns
# 1 if the reload run has no ready line, 2 if a file cannot be read.
analyze() {
    local wlog=$1 clog=$2 cticks=$3 tmp=$4 nready k=0 rc=0
    parse_log "$wlog" "$tmp/reload" || return 2
    printf 'reload run: handled %s (v1 %s, v2 %s)\n' "$(count_of "$tmp/reload" handled)" \
        "$(count_of "$tmp/reload" v1)" "$(count_of "$tmp/reload" v2)"
    if [[ $(count_of "$tmp/reload" noid) == "$(count_of "$tmp/reload" handled)" ]]; then
        printf 'ids: absent from the bodies; duplicates not counted\n'
    else
        printf 'ids handled more than once: %s\n' "$(count_of "$tmp/reload" dup)"
    fi
    nready=$(count_of "$tmp/reload" ready)
    printf 'reloads seen: %s ready, %s failed\n' "$nready" "$(count_of "$tmp/reload" failed)"
    if ((nready == 0)); then
        printf 'no reloads seen\n'
        rc=1
    else
        sort -n -k 2 "$tmp/reload/ready" | awk '{ t[NR] = $2 } END {
            printf "reload ready-in p50: %s ms, max: %s ms\n", t[int((NR + 1) / 2)], t[NR] }'
        if window_stats "reload pause" "$tmp/reload/handled.sorted" "$tmp/reload/ready" \
            "$nready" >"$tmp/reload/stats"; then
            k=$(awk 'NR == 1 { print $4 }' "$tmp/reload/stats")
        else
            rc=1
        fi
        cat "$tmp/reload/stats"
        window_stats "reload swap gap" "$tmp/reload/handled.sorted" "$tmp/reload/ready" \
            "$nready" 0 | tail -n +2 || true
    fi
    [[ -n $clog ]] || return "$rc"
    [[ -r $cticks ]] || { log "cannot read $cticks"; return 2; }
    parse_log "$clog" "$tmp/control" || return 2
    printf 'control run: handled %s, ticks %s\n' "$(count_of "$tmp/control" handled)" \
        "$(wc -l <"$cticks")"
    # As many moments as reloads were counted; all ticks if none was.
    ((k > 0)) || k=$(wc -l <"$cticks")
    window_stats "baseline gap" "$tmp/control/handled.sorted" "$cticks" "$k" || true
    window_stats "baseline swap gap" "$tmp/control/handled.sorted" "$cticks" "$k" 0 |
        tail -n +2 || true
    return "$rc"
}

if [[ -n $ANALYZE_LOG ]]; then
    ATMP=$(mktemp -d "${TMPDIR:-/tmp}/warren-reload-an.XXXXXX")
    trap 'rm -rf "$ATMP"' EXIT
    arc=0
    analyze "$ANALYZE_LOG" "$ANALYZE_CLOG" "$ANALYZE_CTICKS" "$ATMP" || arc=$?
    exit "$arc"
fi

if [[ -n ${BUILD_DIR:-} ]]; then
    BUILD_DIR=$(cd "$BUILD_DIR" && pwd) || { echo "no build dir $BUILD_DIR" >&2; exit 1; }
else
    BUILD_DIR=$ROOT/build
fi
WARREND=$BUILD_DIR/warrend
FILL=$BUILD_DIR/tests/bench/wr-fill
FX_V1=$BUILD_DIR/tests/fixtures/fx_version_v1.so
FX_V2=$BUILD_DIR/tests/fixtures/fx_version_v2.so
for f in "$WARREND" "$FILL" "$FX_V1" "$FX_V2"; do
    [[ -e $f ]] || { echo "reload_pause.sh: missing $f (build first: ./dev.sh build)" >&2; exit 1; }
done

. "$ROOT/tests/bench/bench_common.sh"

# now_ms: set NOW to the time in ms since the epoch (no fork with bash 5).
NOW=0
now_ms() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local t=${EPOCHREALTIME/[.,]/}
        NOW=${t:0:-3}
    else
        NOW=$(date +%s%3N)
    fi
}

# tick: sleep until TICK_AT (0: do not sleep), then set TICK_AT one period
# later (a period from now if the work between two ticks took longer).
TICK_AT=0
tick() {
    local d ms
    now_ms
    d=$((TICK_AT - NOW))
    if ((TICK_AT > 0 && d > 0)); then
        printf -v ms %03d $((d % 1000))
        sleep "$((d / 1000)).$ms"
        now_ms
    fi
    TICK_AT=$((TICK_AT > 0 ? TICK_AT + TICK_MS : NOW + TICK_MS))
    ((TICK_AT > NOW)) || TICK_AT=$((NOW + TICK_MS))
}

# Install by rename, never by writing over the loaded file (a process that
# has it mapped could die of SIGBUS): a new inode at the same path.
PLUGIN_DIR="" PLUGIN=""
install_plugin() { # SO
    install -m 0644 "$1" "$PLUGIN_DIR/.fx_version.so.tmp" || fail "install $1"
    mv -f "$PLUGIN_DIR/.fx_version.so.tmp" "$PLUGIN" || fail "mv to $PLUGIN"
}

# queue_ready QUEUE: set READY to the queue's ready count (wr-fill COUNT 0).
# Not run in $(...): fail() must end the script, not a subshell.
READY=
queue_ready() {
    local out
    out=$(timeout 60 "$FILL" "$URL" "$1" 0 2>&1) || fail "checking queue $1: $out"
    [[ $out =~ ^wr-fill:\ .*\ holds\ ([0-9]+)\ messages$ ]] || fail "wr-fill printed '$out'"
    READY=${BASH_REMATCH[1]}
}

# Handled lines logged so far, counted on what the log grew by since the
# last call (a full grep of the whole log every 150 ms would compete with
# warrend for the CPU). HANDLED and LOG_OFF are updated in place.
HANDLED=0 LOG_OFF=0
count_handled() {
    local size n
    size=$(stat -c %s "$WLOG" 2>/dev/null) || size=0
    ((size > LOG_OFF)) || return 0
    n=$(tail -c +$((LOG_OFF + 1)) "$WLOG" | head -c $((size - LOG_OFF)) |
        grep -c -E ' version=v[12] handled id=' || true)
    HANDLED=$((HANDLED + ${n:-0}))
    LOG_OFF=$size
}

# Distinct ids in the handled lines (a line without an id counts once).
distinct_handled() {
    awk '/ version=v[12] handled id=/ { id = $0; sub(/.* handled id=/, "", id)
            if (id == "-") n++; else if (!(id in s)) { s[id]; n++ } }
        END { print n + 0 }' "$WLOG"
}

write_conf() { # QUEUE CONF
    write_bench_conf "$2" "$1" "${BENCH_WORKERS:-1}" fx_version "$PLUGIN" version
}

# run_drain control|reload: one fill, drain and stop; the tick times go to
# WORK/RUN/ticks.ms. Sets SENT (ticks made). Runs in the main shell, not in
# $(...), so that fail() and WARREND_PID reach the EXIT trap.
SENT=0
run_drain() {
    local run=$1 dir=$WORK/$1 q="bench-$$-$1" conf deadline i n rc
    mkdir -p "$dir/plugins"
    PLUGIN_DIR=$dir/plugins PLUGIN=$dir/plugins/fx_version.so
    conf=$dir/warrend.conf WLOG=$dir/warrend.log
    : >"$dir/ticks.ms"
    HANDLED=0 LOG_OFF=0 TICK_AT=0 SENT=0

    if ((RATE == 0)); then
        log "$run run: filling $q with $MESSAGES messages"
        WR_FILL_DLX="$q.dlx" timeout "$WAIT_TIMEOUT" "$FILL" "$URL" "$q" "$MESSAGES" \
            >"$dir/fill.out" 2>&1 || { cat "$dir/fill.out" >&2; fail "wr-fill $q"; }
    else
        # Declared (empty) as warrend declares it; the stream starts
        # once warrend consumes.
        WR_FILL_DLX="$q.dlx" queue_ready "$q"
    fi
    install_plugin "$FX_V1"
    write_conf "$q" "$conf"
    # Created here: count_handled may look at it before warrend's stderr opens it.
    : >"$WLOG"
    # The URL is in the config: keep the caller's environment from overriding it.
    env -u WARREN_AMQP_URL -u WARREN_AMQP_PASSWORD -u WARREN_PLUGIN_DIR WARREN_HTTP_LISTEN= \
        "$WARREND" -c "$conf" </dev/null >"$WLOG" 2>&1 &
    WARREND_PID=$!
    if ((RATE > 0)); then
        log "$run run: streaming $MESSAGES messages at $RATE msg/s to $q"
        WR_FILL_DLX="$q.dlx" WR_FILL_RATE=$RATE timeout "$WAIT_TIMEOUT" "$FILL" "$URL" "$q" \
            "$MESSAGES" >"$dir/fill.out" 2>&1 &
        BG_PIDS+=($!)
    fi

    deadline=$((SECONDS + WAIT_TIMEOUT))
    while count_handled; ((HANDLED == 0)); do
        kill -0 "$WARREND_PID" 2>/dev/null || fail "warrend exited before handling a message"
        ((SECONDS < deadline)) || fail "no handled line from warrend within ${WAIT_TIMEOUT}s"
        sleep 0.05
    done
    printf -v n '%d.%03d' $((LEAD_MS / 1000)) $((LEAD_MS % 1000))
    sleep "$n"

    for ((i = 1; i <= RELOADS; i++)); do
        tick
        kill -0 "$WARREND_PID" 2>/dev/null || fail "warrend exited during the ticks"
        count_handled
        if ((HANDLED >= MESSAGES)); then
            log "$run run: all handled after $SENT of $RELOADS ticks (raise --messages for more)"
            break
        fi
        if ((i % 2)); then install_plugin "$FX_V2"; else install_plugin "$FX_V1"; fi
        now_ms
        printf '%s\n' "$NOW" >>"$dir/ticks.ms"
        if [[ $run == reload ]]; then
            kill -HUP "$WARREND_PID" || fail "kill -HUP $WARREND_PID"
        fi
        SENT=$i
    done

    if ((RATE > 0)); then
        rc=0
        wait "${BG_PIDS[-1]}" || rc=$?
        unset 'BG_PIDS[-1]'
        ((rc == 0)) || { cat "$dir/fill.out" >&2; fail "wr-fill $q (status $rc)"; }
    fi
    deadline=$((SECONDS + WAIT_TIMEOUT))
    while :; do
        kill -0 "$WARREND_PID" 2>/dev/null || fail "warrend exited before the queue drained"
        queue_ready "$q"
        ((READY == 0)) && break
        ((SECONDS < deadline)) || fail "queue $q still holds $READY messages after ${WAIT_TIMEOUT}s"
        sleep 0.5
    done
    # Nothing ready: wait (bounded) for the last prefetched ones.
    deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        n=$(distinct_handled)
        ((n >= MESSAGES)) && break
        kill -0 "$WARREND_PID" 2>/dev/null || fail "warrend exited with $n of $MESSAGES ids handled"
        if ((SECONDS >= deadline)); then
            log "$run run: $n of $MESSAGES ids handled ${STOP_TIMEOUT}s after the queue emptied; stopping"
            break
        fi
        sleep 0.2
    done

    stop_warrend_clean
    # Drained: nothing ready, and nothing was unacked when warrend closed.
    queue_ready "$q"
    ((READY == 0)) || fail "queue $q not drained: $READY messages back in it after the stop"
    WLOG=
}

run_drain control
CONTROL_TICKS=$SENT
run_drain reload
if ((RATE > 0)); then
    printf 'load: a stream of %d messages at %d msg/s per run\n' "$MESSAGES" "$RATE"
else
    printf 'load: a drain of %d messages from a full queue per run\n' "$MESSAGES"
fi
printf 'messages: %d per run; ticks asked: %d; control ticks: %d; SIGHUPs sent: %d\n' \
    "$MESSAGES" "$RELOADS" "$CONTROL_TICKS" "$SENT"
arc=0
analyze "$WORK/reload/warrend.log" "$WORK/control/warrend.log" "$WORK/control/ticks.ms" \
    "$WORK/analysis" || arc=$?
if ((arc != 0)); then
    FAILED=1
    exit "$arc"
fi
