#!/usr/bin/env bash
# dev.sh - build, test and demo warren on Debian 12.
#
#   ./dev.sh deps               install missing Debian packages (apt-get)
#   ./dev.sh build [--sanitize|--tsan]
#                               build/ (RelWithDebInfo), or build-asan/ with
#                               AddressSanitizer + UBSan, or build-tsan/
#                               with ThreadSanitizer
#   ./dev.sh test [--quick]     deps, the layer and format checks, then for
#                               build/ and build-asan/: build, start a private
#                               broker, run every unit, integration and
#                               fault-suite (tests/chaos) test binary; then
#                               the TSan pass: build-tsan/'s warrend,
#                               plugins and tools under build/'s integration
#                               and fault-suite binaries, and tests/tsan's
#                               drivers (any TSan report fails it); then
#                               once, the Debian packages (build-deb/,
#                               tests/package/check_deb.sh) and the
#                               replay of every fuzz corpus (tests/fuzz,
#                               build-fuzz/); --quick: build/ only
#   ./dev.sh fuzz [SECONDS]     build build-fuzz/ (clang, libFuzzer, ASan +
#                               UBSan) and run each tests/fuzz target for
#                               SECONDS (default 60) from its seed corpus;
#                               prints executions and coverage per target,
#                               fails on a crash (its input in build-fuzz/)
#   ./dev.sh check              the layer check (tests/check_layers.sh) and
#                               the format check (clang-format, .clang-format)
#   ./dev.sh format             rewrite the tree in the .clang-format style
#   ./dev.sh demo [APP] [--seconds N] [AMQP_URL]
#                               deps, build, start a private broker (unless
#                               AMQP_URL or WARREN_AMQP_URL is given), run
#                               warrend with the tutorial's applications
#                               (APP: all, the default, orders or
#                               notifications; conf/examples) driven by
#                               warren-load --mix, show warrenctl top, and
#                               at Ctrl-C (or after N seconds) print the
#                               final report (warrenctl summary). APP
#                               events: conf/warren.conf and ten sample
#                               messages, until Ctrl-C
#
# Environment: WARREN_TEST_AMQP_URL (test: use this broker, start none),
# WARREN_AMQP_URL (demo), TEST_TIMEOUT (s per test binary, default 900).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
BROKER_SH=$ROOT/tests/harness/broker.sh

# The Debian 12 packages the build, tests and demo need.
# openssl makes the TLS tests' certificates; libssl-dev: broker.c asks
# OpenSSL why a TLS connect failed; libsystemd-dev: sd_notify (Type=notify).
# scdoc builds the man pages (doc/); mandoc lints them in
# tests/unit/test_man.c (mandoc -Tlint); systemd's systemd-analyze verifies
# the unit (test_it_systemd), which runs man-db's man on its Documentation=.
# For the package check (tests/package/check_deb.sh): dpkg-dev
# (dpkg-shlibdeps makes Depends; dpkg-buildflags, dpkg-architecture), file
# (CPack's DEB generator finds the ELF files with it), lintian. clang and
# libclang-rt-14-dev (libFuzzer) build the fuzz targets (tests/fuzz).
PACKAGES=(build-essential cmake pkg-config librabbitmq-dev libconfuse-dev
    libjansson-dev libcriterion-dev rabbitmq-server amqp-tools procps iproute2
    clang-format libmicrohttpd-dev prometheus openssl libssl-dev
    libsystemd-dev scdoc mandoc systemd man-db dpkg-dev file lintian
    clang libclang-rt-14-dev)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '4,39p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Cleanup actions run by the EXIT trap, last registered first.
CLEANUPS=()
on_exit() { CLEANUPS=("$1" "${CLEANUPS[@]}"); }
run_cleanups() {
    local rc=$? c
    trap - EXIT INT TERM
    for c in "${CLEANUPS[@]}"; do eval "$c" || true; done
    exit "$rc"
}
trap run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- deps

cmd_deps() {
    local missing=() p sudo=() created_policy=
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "deps: no dpkg-query (not Debian?); install by hand: ${PACKAGES[*]}"
        return 0
    fi
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    # Node and npm, for the test that publishes with the tutorial's own
    # client (amqplib: tests/node, test_it_amqplib): Debian's nodejs and
    # npm, unless a node with its npm is there already (e.g. NodeSource's
    # nodejs, which bundles npm and conflicts with Debian's npm package).
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        for p in nodejs npm; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
                missing+=("$p")
        done
    fi
    if ((${#missing[@]} == 0)); then
        log "deps: all ${#PACKAGES[@]} packages installed"
        return 0
    fi
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            die "missing packages: ${missing[*]}; run as root: apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    log "deps: installing ${missing[*]}"
    # rabbitmq-server's postinst would start a system broker on 5672. The
    # tests never use it (they start private nodes), but do not leave one
    # running: a policy-rc.d that says "no" keeps services from starting.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
        on_exit "${sudo[*]} rm -f /usr/sbin/policy-rc.d"
    fi
    "${sudo[@]}" timeout 600 apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive timeout 1800 \
        apt-get install -y --no-install-recommends "${missing[@]}" ||
        log "deps: apt-get install reported an error; checking what got installed"
    if [[ -n $created_policy ]]; then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
    for p in "${missing[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            die "deps: $p is still not installed"
    done
}

# ---------------------------------------------------------------- build

# The build flavours: 0 plain, 1 ASan + UBSan, 2 TSan.
# build_dir FLAVOUR -> prints the build dir
build_dir() {
    case $1 in
        1) echo "$ROOT/build-asan" ;;
        2) echo "$ROOT/build-tsan" ;;
        *) echo "$ROOT/build" ;;
    esac
}

do_build() { # FLAVOUR
    local dir
    dir=$(build_dir "$1")
    local args=(-S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
    case $1 in
        1) args+=(-DWARREN_SANITIZE=ON) ;;
        2) args+=(-DWARREN_TSAN=ON) ;;
    esac
    log "build: $dir"
    cmake "${args[@]}"
    cmake --build "$dir" -j2
}

cmd_build() {
    local sanitize=0
    while (($#)); do
        case $1 in
            --sanitize) sanitize=1 ;;
            --tsan) sanitize=2 ;;
            *) usage ;;
        esac
        shift
    done
    do_build "$sanitize"
}

# ---------------------------------------------------------------- checks

# The C files clang-format keeps in the house style: all of ours.
format_files() {
    git -C "$ROOT" ls-files --cached --others --exclude-standard -- '*.c' '*.h' \
        2>/dev/null ||
        find runtime sdk plugins tests -name '*.[ch]'
}

# The layers of runtime/ (one-way includes, no circles), then the format
# (clang-format --dry-run -Werror: a drift fails, and says where).
cmd_check() {
    local files
    bash "$ROOT/tests/check_layers.sh" "$ROOT"
    command -v clang-format >/dev/null 2>&1 ||
        die "check: clang-format is not installed (./dev.sh deps)"
    mapfile -t files < <(format_files)
    clang-format --dry-run -Werror "${files[@]}" ||
        die "check: the files above differ from .clang-format: ./dev.sh format"
    log "check: ${#files[@]} files in the .clang-format style"
}

cmd_format() {
    local files
    mapfile -t files < <(format_files)
    clang-format -i "${files[@]}"
    log "format: ${#files[@]} files"
}

# ---------------------------------------------------------------- broker

# start_broker DIR: start a private node under DIR, stopped by the EXIT trap
# (or by stop_broker). Sets BROKER_URL.
start_broker() {
    local dir=$1
    on_exit "'$BROKER_SH' stop '$dir'"
    BROKER_URL=$("$BROKER_SH" start "$dir") || die "could not start a private RabbitMQ node"
}

stop_broker() { "$BROKER_SH" stop "$1" || true; }

# ---------------------------------------------------------------- test

TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_TESTED=0 BINARIES=0
FAILED_BINARIES=()
CHILD=

# run_binary BIN LOG: run one Criterion binary with live output, bounded by
# TEST_TIMEOUT, and add its Synthesis line to the totals.
run_binary() {
    local bin=$1 out=$2 rc=0 tailpid synth tested pass fail name
    name=${bin#"$ROOT"/}
    log "test: $name"
    # The fault suite's cases each run nodes and a load of their own: one
    # at a time (Criterion runs a binary's tests on every core otherwise).
    local jobs=()
    [[ $bin == */tests/chaos/* ]] && jobs=(env CRITERION_JOBS=1)
    timeout -k 10 "${TEST_TIMEOUT:-900}" "${jobs[@]}" "$bin" </dev/null >"$out" 2>&1 &
    CHILD=$!
    tail -n +1 -f --pid="$CHILD" "$out" &
    tailpid=$!
    wait "$CHILD" || rc=$?
    CHILD=
    wait "$tailpid" 2>/dev/null || true
    BINARIES=$((BINARIES + 1))
    ((rc == 124 || rc == 137)) && log "test: $name timed out after ${TEST_TIMEOUT:-900}s"

    synth=$(sed 's/\x1b\[[0-9;]*m//g' "$out" |
        sed -n 's/.*Synthesis: Tested: \([0-9]*\) | Passing: \([0-9]*\) | Failing: \([0-9]*\).*/\1 \2 \3/p' |
        tail -n 1)
    if [[ -z $synth ]]; then
        # No summary: the runner itself died (sanitizer, signal, timeout).
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
        FAILED_BINARIES+=("$name (exit $rc, no Criterion summary)")
        return 0
    fi
    read -r tested pass fail <<<"$synth"
    # Criterion counts crashes among the failing tests already.
    TOTAL_TESTED=$((TOTAL_TESTED + tested))
    TOTAL_PASS=$((TOTAL_PASS + pass))
    TOTAL_FAIL=$((TOTAL_FAIL + fail))
    if ((rc != 0)); then
        # A non-zero exit with no failing test (e.g. a leak report at exit)
        # still fails the run, and counts once.
        ((fail > 0)) || TOTAL_FAIL=$((TOTAL_FAIL + 1))
        FAILED_BINARIES+=("$name (exit $rc, $fail failing)")
    fi
}

kill_child() {
    local pid=$CHILD deadline
    [[ -n $pid ]] || return 0
    CHILD=
    # timeout(1) forwards the signal to the test's whole process group.
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
}
on_exit kill_child

# count_one RC WHAT: one test that is not a Criterion binary (a driver,
# the package check, a corpus replay), passed if RC is 0, else failed as
# WHAT.
count_one() {
    BINARIES=$((BINARIES + 1))
    TOTAL_TESTED=$((TOTAL_TESTED + 1))
    if (($1 == 0)); then
        TOTAL_PASS=$((TOTAL_PASS + 1))
    else
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
        FAILED_BINARIES+=("$2")
    fi
}

# run_driver BIN LOG: a plain test program (tests/tsan: no Criterion),
# passing if it exits 0. Counts as one test.
run_driver() {
    local bin=$1 out=$2 rc=0 name=${1#"$ROOT"/}
    log "test: $name"
    timeout -k 10 "${TEST_TIMEOUT:-900}" "$bin" </dev/null >"$out" 2>&1 || rc=$?
    cat "$out"
    count_one "$rc" "$name (exit $rc)"
}

# Every ThreadSanitizer report of the TSan pass (one file per process that
# saw a race: TSAN_OPTIONS log_path) is shown and fails the run, whether
# or not the test that ran the process noticed.
collect_tsan_reports() { # DIR
    local f n=0
    for f in "$1"/report.*; do
        [[ -f $f ]] || continue
        n=$((n + 1))
        log "test: ThreadSanitizer report $f:"
        cat "$f" >&2
        FAILED_BINARIES+=("ThreadSanitizer: $(grep -m1 '^SUMMARY' "$f" || basename "$f")")
    done
    TOTAL_FAIL=$((TOTAL_FAIL + n))
    ((n == 0)) && log "test: no ThreadSanitizer report"
    return 0
}

run_suite() { # FLAVOUR (build_dir)
    local flavour=$1 dir work bin found=0 own_broker=0 tests
    dir=$(build_dir "$flavour")
    do_build "$flavour"
    work=$(mktemp -d "${TMPDIR:-/tmp}/warren-test.XXXXXX")
    on_exit "rm -rf '$work'"

    if [[ -n ${WARREN_TEST_AMQP_URL:-} ]]; then
        log "test: using broker $WARREN_TEST_AMQP_URL"
    else
        start_broker "$work/broker"
        own_broker=1
        export WARREN_TEST_AMQP_URL=$BROKER_URL
        # Tests that inject faults run:
        #   "$WARREN_BROKER_SH" ctl "$WARREN_TEST_BROKER_DIR" close_all_connections
        export WARREN_TEST_BROKER_DIR=$work/broker WARREN_BROKER_SH=$BROKER_SH
    fi
    # The daemon, plugins and tools the tests start come from here.
    export WARREN_BUILD_DIR=$dir
    tests=$dir
    case $flavour in
        1)
            export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
            export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp
            export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
            ;;
        2)
            # Criterion cannot run under TSan (its issue #274): build/'s
            # test binaries drive build-tsan/'s warrend, plugins and tools.
            # The unit tests have run in build/ and build-asan/ already;
            # the threaded units run here in tests/tsan's drivers.
            tests=$ROOT/build
            mkdir -p "$work/tsan"
            export TSAN_OPTIONS="log_path=$work/tsan/report exitcode=66 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp"
            # Tests that compare speeds skip the comparison (it_tsan()):
            # TSan slows each thread by a different factor.
            export WARREN_TEST_TSAN=1
            ;;
    esac

    for bin in "$dir"/tests/tsan/tsan_*; do
        [[ -f $bin && -x $bin ]] || continue
        run_driver "$bin" "$work/$(basename "$bin").log"
    done
    for bin in "$tests"/tests/unit/test_* "$tests"/tests/integration/test_* \
        "$tests"/tests/chaos/test_*; do
        [[ -f $bin && -x $bin ]] || continue
        ((flavour == 2)) && [[ $bin == */tests/unit/* ]] && continue
        found=1
        run_binary "$bin" "$work/$(basename "$bin").log"
    done
    ((found)) || log "test: no test binaries in $tests/tests/{unit,integration,chaos}"
    ((flavour == 2)) && collect_tsan_reports "$work/tsan"

    unset WARREN_BUILD_DIR ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TSAN_OPTIONS \
        WARREN_TEST_TSAN
    if ((own_broker)); then
        unset WARREN_TEST_AMQP_URL WARREN_TEST_BROKER_DIR WARREN_BROKER_SH
        stop_broker "$work/broker"
    fi
}

# The Debian packages, once a run (not per build flavour: they take a
# build of their own, build-deb/): built, their file lists, control fields
# and lintian checked, their contents run extracted. Counts as one test.
run_package_check() {
    local rc=0 name=tests/package/check_deb.sh
    if ! command -v dpkg-deb >/dev/null 2>&1; then
        log "test: no dpkg-deb (not Debian?): $name skipped"
        return 0
    fi
    log "test: $name"
    timeout -k 10 "${TEST_TIMEOUT:-900}" bash "$ROOT/$name" "$ROOT/build-deb" \
        </dev/null || rc=$?
    count_one "$rc" "$name (exit $rc)"
}

# ---------------------------------------------------------------- fuzz

FUZZ_DIR=$ROOT/build-fuzz
FUZZ_TARGETS=(envelope headers conf url http)

do_fuzz_build() {
    command -v clang >/dev/null 2>&1 || die "fuzz: clang is not installed (./dev.sh deps)"
    log "build: $FUZZ_DIR (clang, libFuzzer)"
    CC=clang cmake -S "$ROOT" -B "$FUZZ_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DWARREN_FUZZ=ON -DWARREN_TESTS=OFF
    cmake --build "$FUZZ_DIR" -j2 --target "${FUZZ_TARGETS[@]/#/fuzz_}"
}

# Each target once over each input of its corpus (no mutation): a few
# seconds in all. Counts as one test per target.
run_fuzz_replay() {
    local t rc files out
    do_fuzz_build
    for t in "${FUZZ_TARGETS[@]}"; do
        files=("$ROOT/tests/fuzz/corpus/$t"/*)
        out=$FUZZ_DIR/replay-$t.log
        rc=0
        log "test: fuzz replay $t (${#files[@]} inputs)"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            timeout -k 10 "${TEST_TIMEOUT:-900}" "$FUZZ_DIR/tests/fuzz/fuzz_$t" \
            -runs=1 "${files[@]}" </dev/null >"$out" 2>&1 || rc=$?
        if ((rc == 0)) && ! grep -q '^Executed .* in [0-9]* ms' "$out"; then
            rc=1 # it ran no input
        fi
        ((rc == 0)) || tail -n 30 "$out" >&2
        count_one "$rc" "fuzz replay $t (exit $rc; $out)"
    done
}

cmd_fuzz() {
    local seconds=${1:-60} t rc work out failed=() execs cov dict
    (($# <= 1)) && [[ $seconds =~ ^[1-9][0-9]{0,4}$ ]] || usage
    do_fuzz_build
    for t in "${FUZZ_TARGETS[@]}"; do
        work=$FUZZ_DIR/corpus-$t
        out=$FUZZ_DIR/fuzz-$t.log
        mkdir -p "$work"
        dict=()
        [[ -f $ROOT/tests/fuzz/$t.dict ]] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
        log "fuzz: $t for ${seconds}s (new inputs in $work)"
        rc=0
        # New inputs go to the first corpus, the work dir; the seeds are
        # only read. -timeout: an input running past it is a hang.
        ASAN_OPTIONS=detect_leaks=1 \
            timeout -k 10 $((seconds + 120)) "$FUZZ_DIR/tests/fuzz/fuzz_$t" \
            -max_total_time="$seconds" -timeout=25 -print_final_stats=1 \
            -artifact_prefix="$FUZZ_DIR/crash-$t-" "${dict[@]}" \
            "$work" "$ROOT/tests/fuzz/corpus/$t" </dev/null >"$out" 2>&1 || rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
        cov=$(sed -n 's/.*\(cov: [0-9]*\).*/\1/p' "$out" | tail -n 1)
        echo "fuzz: $t: ${execs:-?} executions, ${cov:-cov: ?} edges in ${seconds}s, exit $rc"
        if ((rc != 0)); then
            grep -E 'ERROR|SUMMARY|Test unit written' "$out" >&2 || tail -n 20 "$out" >&2
            failed+=("$t")
        fi
    done
    ((${#failed[@]} == 0)) || die "fuzz: crashed: ${failed[*]} (inputs: $FUZZ_DIR/crash-*)"
}

cmd_test() {
    local quick=0 variants=(0 1 2)
    while (($#)); do
        case $1 in
            --quick) quick=1 ;;
            *) usage ;;
        esac
        shift
    done
    ((quick)) && variants=(0)
    cmd_deps
    cmd_check
    for s in "${variants[@]}"; do run_suite "$s"; done
    ((quick)) || run_package_check
    if ((!quick)); then
        if command -v clang >/dev/null 2>&1; then
            run_fuzz_replay
        else
            log "test: no clang: the fuzz corpora are not replayed"
        fi
    fi

    local b
    for b in "${FAILED_BINARIES[@]}"; do log "test: FAILED $b"; done
    echo "test: $TOTAL_PASS passed, $TOTAL_FAIL failed"
    if ((TOTAL_TESTED == 0)); then
        log "test: no test ran ($BINARIES binaries)"
        exit 1
    fi
    ((TOTAL_FAIL == 0 && ${#FAILED_BINARIES[@]} == 0)) || exit 1
}

# ---------------------------------------------------------------- demo

WARREND_PID=
stop_warrend() {
    local pid=$WARREND_PID deadline
    [[ -n $pid ]] || return 0
    WARREND_PID=
    if kill -0 "$pid" 2>/dev/null; then
        log "demo: stopping warrend (SIGTERM, waits for in-flight handlers)"
        kill -TERM "$pid" 2>/dev/null || true
        # conf/warren.conf: shutdown_timeout = 30
        deadline=$((SECONDS + 40))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "demo: warrend did not exit in 40 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

publish() { # URL KEY BODY
    printf '    %-14s %s\n' "$2" "$3" >&2
    timeout 15 amqp-publish --url="$1" -e events -r "$2" -C application/json -b "$3"
}

# The first demo: conf/warren.conf (the real-time processor's three
# types) and ten sample messages, until Ctrl-C.
demo_events() {
    local url=$1 work deadline log_file i rc
    work=$(mktemp -d "${TMPDIR:-/tmp}/warren-demo.XXXXXX")
    on_exit "rm -rf '$work'"
    if [[ -z $url ]]; then
        start_broker "$work/broker"
        url=$BROKER_URL
        log "demo: private RabbitMQ node at $url"
    else
        log "demo: using broker $url"
    fi

    log_file=$work/warrend.log
    log "demo: build/warrend -c conf/warren.conf (Ctrl-C to stop)"
    # warrend runs in its own session so that Ctrl-C reaches only this
    # script, which then stops warrend exactly once (SIGTERM) and the broker.
    # Its log goes to a file that `tail` shows live (tail ends with warrend).
    on_exit stop_warrend
    WARREN_AMQP_URL=$url WARREN_PLUGIN_DIR=$ROOT/build/plugins \
        setsid "$ROOT/build/warrend" -c "$ROOT/conf/warren.conf" </dev/null >"$log_file" 2>&1 &
    WARREND_PID=$!
    setsid tail -n +1 -f --pid="$WARREND_PID" "$log_file" &

    deadline=$((SECONDS + 30))
    until grep -q 'consuming' "$log_file"; do
        kill -0 "$WARREND_PID" 2>/dev/null || die "warrend exited during start-up (log above)"
        ((SECONDS < deadline)) || die "warrend did not log 'consuming' within 30 s"
        sleep 0.2
    done

    log "demo: publishing sample messages to exchange 'events'"
    for i in 1 2 3; do
        publish "$url" user.signup "{\"type\":\"user:signup\",\"userId\":$i,\"email\":\"user$i@example.com\"}"
        publish "$url" order.created "{\"type\":\"order:created\",\"orderId\":\"o-$i\",\"userId\":$i,\"items\":[{\"sku\":\"sku-$i\",\"qty\":$i}],\"totalAmount\":$((i * 10)).5}"
        publish "$url" email.send "{\"type\":\"email:send\",\"to\":\"user$i@example.com\",\"subject\":\"Welcome #$i\"}"
    done
    # Invalid on purpose (no items, negative total): the handler rejects it,
    # and warrend publishes it to the dead-letter exchange (events.dlq).
    publish "$url" order.created '{"type":"order:created","orderId":"o-bad","userId":1,"items":[],"totalAmount":-5}'
    log "demo: published 10 messages; warrend keeps running, Ctrl-C to stop"

    rc=0
    wait "$WARREND_PID" || rc=$?
    WARREND_PID=
    log "demo: warrend exited with status $rc"
    return "$rc"
}

# warrend_port LOG: the port of warrend's HTTP endpoint, from its log.
warrend_port() {
    sed -n 's/.*serving \/metrics.* on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1
}

LOAD_PIDS=() TOP_PID=
stop_demo_children() {
    local p
    [[ -z $TOP_PID ]] || kill -TERM "$TOP_PID" 2>/dev/null || true
    for p in "${LOAD_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    [[ -z $TOP_PID ]] || wait "$TOP_PID" 2>/dev/null || true
    for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    TOP_PID= LOAD_PIDS=()
}

# The tutorial's applications (7.1, 7.2) and its complete app (7.3): one
# warrend runs conf/examples/orders.conf and notifications.conf (one
# after the other in one file: they set no key twice but `workers`),
# warren-load publishes the tutorial's mix to each (valid and bad orders,
# declined payments, every channel and priority, malformed and unroutable
# notifications), warrenctl top is the tutorial's dashboard, and the final
# report is its report at SIGINT. Rates: orders 20/s, notifications 8/s
# (with the tutorial's latencies that keeps about 4 of the 8 workers busy).
cmd_demo() {
    local app=all seconds=0 url=${WARREN_AMQP_URL:-} work conf log_file
    local deadline port http a rc=0 stop=0 limit
    while (($#)); do
        case $1 in
            all | orders | notifications | events) app=$1 ;;
            --seconds)
                [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "demo: --seconds wants a number of seconds"
                seconds=$2
                shift
                ;;
            amqp://* | amqps://*) url=$1 ;;
            *) usage ;;
        esac
        shift
    done
    cmd_deps
    do_build 0
    if [[ $app == events ]]; then
        ((seconds == 0)) || die "demo events: runs until Ctrl-C (no --seconds)"
        demo_events "$url"
        return
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/warren-demo.XXXXXX")
    on_exit "rm -rf '$work'"
    if [[ -z $url ]]; then
        start_broker "$work/broker"
        url=$BROKER_URL
        log "demo: private RabbitMQ node at $url"
    else
        log "demo: using broker $url"
    fi

    conf=$work/demo.conf
    case $app in
        all) cat conf/examples/orders.conf conf/examples/notifications.conf ;;
        *) cat "conf/examples/$app.conf" ;;
    esac >"$conf"
    log_file=$work/warrend.log
    log "demo: build/warrend with conf/examples ($app); its log: $log_file"
    # warrend, the loads and top run in sessions of their own so that
    # Ctrl-C reaches only this script, which then stops each exactly once.
    on_exit stop_warrend
    WARREN_AMQP_URL=$url WARREN_PLUGIN_DIR=$ROOT/build/plugins \
        WARREN_HTTP_LISTEN=127.0.0.1:0 \
        setsid "$ROOT/build/warrend" -c "$conf" </dev/null >"$log_file" 2>&1 &
    WARREND_PID=$!
    deadline=$((SECONDS + 30))
    until grep -q 'consuming' "$log_file" && [[ -n $(warrend_port "$log_file") ]]; do
        kill -0 "$WARREND_PID" 2>/dev/null || { cat "$log_file" >&2; die "warrend exited during start-up"; }
        ((SECONDS < deadline)) || die "warrend did not start within 30 s (log: $log_file)"
        sleep 0.2
    done
    port=$(warrend_port "$log_file")
    http=http://127.0.0.1:$port

    on_exit stop_demo_children
    # Bounded even without --seconds: warren-load stops at an hour.
    limit=$((seconds > 0 ? seconds : 3600))
    for a in orders notifications; do
        [[ $app == all || $app == "$a" ]] || continue
        setsid "$ROOT/build/warren-load" --url "$url" --mix "$a" --persistent \
            --rate "$([[ $a == orders ]] && echo 20 || echo 8)" --seconds "$limit" \
            </dev/null >"$work/load-$a.log" 2>&1 &
        LOAD_PIDS+=($!)
    done
    log "demo: warren-load --mix publishing; $( ((seconds)) && echo "$seconds s" || echo "Ctrl-C for the final report")"
    if [[ -t 1 ]]; then
        setsid "$ROOT/build/warrenctl" --url "$http" top --interval 2 </dev/null &
        TOP_PID=$!
    fi
    trap 'stop=1' INT TERM
    deadline=$((SECONDS + limit))
    local tick=0
    while ((!stop && SECONDS < deadline)); do
        # Not a terminal (a test, a CI log): one frame every 5 s instead.
        if [[ -z $TOP_PID ]] && ((tick++ % 5 == 4)); then
            "$ROOT/build/warrenctl" --url "$http" status || true
        fi
        sleep 1
    done
    trap 'exit 130' INT
    trap 'exit 143' TERM
    stop_demo_children
    ((!stop)) || echo
    for a in orders notifications; do
        [[ -f $work/load-$a.log ]] || continue
        log "demo: warren-load --mix $a:"
        grep -E '^(summary|mix):' "$work/load-$a.log" >&2 || tail -n 3 "$work/load-$a.log" >&2
    done
    log "demo: the final report (retries still waiting in <queue>.retry.* are counted when they come back)"
    "$ROOT/build/warrenctl" --url "$http" summary --settle 20 || rc=1
    stop_warrend
    return "$rc"
}

# ---------------------------------------------------------------- main

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
    deps) (($# == 0)) || usage; cmd_deps ;;
    build) cmd_build "$@" ;;
    check) (($# == 0)) || usage; cmd_check ;;
    format) (($# == 0)) || usage; cmd_format ;;
    test) cmd_test "$@" ;;
    fuzz) cmd_fuzz "$@" ;;
    demo) cmd_demo "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
