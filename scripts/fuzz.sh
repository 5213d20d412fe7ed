#!/usr/bin/env bash
# Fuzzes the router with libFuzzer for SECONDS (default 60): builds
# RegionFuzz with the fuzzer and ASan into .build-fuzz, starts from a copy of
# Fuzz/corpus (the committed seeds stay as they are), writes crashing inputs
# to .build-fuzz/crashes/ and exits non-zero if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
scratch=.build-fuzz

echo "== building RegionFuzz (fuzzer + address sanitizer)"
swift build -c debug --sanitize=fuzzer --sanitize=address --product RegionFuzz --scratch-path "$scratch" \
    -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table 2>&1 \
    | grep -Ev 'warning: Cannot export local symbol' | tail -3

work="$scratch/corpus"
rm -rf "$work"
mkdir -p "$work" "$scratch/crashes"
cp Fuzz/corpus/* "$work/"
log="$scratch/fuzz.log"

echo "== fuzzing for ${seconds}s (log: $log)"
status=0
"$scratch/debug/RegionFuzz" "$work" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$scratch/crashes/" -print_final_stats=1 >"$log" 2>&1 || status=$?

executions=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
echo "executions: $executions"
if [ "$status" -ne 0 ]; then
    grep -E 'Fatal error|ERROR: |SUMMARY|Test unit written|artifact_prefix' "$log" | head -20
    echo "fuzzing failed (exit $status); inputs in $scratch/crashes/"
    exit "$status"
fi
echo "no crash"
