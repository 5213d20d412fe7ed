#!/usr/bin/env bash
# Durable regiond (journal, group commit) against in-memory regiond, in one
# run: req/s at 16 connections and fsyncs per change, from /metrics.
#
# Environment: DURATION=10, REPEAT=3, CONNECTIONS=16, THREADS=2, REGIOND_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
REPEAT=${REPEAT:-3}
C=${CONNECTIONS:-16}
REGIOND_ARGS="--log-level error"
# shellcheck source=bench/lib.sh
. bench/lib.sh
build_regiond
trap 'stop_server; rm -rf "$STATE_ROOT"' EXIT

metric() { # NAME: the sum of a metric's samples
    curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {print s + 0}'
}

state=$(mktemp -d)
echo "| run | mode | req/s | p50 µs | p99 µs | changes | fsyncs | fsyncs per change |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$REPEAT"); do
    for mode in in-memory durable; do
        rm -rf "$state/dir"
        if [ "$mode" = durable ]; then extra="--state-dir $state/dir"; else extra="--in-memory"; fi
        REGIOND_ARGS="--log-level error $extra"
        start_server regiond "$LOG_DIR/durable-$mode-$r.log"
        wrk -t1 -c"$C" -d1s -s bench/regions.lua "http://127.0.0.1:$PORT" >/dev/null
        before=$(metric regiond_journal_fsyncs_total)
        line=$(wrk -t1 -c"$C" -d"${DURATION}s" -s bench/regions.lua "http://127.0.0.1:$PORT" | grep '^BENCH')
        after=$(metric regiond_journal_fsyncs_total)
        stop_server
        requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
        rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$line")
        p50=$(sed 's/.*p50_us=\([0-9]*\).*/\1/' <<<"$line")
        p99=$(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$line")
        fsyncs=$((after - before))
        per=$(awk -v f="$fsyncs" -v n="$requests" 'BEGIN {printf "%.3f", n ? f / n : 0}')
        echo "| $r | $mode | $rps | $p50 | $p99 | $requests | $fsyncs | $per |"
    done
done
rm -rf "$state"
echo
echo "wrk -t1 -c$C -d${DURATION}s -s bench/regions.lua; regiond --threads $THREADS --log-level error (--in-memory | --state-dir DIR)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
