#!/usr/bin/env bash
# broker.sh - a private RabbitMQ node for tests, benchmarks and the demo.
#
#   broker.sh start DIR [--tls CERTDIR [--mutual] [--verify MODE]]
#                    [--join DIR2]
#                              start a node with all its state under DIR,
#                              write DIR/env, print the AMQP URL; --tls adds
#                              a TLS listener, --join clusters it with the
#                              node under DIR2 (see below)
#   broker.sh stop DIR         stop it (idempotent; SIGKILL if the clean stop
#                              times out)
#   broker.sh ctl DIR ARGS...  run rabbitmqctl ARGS against that node
#
# DIR/env is shell syntax (KEY=value lines); `set -a; . DIR/env; set +a`
# exports them. Variables:
#   WARREN_TEST_AMQP_URL  amqp://guest:guest@127.0.0.1:PORT
#   AMQP_PORT DIST_PORT EPMD_PORT  the node's ports (all on 127.0.0.1)
#   AMQPS_PORT, WARREN_TEST_AMQPS_URL  with --tls: the TLS listener's port
#                         (127.0.0.1) and amqps://guest:guest@localhost:PORT
#   NODE                  Erlang node name, warren-<pid>-<random>@localhost
#   PIDFILE               the node's pid file (pid of beam.smp)
#   BROKER_DIR            DIR, absolute
#   BROKER_HOME           HOME for rabbitmqctl (holds the .erlang.cookie)
#   BROKER_LOG            the node's main log file
#
# The node is isolated from any system RabbitMQ: its own HOME and cookie,
# name, ports, mnesia and log dirs, an empty enabled-plugins list, no env or
# config file, and its own epmd on a private port (killed by `stop`), so
# nothing is left running afterwards. The guest user can only log in over
# loopback, which is all we use.
#
# --tls CERTDIR: the node also listens for AMQP over TLS on another free
# loopback port, with CERTDIR/ca.pem, server.pem and server.key (what
# tls_certs.sh makes) as ssl_options, written to DIR/rabbitmq.conf (the plain
# node has no config file). --verify verify_peer (the default: the broker asks
# for a client certificate and checks one against ca.pem) or verify_none;
# --mutual: ssl_options.fail_if_no_peer_cert = true, a client without a
# certificate is refused. The plain listener stays, for test clients.
#
# --join DIR2: the node takes the cookie and the epmd of the running node
# under DIR2 (cluster members must share both) and joins its cluster
# (stop_app, join_cluster, start_app) before `start` returns. Its epmd is
# then shared: `stop` kills it only once no node is registered with it.
#
# Every wait is bounded. Tunables (environment): BROKER_START_TIMEOUT (s,
# default 90), BROKER_STOP_TIMEOUT (s, default 30), BROKER_CTL_TIMEOUT (s,
# default 60), BROKER_ERL_ARGS (extra Erlang VM flags for `start`, e.g. the
# benchmark's "+sbwt none ...").
#
# Measured on the 2-core Debian 12 dev box (RabbitMQ 3.10.8): start ~8 s
# (port open ~6 s, await_startup ~2 s), stop ~3 s.
set -euo pipefail

RMQ_BIN=${RMQ_BIN:-/usr/lib/rabbitmq/bin}
START_TIMEOUT=${BROKER_START_TIMEOUT:-90}
STOP_TIMEOUT=${BROKER_STOP_TIMEOUT:-30}
CTL_TIMEOUT=${BROKER_CTL_TIMEOUT:-60}

die() { printf 'broker.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'broker.sh: %s\n' "$*" >&2; }

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# True if something listens on 127.0.0.1:$1 (or any address on that port).
port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
    fi
    # Fallback (and double check): try to connect.
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    return 1
}

# Print a free port in 20000-29999 that is not in "$@".
pick_port() {
    local i port taken p
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
        taken=0
        for p in "$@"; do [[ $p == "$port" ]] && taken=1; done
        ((taken)) && continue
        port_in_use "$port" || { echo "$port"; return 0; }
    done
    die "no free port found in 20000-29999"
}

# Environment every rabbitmq script needs to reach (or be) this node.
# Called in a subshell or right before exec.
node_env() {
    export HOME="$BROKER_HOME"
    export ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_CONF_ENV_FILE="$BROKER_DIR/no-such-rabbitmq-env.conf"
    export RABBITMQ_NODENAME="$NODE"
    unset RABBITMQ_ENV_LOADED
}

load_env() {
    local dir=$1
    [[ -f $dir/env ]] || return 1
    # shellcheck source=/dev/null
    . "$dir/env"
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# The beam pid from PIDFILE, only if that process is still our node (guards
# against pid reuse).
beam_pid() {
    local pid
    [[ -s ${PIDFILE:-} ]] || return 1
    pid=$(tr -dc '0-9' <"$PIDFILE")
    [[ -n $pid ]] && pid_alive "$pid" || return 1
    # The node name is passed by environment, but HOME shows in argv.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
        grep -qF -- "-home $BROKER_HOME " || return 1
    echo "$pid"
}

log_tail() {
    local f
    for f in "$BROKER_LOG" "$BROKER_DIR/server.out"; do
        if [[ -s $f ]]; then
            printf -- '--- last lines of %s ---\n' "$f" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

kill_epmd() {
    [[ -n ${EPMD_PORT:-} ]] || return 0
    # Only our private epmd listens on EPMD_PORT; it refuses to die while a
    # node is registered, which is what we want.
    timeout 10 epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
}

# Hard stop: SIGKILL the node's whole process group (the wrapper shell runs
# under setsid, so its pid is the group id: sh, erl, beam.smp and its
# helpers), then beam by pid in case it left the group, then epmd. Used after
# a failed start and when the clean stop times out.
hard_kill() {
    local pid
    if [[ -s $BROKER_DIR/wrapper.pid ]]; then
        pid=$(<"$BROKER_DIR/wrapper.pid")
        if [[ -n $pid ]]; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    fi
    if pid=$(beam_pid); then
        log "killing beam.smp pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
    kill_epmd
}

cmd_start() {
    local dir=$1 t0 deadline pid url certs= mutual=false verify=verify_peer conf f
    local join= join_node= join_epmd= join_cookie=
    shift
    while (($#)); do
        case $1 in
            --join) (($# >= 2)) || usage; join=$2; shift ;;
            --tls) (($# >= 2)) || usage; certs=$2; shift ;;
            --mutual) mutual=true ;;
            --verify) (($# >= 2)) || usage; verify=$2; shift ;;
            *) usage ;;
        esac
        shift
    done
    [[ $verify == verify_peer || $verify == verify_none ]] ||
        die "--verify: verify_peer or verify_none, not $verify"
    [[ -n $certs || ($mutual == false && $verify == verify_peer) ]] ||
        die "--mutual and --verify need --tls"
    if [[ -n $certs ]]; then
        certs=$(cd "$certs" 2>/dev/null && pwd) || die "--tls: no directory $certs"
        for f in ca.pem server.pem server.key; do
            [[ -r $certs/$f ]] ||
                die "--tls: no $certs/$f (tests/harness/tls_certs.sh makes it)"
        done
    fi
    if [[ -n $join ]]; then
        # In a subshell: its env must not leak into this node's.
        join_node=$(load_env "$join" && beam_pid >/dev/null && echo "$NODE") ||
            die "--join: no running node under $join"
        join_epmd=$(load_env "$join" && echo "$EPMD_PORT")
        join_cookie=$(load_env "$join" && echo "$BROKER_HOME/.erlang.cookie")
    fi
    mkdir -p "$dir"
    BROKER_DIR=$(cd "$dir" && pwd)
    if load_env "$BROKER_DIR" && beam_pid >/dev/null; then
        die "a node ($NODE) is already running under $BROKER_DIR; stop it first"
    fi
    BROKER_HOME=$BROKER_DIR/home
    mkdir -p "$BROKER_HOME" "$BROKER_DIR/mnesia" "$BROKER_DIR/log"
    rm -f "$BROKER_DIR/env" "$BROKER_DIR/rabbit.pid" "$BROKER_DIR/wrapper.pid"
    if [[ -n $join ]]; then
        rm -f "$BROKER_HOME/.erlang.cookie"
        cp "$join_cookie" "$BROKER_HOME/.erlang.cookie"
    elif [[ ! -s $BROKER_HOME/.erlang.cookie ]]; then
        (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' \
            >"$BROKER_HOME/.erlang.cookie")
    fi
    chmod 400 "$BROKER_HOME/.erlang.cookie"
    echo '[].' >"$BROKER_DIR/enabled_plugins"

    NODE="warren-$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')@localhost"
    PIDFILE=$BROKER_DIR/rabbit.pid
    AMQP_PORT=$(pick_port)
    DIST_PORT=$(pick_port "$AMQP_PORT")
    EPMD_PORT=${join_epmd:-$(pick_port "$AMQP_PORT" "$DIST_PORT")}
    AMQPS_PORT=
    conf=$BROKER_DIR/no-such-rabbitmq.conf
    rm -f "$BROKER_DIR/rabbitmq.conf"
    if [[ -n $certs ]]; then
        AMQPS_PORT=$(pick_port "$AMQP_PORT" "$DIST_PORT" "$EPMD_PORT")
        conf=$BROKER_DIR/rabbitmq.conf
        printf '%s\n' "listeners.ssl.default = 127.0.0.1:$AMQPS_PORT" \
            "ssl_options.cacertfile = $certs/ca.pem" \
            "ssl_options.certfile = $certs/server.pem" \
            "ssl_options.keyfile = $certs/server.key" \
            "ssl_options.verify = $verify" \
            "ssl_options.fail_if_no_peer_cert = $mutual" >"$conf"
    fi
    BROKER_LOG=$BROKER_DIR/log/$NODE.log
    url="amqp://guest:guest@127.0.0.1:$AMQP_PORT"

    t0=$(date +%s.%N)
    (
        node_env
        export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        export RABBITMQ_NODE_PORT="$AMQP_PORT"
        export RABBITMQ_DIST_PORT="$DIST_PORT"
        export RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia"
        export RABBITMQ_LOG_BASE="$BROKER_DIR/log"
        export RABBITMQ_LOGS="$BROKER_LOG"
        export RABBITMQ_PID_FILE="$PIDFILE"
        export RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/enabled_plugins"
        export RABBITMQ_CONFIG_FILE="$conf"
        export RABBITMQ_ADVANCED_CONFIG_FILE="$BROKER_DIR/no-such-advanced.config"
        # Distribution listens on loopback only, like AMQP and epmd.
        export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}${BROKER_ERL_ARGS:+ $BROKER_ERL_ARGS}"
        # A crash dump goes to DIR, never to the caller's directory.
        export ERL_CRASH_DUMP="$BROKER_DIR/erl_crash.dump"
        cd "$BROKER_DIR"
        # setsid: a Ctrl-C in the terminal (demo) must not reach the node;
        # whoever started it stops it with `broker.sh stop`.
        exec setsid "$RMQ_BIN/rabbitmq-server" </dev/null >"$BROKER_DIR/server.out" 2>&1
    ) &
    echo $! >"$BROKER_DIR/wrapper.pid"
    disown  # no "Killed" job notice from this shell if hard_kill is needed

    # Write env early so that `stop` can clean up a half-started node.
    {
        printf '%s=%q\n' WARREN_TEST_AMQP_URL "$url" AMQP_PORT "$AMQP_PORT" \
            DIST_PORT "$DIST_PORT" EPMD_PORT "$EPMD_PORT" NODE "$NODE" \
            PIDFILE "$PIDFILE" BROKER_DIR "$BROKER_DIR" \
            BROKER_HOME "$BROKER_HOME" BROKER_LOG "$BROKER_LOG"
        if [[ -n $AMQPS_PORT ]]; then
            printf '%s=%q\n' AMQPS_PORT "$AMQPS_PORT" WARREN_TEST_AMQPS_URL \
                "amqps://guest:guest@localhost:$AMQPS_PORT"
        fi
    } >"$BROKER_DIR/env.tmp"
    mv "$BROKER_DIR/env.tmp" "$BROKER_DIR/env"

    deadline=$((SECONDS + START_TIMEOUT))
    until port_in_use "$AMQP_PORT" && [[ -s $PIDFILE ]]; do
        pid=$(<"$BROKER_DIR/wrapper.pid")
        if ! pid_alive "$pid"; then
            log "rabbitmq-server exited during start"
            log_tail; hard_kill; exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "port $AMQP_PORT not open after ${START_TIMEOUT}s"
            log_tail; hard_kill; exit 1
        fi
        sleep 0.2
    done
    local left=$((deadline - SECONDS))
    ((left < 5)) && left=5
    if ! (node_env; timeout $((left + 5)) "$RMQ_BIN/rabbitmqctl" -n "$NODE" -q \
            await_startup --timeout "$left") >"$BROKER_DIR/await.out" 2>&1; then
        log "await_startup failed:"; cat "$BROKER_DIR/await.out" >&2
        log_tail; hard_kill; exit 1
    fi
    if [[ -n $join ]] && ! (node_env
            for verb in stop_app "join_cluster $join_node" start_app; do
                # shellcheck disable=SC2086
                timeout "$CTL_TIMEOUT" "$RMQ_BIN/rabbitmqctl" -n "$NODE" -q $verb || exit 1
            done
            timeout "$CTL_TIMEOUT" "$RMQ_BIN/rabbitmqctl" -n "$NODE" -q \
                await_startup --timeout 60) >"$BROKER_DIR/join.out" 2>&1; then
        log "joining $join_node failed:"; cat "$BROKER_DIR/join.out" >&2
        log_tail; hard_kill; exit 1
    fi
    # The TLS listener opens with the plain one; check it all the same.
    if [[ -n $AMQPS_PORT ]] && ! port_in_use "$AMQPS_PORT"; then
        log "the TLS listener on 127.0.0.1:$AMQPS_PORT is not open"
        log_tail; hard_kill; exit 1
    fi
    log "node $NODE up on 127.0.0.1:$AMQP_PORT${AMQPS_PORT:+ (TLS on $AMQPS_PORT)}${join:+, clustered with $join_node,} in $(elapsed "$t0") s"
    echo "$url"
}

elapsed() { echo "$(date +%s.%N) $1" | awk '{ printf "%.1f", $1 - $2 }'; }

cmd_stop() {
    local dir=$1 t0 pid deadline
    [[ -d $dir ]] || return 0
    BROKER_DIR=$(cd "$dir" && pwd)
    load_env "$BROKER_DIR" || return 0
    t0=$(date +%s.%N)
    if pid=$(beam_pid); then
        (node_env; timeout $((STOP_TIMEOUT + 5)) "$RMQ_BIN/rabbitmqctl" -n "$NODE" -q \
            -t "$STOP_TIMEOUT" stop "$PIDFILE") >"$BROKER_DIR/stop.out" 2>&1 ||
            log "rabbitmqctl stop failed or timed out ($(tr '\n' ' ' <"$BROKER_DIR/stop.out"))"
        deadline=$((SECONDS + 5))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    hard_kill
    if pid=$(beam_pid); then die "node $NODE (pid $pid) is still running"; fi
    # The wrapper shell exits once beam is gone; reap it (bounded).
    if [[ -s $BROKER_DIR/wrapper.pid ]]; then
        pid=$(<"$BROKER_DIR/wrapper.pid")
        deadline=$((SECONDS + 5))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$BROKER_DIR/env" "$BROKER_DIR/wrapper.pid"
    log "node $NODE stopped in $(elapsed "$t0") s"
}

cmd_ctl() {
    local dir=$1; shift
    BROKER_DIR=$(cd "$dir" 2>/dev/null && pwd) || die "no broker dir $dir"
    load_env "$BROKER_DIR" || die "no running node under $dir (no env file)"
    node_env
    exec timeout "$CTL_TIMEOUT" "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"
}

[[ $# -ge 2 ]] || usage
cmd=$1 dir=$2
shift 2
case $cmd in
    start) cmd_start "$dir" "$@" ;;
    stop)  [[ $# -eq 0 ]] || usage; cmd_stop "$dir" ;;
    ctl)   cmd_ctl "$dir" "$@" ;;
    *) usage ;;
esac
