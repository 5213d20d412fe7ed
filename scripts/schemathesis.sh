#!/usr/bin/env bash
# Fuzzes a fresh in-memory regiond against openapi.yaml with schemathesis:
# phases examples, coverage, fuzzing and stateful (the spec's links drive
# allocate -> get -> release), every check, a bounded budget. The rest of
# the configuration (checks, budget, reports) is in schemathesis.toml.
#
#   scripts/schemathesis.sh [--binary PATH] [--seed N] [--max-examples N]
#                           [--max-time SECONDS] [-- SCHEMATHESIS-ARGS...]
#
# --binary PATH     test this regiond instead of building one (`swift build`)
# --seed N          Hypothesis seed; default $SCHEMATHESIS_SEED or 20261129,
#                   so two runs of the same tree test the same cases
# --max-examples N  test cases per operation and phase (default 40)
# --max-time S      stop generating after S seconds (default 150)
#
# Exits non-zero when schemathesis finds anything (or cannot run).
# Reports (JUnit, NDJSON) and the server's log go to .build/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
seed="${SCHEMATHESIS_SEED:-20261129}"
max_examples=40
max_time=150
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --max-examples) max_examples="$2"; shift 2 ;;
        --max-time) max_time="$2"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "schemathesis.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

scripts/install-deps.sh
if [ -z "$binary" ]; then
    echo "== swift build"
    swift build >/dev/null
    binary="$(swift build --show-bin-path)/regiond"
fi
[ -x "$binary" ] || { echo "schemathesis.sh: no executable at $binary" >&2; exit 2; }

out=.build/schemathesis
rm -rf "$out"
mkdir -p "$out"
log="$out/regiond.log"

echo "== starting $binary --port 0 --in-memory"
"$binary" --port 0 --in-memory --log-level notice >"$log" 2>&1 &
server=$!
stop_server() {
    if kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
}
trap stop_server EXIT

url=""
for _ in $(seq 1 100); do
    url="$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$log" | head -1)"
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "schemathesis.sh: regiond exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "schemathesis.sh: regiond did not say where it listens" >&2; exit 1; }
# Ready when `regiond healthcheck` says so (/readyz 200), as the README tells scripts.
for _ in $(seq 1 100); do
    "$binary" healthcheck --port "${url##*:}" >/dev/null && break
    sleep 0.1
done
"$binary" healthcheck --port "${url##*:}" || { cat "$log"; exit 1; }

echo "== schemathesis against $url (seed $seed, --max-examples $max_examples, --max-time $max_time)"
started=$SECONDS
status=0
.build/venv/bin/schemathesis --config-file schemathesis.toml run openapi.yaml \
    --url "$url" \
    --phases examples,coverage,fuzzing,stateful \
    --checks all \
    --seed "$seed" \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --report junit,ndjson --report-dir "$out" \
    --no-color \
    "${extra[@]}" || status=$?

if ! kill -0 "$server" 2>/dev/null; then
    echo "schemathesis.sh: regiond died during the run; its log:" >&2
    cat "$log" >&2
    status=1
fi
stop_server
trap - EXIT
if [ -s "$log" ]; then
    echo "== regiond log ($log), last lines:"
    tail -20 "$log"
fi
echo "schemathesis.sh: $([ "$status" -eq 0 ] && echo ok || echo FAILED) in $((SECONDS - started)) s (seed $seed)"
exit "$status"
