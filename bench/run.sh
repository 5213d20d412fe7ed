#!/usr/bin/env bash
# HTTP benchmark: regiond against bare (bench/bare.c, the same libmicrohttpd
# daemon options with fixed answers), measured in one run.
#
# For each connection count it alternates bare, regiond, bare, regiond ...
# (REPEAT times each, fresh server each run, 1 s warm-up), so machine noise
# hits both alike, and reports the medians.
#
# Environment:
#   DURATION=10        seconds per measured wrk run
#   REPEAT=3           runs per server and connection count (median taken)
#   CONNECTIONS="1 16 64"
#   THREADS=2          --threads for both servers
#   REGIOND_BIN=path   use this binary instead of building regiond
#   REGIOND_ARGS="--in-memory --log-level error"   extra regiond flags
#                      (set it to "" for none, e.g. REGIOND_BIN=.build/bench/bare)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}

# shellcheck source=bench/lib.sh
. bench/lib.sh

command -v wrk >/dev/null || die "wrk is not installed"
build_bare
build_regiond

wrk_cmd() { # C URL
    echo "wrk -t1 -c$1 -d${DURATION}s --latency -s bench/regions.lua $2"
}

median() { # numbers...
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
warnings=()
rows=()
spread=()
for c in $CONNECTIONS; do
    declare -A rps=() p50=() p99=()
    for r in $(seq 1 "$REPEAT"); do
        for name in bare regiond; do
            tag="c$c-$name-$r"
            start_server "$name" "$LOG_DIR/$tag.server.log"
            url="http://127.0.0.1:$PORT"
            wrk -t1 -c"$c" -d1s -s bench/regions.lua "$url" >"$LOG_DIR/$tag.warmup.log" 2>&1 ||
                die "warm-up failed, see $LOG_DIR/$tag.warmup.log"
            out="$LOG_DIR/$tag.wrk.log"
            $(wrk_cmd "$c" "$url") >"$out" 2>&1 || die "wrk failed, see $out"
            stop_server
            v=$(bench_field "$out" rps)
            [ -n "$v" ] || die "no BENCH line in $out"
            rps[$name]+=" $v"
            p50[$name]+=" $(bench_field "$out" p50_us)"
            p99[$name]+=" $(bench_field "$out" p99_us)"
            bad=$(bench_field "$out" non2xx)
            errs=$(sed -n 's/^BENCH .*\(errors_connect=.*\)$/\1/p' "$out")
            if [ "$bad" != 0 ] || [ "$errs" != "errors_connect=0 errors_read=0 errors_write=0 errors_timeout=0" ]; then
                warnings+=("$tag: non2xx=$bad statuses=$(bench_field "$out" statuses) $errs ($out)")
            fi
            printf '  %-16s %10.0f req/s  p50 %6s us  p99 %6s us\n' "$tag" "$v" \
                "$(bench_field "$out" p50_us)" "$(bench_field "$out" p99_us)" >&2
        done
    done
    # shellcheck disable=SC2086
    {
        b=$(median ${rps[bare]}); g=$(median ${rps[regiond]})
        ratio=$(awk -v g="$g" -v b="$b" 'BEGIN { printf "%.2f", g / b }')
        rows+=("$(printf '| %s | %.0f | %.0f | %s | %.0f / %.0f µs | %.0f / %.0f µs |' "$c" "$b" "$g" "$ratio" \
            "$(median ${p50[bare]})" "$(median ${p99[bare]})" \
            "$(median ${p50[regiond]})" "$(median ${p99[regiond]})")")
    }
    spread+=("c=$c: bare$(printf ' %.0f' ${rps[bare]}), regiond$(printf ' %.0f' ${rps[regiond]})")
    unset rps p50 p99
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "| connections | bare req/s | regiond req/s | ratio | bare p50/p99 | regiond p50/p99 |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Medians of $REPEAT runs per cell (each column's median on its own); ratio = regiond / bare req/s."
echo "Requests: POST /regions {\"size\":1048576} and DELETE /regions/<offset>, half and half."
echo "Each run: fresh server on a free port, 1 s warm-up, then:"
echo "  $(wrk_cmd '$C' 'http://127.0.0.1:$PORT')"
echo "  bare:    $(server_cmd bare) --port \$PORT"
echo "  regiond: $(server_cmd regiond) --port \$PORT"
echo "Every run's req/s, in run order:"
printf '  %s\n' "${spread[@]}"
echo "Order per connection count: bare, regiond, bare, regiond, ... ($REPEAT each)."
echo "$(nproc) cores; load average at start $load_start, at end $load_end. Logs: $LOG_DIR"
if [ ${#warnings[@]} -gt 0 ]; then
    echo
    echo "Runs with non-2xx responses or socket errors:"
    printf '  %s\n' "${warnings[@]}"
fi
