# Shared by bench/run.sh and bench/rss.sh (sourced, not run).
# Builds bare and regiond, starts and stops servers, parses wrk's BENCH line.

THREADS=${THREADS:-2}
# `-` rather than `:-`: REGIOND_ARGS="" really means "no extra arguments".
# The default is regiond's own defaults (log level info), in memory.
REGIOND_ARGS=${REGIOND_ARGS-"--in-memory"}
BARE_BIN=.build/bench/bare
FSYNC_BIN=.build/bench/fsync
# Durable servers keep their state directories here (removed on exit); the
# fdatasync probe measures the same file system.
STATE_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/regiond-bench.XXXXXX")
LOG_DIR=${LOG_DIR:-.build/bench/logs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$LOG_DIR"

SERVER_PID=""
PORT=""

die() { echo "error: $*" >&2; exit 1; }

build_bare() {
    mkdir -p .build/bench
    # shellcheck disable=SC2046
    cc -O2 -Wall -o "$BARE_BIN" bench/bare.c $(pkg-config --cflags --libs libmicrohttpd)
}

build_fsync_probe() {
    mkdir -p .build/bench
    cc -O2 -Wall -o "$FSYNC_BIN" bench/fsync.c
}

# Sets REGIOND_BIN, building regiond when it is not set.
build_regiond() {
    if [ -n "${REGIOND_BIN:-}" ]; then
        [ -x "$REGIOND_BIN" ] || die "REGIOND_BIN=$REGIOND_BIN is not executable"
        return
    fi
    echo "== swift build -c release --static-swift-stdlib --product regiond" >&2
    swift build -c release --static-swift-stdlib --product regiond >&2
    REGIOND_BIN="$(swift build -c release --static-swift-stdlib --show-bin-path)/regiond"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# server_cmd NAME: the command line (without --port) of server NAME.
server_cmd() {
    case "$1" in
        bare) echo "$BARE_BIN --threads $THREADS" ;;
        regiond) echo "$REGIOND_BIN --host 127.0.0.1 --threads $THREADS${REGIOND_ARGS:+ $REGIOND_ARGS}" ;;
        durable) echo "$REGIOND_BIN --host 127.0.0.1 --threads $THREADS --state-dir $(mktemp -d "$STATE_ROOT/state.XXXXXX")" ;;
        warning) echo "$REGIOND_BIN --host 127.0.0.1 --threads $THREADS --in-memory --log-level warning" ;;
        *) die "unknown server $1" ;;
    esac
}

# start_server NAME LOGFILE: starts it on a free port; sets SERVER_PID, PORT.
# Ready means it answers HTTP (any status): polled with curl, so it does not
# depend on the server flushing its "listening on" line.
start_server() {
    local name=$1 log=$2 i
    PORT=$(free_port)
    # shellcheck disable=SC2046
    $(server_cmd "$name") --port "$PORT" >"$log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 1 200); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" || true
            SERVER_PID=""
            cat "$log" >&2
            die "$name exited before accepting connections (log: $log)"
        fi
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/livez"; then
            return 0
        fi
        sleep 0.05
    done
    die "$name did not accept connections on port $PORT within 10 s (log: $log)"
}

# stop_server: SIGTERM, wait up to 10 s, then SIGKILL. Warns on a non-zero exit.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid=$SERVER_PID i rc=0
    SERVER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "warning: server $pid ignored SIGTERM for 10 s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || echo "warning: server $pid exited with status $rc" >&2
}

trap 'stop_server; rm -rf "$STATE_ROOT"' EXIT
trap 'exit 130' INT TERM

# bench_field FILE KEY: a value from the "BENCH key=value ..." line regions.lua prints.
bench_field() {
    awk -v key="$2" '$1 == "BENCH" { for (i = 2; i <= NF; i++) {
        eq = index($i, "="); if (substr($i, 1, eq - 1) == key) v = substr($i, eq + 1) } }
        END { print v }' "$1"
}

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# vmrss PID: resident set size in KiB.
vmrss() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}
