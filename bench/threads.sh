#!/usr/bin/env bash
# Where one server's time goes, per request, by thread: starts SERVER (a
# bench/lib.sh name: bare, regiond, durable, warning), warms it up, runs wrk
# at CONNECTIONS for DURATION seconds, and prints from /proc, before and
# after, each thread's CPU µs per request and its voluntary and involuntary
# context switches per request, plus the journal's fsyncs per request
# (durable only, from /metrics). Threads of one name are summed (Dispatch
# workers, libmicrohttpd's polling threads).
#
#   SERVER=durable CONNECTIONS=16 DURATION=5 bench/threads.sh
#
# Environment: SERVER=durable, CONNECTIONS=16, DURATION=5, THREADS=2,
# REGIOND_BIN, REGIOND_ARGS (as in bench/run.sh), PERF=1 to also run
# `perf stat -e task-clock,context-switches,cpu-migrations` on the server.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER=${SERVER:-durable}
C=${CONNECTIONS:-16}
DURATION=${DURATION:-5}

# shellcheck source=bench/lib.sh
. bench/lib.sh
build_bare
build_regiond
hz=$(getconf CLK_TCK)

# snapshot PID: "name utime+stime voluntary nonvoluntary" per thread.
snapshot() {
    local task name
    for task in /proc/"$1"/task/*; do
        name=$(tr ' ' '_' <"$task/comm")
        # Fields after the ")" of comm: utime and stime are 14th and 15th overall.
        echo "$name $(sed 's/.*) //' "$task/stat" | awk '{ print $12 + $13 }') $(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v, n }' "$task/status")"
    done
}

metric() { # NAME: the sum of a metric's samples
    curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {print s + 0}'
}

start_server "$SERVER" "$LOG_DIR/threads-$SERVER.server.log"
url="http://127.0.0.1:$PORT"
wrk -t1 -c"$C" -d1s -s bench/regions.lua "$url" >/dev/null
before=$(snapshot "$SERVER_PID")
fsyncs_before=0
[ "$SERVER" = bare ] || fsyncs_before=$(metric regiond_journal_fsyncs_total)
perf_out="$LOG_DIR/threads-$SERVER.perf.log"
if [ "${PERF:-0}" = 1 ]; then
    perf stat -e task-clock,context-switches,cpu-migrations -p "$SERVER_PID" -o "$perf_out" &
    perf_pid=$!
fi
wrk -t1 -c"$C" -d"${DURATION}s" --latency -s bench/regions.lua "$url" >"$LOG_DIR/threads-$SERVER.wrk.log"
[ "${PERF:-0}" = 1 ] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
after=$(snapshot "$SERVER_PID")
fsyncs_after=0
[ "$SERVER" = bare ] || fsyncs_after=$(metric regiond_journal_fsyncs_total)
stop_server
requests=$(bench_field "$LOG_DIR/threads-$SERVER.wrk.log" requests)
rps=$(bench_field "$LOG_DIR/threads-$SERVER.wrk.log" rps)

echo
echo "$SERVER at c=$C for ${DURATION}s: $requests requests ($rps req/s), $(awk -v f=$((fsyncs_after - fsyncs_before)) -v n="$requests" 'BEGIN { printf "%.3f", f / n }') fsyncs per request"
echo
echo "| thread | CPU µs/req | voluntary switches/req | involuntary switches/req |"
echo "|---|---|---|---|"
# Threads that exist in both snapshots (by tid order within a name), summed by name.
join_key() { awk '{ count[$1]++; print $1 "#" count[$1], $2, $3, $4 }'; }
join <(echo "$before" | join_key | sort) <(echo "$after" | join_key | sort) |
    awk -v n="$requests" -v hz="$hz" '{
        split($1, k, "#"); name = k[1]
        cpu[name] += $5 - $2; vol[name] += $6 - $3; inv[name] += $7 - $4
    } END {
        for (name in cpu) {
            tc += cpu[name]; tv += vol[name]; ti += inv[name]
            printf "| %s | %.1f | %.3f | %.3f |\n", name, cpu[name] * 1e6 / hz / n, vol[name] / n, inv[name] / n
        }
        printf "| all | %.1f | %.3f | %.3f |\n", tc * 1e6 / hz / n, tv / n, ti / n
    }' | sort -t'|' -k3 -gr
if [ "${PERF:-0}" = 1 ]; then
    echo
    awk -v n="$requests" '/task-clock|context-switches|cpu-migrations/ {
        gsub(",", "", $1); printf "perf stat: %s %s (%.3f per request)\n", $2, $1, $1 / n }' "$perf_out"
fi
