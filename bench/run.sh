#!/usr/bin/env bash
# HTTP benchmark: regiond against bare (bench/bare.c, the same libmicrohttpd
# daemon options with fixed answers), measured in one run.
#
# Servers: bare; regiond with its default flags in memory (log level info);
# regiond durable (a fresh --state-dir per run); optionally regiond
# --log-level warning in memory (a reference row). For each connection count
# the servers take turns (REPEAT times each, fresh server each run, 1 s
# warm-up), so machine noise hits them alike, and the medians are reported,
# with the server's CPU time per request (user + system, from /proc/PID/stat).
#
# First, last and before every durable run it measures the disk's
# fdatasync latency (the median of those p50s is used) where the durable
# server keeps its journal (bench/fsync.c: 4 KiB pwrite + fdatasync on a
# preallocated file, FSYNC_COUNT times), and prints the fsync limit of one
# connection, 1 / (fdatasync p50 + in-memory round trip at c=1), and the
# ratios issue 20's targets name.
#
# Environment:
#   DURATION=10        seconds per measured wrk run
#   REPEAT=3           runs per server and connection count (median taken)
#   CONNECTIONS="1 16 64"
#   SERVERS="bare regiond durable"   (add "warning" for the reference row)
#   FSYNC_COUNT=300    fdatasync rounds per latency measurement
#   THREADS=2          --threads for every server
#   REGIOND_BIN=path   use this binary instead of building regiond
#   REGIOND_ARGS="--in-memory"   flags of the "regiond" row
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
SERVERS=${SERVERS:-"bare regiond durable"}
FSYNC_COUNT=${FSYNC_COUNT:-300}

# shellcheck source=bench/lib.sh
. bench/lib.sh

if ! command -v wrk >/dev/null; then
    echo "== installing wrk" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
command -v wrk >/dev/null || die "wrk is not installed and apt-get could not install it"
build_bare
build_fsync_probe
build_regiond
ticks_per_second=$(getconf CLK_TCK)

fsync_p50() { # prints the p50 in µs, logs the whole line
    local line
    line=$("$FSYNC_BIN" "$STATE_ROOT" "$FSYNC_COUNT") || die "bench/fsync failed in $STATE_ROOT"
    echo "  $line" >&2
    bench_field <(echo "$line" | sed 's/^FSYNC/BENCH/') p50_us
}
echo "== fdatasync latency in $STATE_ROOT (4 KiB, $FSYNC_COUNT rounds)" >&2
fsync_start=$(fsync_p50)
fsync_runs=""

wrk_cmd() { # C URL
    echo "wrk -t1 -c$1 -d${DURATION}s --latency -s bench/regions.lua $2"
}

median() { # numbers...
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

label() {
    case "$1" in
        bare) echo "bare libmicrohttpd C handler" ;;
        regiond) echo "regiond ${REGIOND_ARGS:-(no flags)}" ;;
        durable) echo "regiond durable (--state-dir)" ;;
        warning) echo "regiond --in-memory --log-level warning" ;;
    esac
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
warnings=()
declare -A rps=() p50=() p99=() cpu=()
for c in $CONNECTIONS; do
    for r in $(seq 1 "$REPEAT"); do
        for name in $SERVERS; do
            tag="c$c-$name-$r"
            # The disk moves with other work: measure it next to every durable run.
            [ "$name" = durable ] && fsync_runs+=" $(fsync_p50)"
            start_server "$name" "$LOG_DIR/$tag.server.log"
            url="http://127.0.0.1:$PORT"
            wrk -t1 -c"$c" -d1s -s bench/regions.lua "$url" >"$LOG_DIR/$tag.warmup.log" 2>&1 ||
                die "warm-up failed, see $LOG_DIR/$tag.warmup.log"
            out="$LOG_DIR/$tag.wrk.log"
            before=$(cpu_ticks "$SERVER_PID")
            $(wrk_cmd "$c" "$url") >"$out" 2>&1 || die "wrk failed, see $out"
            after=$(cpu_ticks "$SERVER_PID")
            stop_server
            v=$(bench_field "$out" rps)
            [ -n "$v" ] || die "no BENCH line in $out"
            requests=$(bench_field "$out" requests)
            us=$(awk -v t="$((after - before))" -v n="$requests" -v hz="$ticks_per_second" \
                'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
            rps[$name,$c]+=" $v"
            p50[$name,$c]+=" $(bench_field "$out" p50_us)"
            p99[$name,$c]+=" $(bench_field "$out" p99_us)"
            cpu[$name,$c]+=" $us"
            bad=$(bench_field "$out" non2xx)
            errs=$(sed -n 's/^BENCH .*\(errors_connect=.*\)$/\1/p' "$out")
            if [ "$bad" != 0 ] || [ "$errs" != "errors_connect=0 errors_read=0 errors_write=0 errors_timeout=0" ]; then
                warnings+=("$tag: non2xx=$bad statuses=$(bench_field "$out" statuses) $errs ($out)")
            fi
            printf '  %-18s %10.0f req/s  p50 %6s us  p99 %6s us  %6s us CPU/req\n' "$tag" "$v" \
                "$(bench_field "$out" p50_us)" "$(bench_field "$out" p99_us)" "$us" >&2
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== fdatasync latency again" >&2
fsync_end=$(fsync_p50)

# shellcheck disable=SC2086
{
    header="| server |"
    rule="|---|"
    for c in $CONNECTIONS; do header+=" c=$c req/s (× bare) |"; rule+="---|"; done
    for c in $CONNECTIONS; do header+=" c=$c CPU µs/req |"; rule+="---|"; done
    for c in $CONNECTIONS; do header+=" c=$c p50 / p99 µs |"; rule+="---|"; done
    echo
    echo "$header"
    echo "$rule"
    for name in $SERVERS; do
        row="| $(label "$name") |"
        for c in $CONNECTIONS; do
            g=$(median ${rps[$name,$c]})
            if [[ " $SERVERS " == *" bare "* ]]; then
                b=$(median ${rps[bare,$c]})
                row+=" $(awk -v g="$g" -v b="$b" 'BEGIN { printf "%.0f (%.2f)", g, g / b }') |"
            else
                row+=" $(printf '%.0f' "$g") |"
            fi
        done
        for c in $CONNECTIONS; do row+=" $(median ${cpu[$name,$c]}) |"; done
        for c in $CONNECTIONS; do
            row+=" $(printf '%.0f / %.0f' "$(median ${p50[$name,$c]})" "$(median ${p99[$name,$c]})") |"
        done
        echo "$row"
    done
}
# shellcheck disable=SC2086
{
    m() { median ${rps[$1,$2]:-0}; }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
    has() { [[ " $SERVERS " == *" $1 "* ]] && [[ " $CONNECTIONS " == *" $2 "* ]]; }
    fsync_us=$(median $fsync_start $fsync_runs $fsync_end)
    echo
    echo "fdatasync p50 (4 KiB, $FSYNC_COUNT rounds, in $STATE_ROOT), measured at the start, before each durable run and at the end:"
    echo "  $fsync_start |$fsync_runs | $fsync_end µs; median $fsync_us µs"
    if has regiond 1; then
        trip=$(awk -v r="$(m regiond 1)" 'BEGIN { printf "%.1f", 1e6 / r }')
        limit=$(awk -v f="$fsync_us" -v t="$trip" 'BEGIN { printf "%.0f", 1e6 / (f + t) }')
        echo "fsync limit at c=1: 1 / (fdatasync p50 $fsync_us µs + in-memory round trip $trip µs) = $limit req/s"
    fi
    echo
    echo "| ratio | target | measured |"
    echo "|---|---|---|"
    for c in 16 64; do
        has durable $c && has regiond $c &&
            echo "| durable / in-memory, c=$c | ≥ 0.80 | $(ratio "$(m durable $c)" "$(m regiond $c)") |"
    done
    if has durable 16; then
        echo "| durable p99 at c=16 | < 1000 µs | $(printf '%.0f' "$(median ${p99[durable,16]})") µs |"
    fi
    if has durable 1 && [ -n "${limit:-}" ]; then
        echo "| durable c=1 / fsync limit | ≥ 0.80 | $(ratio "$(m durable 1)" "$limit") |"
    fi
    for c in 1 16 64; do
        target="≥ 0.75"
        [ "$c" = 1 ] && target="≥ 0.90"
        has bare $c && has regiond $c &&
            echo "| in-memory / bare, c=$c | $target | $(ratio "$(m regiond $c)" "$(m bare $c)") |"
    done
}
echo
echo "Medians of $REPEAT runs per cell; × bare = the row's req/s over bare's, same connection count."
echo "Requests: POST /regions {\"size\":1048576} and DELETE /regions/<offset>, half and half."
echo "Each run: fresh server on a free port, 1 s warm-up, then:"
echo "  $(wrk_cmd '$C' 'http://127.0.0.1:$PORT')"
for name in $SERVERS; do echo "  $name: $(server_cmd "$name" | sed 's|regiond-bench\.[A-Za-z0-9]*/state\.[A-Za-z0-9]*|DIR|') --port \$PORT"; done
echo "Order per connection count: $SERVERS, repeated $REPEAT times."
echo "$(nproc) cores; load average at start $load_start, at end $load_end. Logs: $LOG_DIR"
if [ ${#warnings[@]} -gt 0 ]; then
    echo
    echo "Runs with non-2xx responses or socket errors:"
    printf '  %s\n' "${warnings[@]}"
fi
