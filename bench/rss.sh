#!/usr/bin/env bash
# Memory under load: starts regiond, drives N requests (POST/DELETE pairs from
# bench/regions.lua at 16 connections) and prints VmRSS at start, after the
# warm-up and at the end, in KiB. A server that leaks per request grows
# between "after warm-up" and "end".
#
# Environment:
#   N=1000000          requests to drive after the warm-up
#   WARMUP=2           warm-up seconds
#   CONNECTIONS=16
#   THREADS=2, REGIOND_BIN, REGIOND_ARGS: as in bench/run.sh
#
# wrk runs for a duration, not a count, so this runs wrk in chunks sized from
# the measured rate (at most 30 s each) and sums their requests until >= N.
# Each chunk leaves at most CONNECTIONS regions allocated (offsets queued or
# in flight when wrk stops), far below the 4096 1 MiB regions of the device.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}

# shellcheck source=bench/lib.sh
. bench/lib.sh

command -v wrk >/dev/null || die "wrk is not installed"
build_regiond

start_server regiond "$LOG_DIR/rss.server.log"
pid=$SERVER_PID
url="http://127.0.0.1:$PORT"
rss_start=$(vmrss "$pid")

wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s bench/regions.lua "$url" >"$LOG_DIR/rss.warmup.log" 2>&1 ||
    die "warm-up failed, see $LOG_DIR/rss.warmup.log"
rate=$(bench_field "$LOG_DIR/rss.warmup.log" rps)
warm_requests=$(bench_field "$LOG_DIR/rss.warmup.log" requests)
rss_warm=$(vmrss "$pid")

total=0 runs=0 non2xx=0 errors=0
while [ "$total" -lt "$N" ]; do
    runs=$((runs + 1))
    secs=$(awk -v left=$((N - total)) -v r="$rate" 'BEGIN {
        s = int(left / (r > 1 ? r : 1) * 1.05) + 1; if (s > 30) s = 30; print s }')
    out="$LOG_DIR/rss.run$runs.log"
    wrk -t1 -c"$CONNECTIONS" -d"${secs}s" -s bench/regions.lua "$url" >"$out" 2>&1 ||
        die "wrk failed, see $out"
    got=$(bench_field "$out" requests)
    [ -n "$got" ] || die "no BENCH line in $out"
    total=$((total + got))
    rate=$(bench_field "$out" rps)
    non2xx=$((non2xx + $(bench_field "$out" non2xx)))
    errors=$((errors + $(sed -n 's/^BENCH .*errors_connect=\([0-9]*\) errors_read=\([0-9]*\) errors_write=\([0-9]*\) errors_timeout=\([0-9]*\).*$/\1+\2+\3+\4/p' "$out")))
    printf '  run %d: %ds, %d requests (%.0f req/s), total %d, VmRSS %s KiB\n' \
        "$runs" "$secs" "$got" "$rate" "$total" "$(vmrss "$pid")" >&2
done
rss_end=$(vmrss "$pid")
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
stop_server

echo
echo "| point | VmRSS KiB |"
echo "|---|---|"
echo "| start (accepting) | $rss_start |"
echo "| after warm-up (${WARMUP} s, $warm_requests requests) | $rss_warm |"
echo "| end ($total more requests) | $rss_end |"
echo
echo "Peak (VmHWM): $hwm KiB. Growth after warm-up: $((rss_end - rss_warm)) KiB."
echo "Requests: $total in $runs wrk runs; non-2xx: $non2xx; socket errors: $errors."
echo "Server: $(server_cmd regiond) --port \$PORT"
echo "Load:   wrk -t1 -c$CONNECTIONS -d<chunk>s -s bench/regions.lua http://127.0.0.1:\$PORT"
echo "Logs:   $LOG_DIR"
[ "$non2xx" -eq 0 ] || echo "warning: $non2xx non-2xx responses (see logs; 409 = regions leak)"
