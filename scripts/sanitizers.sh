#!/usr/bin/env bash
# Runs the whole test suite under ThreadSanitizer and AddressSanitizer, each
# in its own scratch path, and prints how long each took. REGIOND_QUICK=1
# makes the model test run one seed instead of four.
set -euo pipefail
cd "$(dirname "$0")/.."
export REGIOND_QUICK=1

run() {
    local name=$1
    local scratch=$2
    local log="$scratch/sanitizer-test.log"
    shift 2
    mkdir -p "$scratch"

    local start=$SECONDS
    echo "== swift test --sanitize=$name"
    if ! "$@" >"$log" 2>&1; then
        grep -E 'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY|✘|error:' "$log" | head -40
        echo "$name failed after $((SECONDS - start))s (full log: $log)"
        exit 1
    fi
    grep -E '^(✔|✘) Test run|Executed [0-9]+ tests' "$log" || true
    echo "$name: clean in $((SECONDS - start))s"
}

# DiskFullTests runs the built regiond under `ulimit -f`; a sanitized build's
# runtime dies there (ThreadSanitizer:DEADLYSIGNAL) before regiond starts.
# The plain `swift test` step runs it; the sanitizers check the code in-process.
run thread .build-tsan swift test --sanitize=thread --scratch-path .build-tsan --skip DiskFullTests
LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0" \
    run address .build-asan swift test --sanitize=address --scratch-path .build-asan --skip DiskFullTests
