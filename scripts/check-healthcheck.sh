#!/usr/bin/env bash
# Runs the Dockerfile's HEALTHCHECK command, exactly as written there, on
# this machine: it must succeed against a real regiond (--in-memory, on a
# free port: /healthz answers 200) and fail against small Python listeners:
# one that answers 404 (no /healthz), a closed port, and one that accepts
# connections and never answers. (The runtime image has no curl; the check
# uses bash's /dev/tcp.)
#
# usage: scripts/check-healthcheck.sh [--binary PATH]
#   PATH defaults to $(swift build --show-bin-path)/regiond, which
#   scripts/test.sh builds before it calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --binary=*) binary="${1#--binary=}"; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ -n "$binary" ] || binary="$(swift build --show-bin-path)/regiond"
[ -x "$binary" ] || { echo "check-healthcheck: $binary is not an executable (run swift build first)" >&2; exit 2; }

# The HEALTHCHECK's CMD as an argv (JSON exec form, continuation lines joined).
mapfile -d '' -t check < <(python3 - <<'PY'
import json, re, sys
text = open("Dockerfile").read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
if not m:
    sys.exit("check-healthcheck: no HEALTHCHECK ... CMD [...] in Dockerfile")
for arg in json.loads(m.group(1)):
    sys.stdout.write(arg + "\0")
PY
)
[ "${#check[@]}" -gt 0 ] || { echo "check-healthcheck: could not read the HEALTHCHECK"; exit 1; }
echo "HEALTHCHECK CMD: ${check[*]}"

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# A real regiond: its /healthz answers 200. Port 0 and the address it prints,
# so no other process can take the port between choosing and binding it.
"$binary" --in-memory --port 0 --log-level error >"$dir/regiond.out" 2>"$dir/regiond.err" & pids+=($!)
port_ok=""
for _ in $(seq 100); do
    port_ok=$(sed -n 's|^listening on http://[^:]*:\([0-9]*\).*|\1|p' "$dir/regiond.out")
    [ -n "$port_ok" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "regiond exited before listening:"; cat "$dir/regiond.err"; exit 1; }
    sleep 0.1
done
[ -n "$port_ok" ] || { echo "regiond printed no address within 10 s"; exit 1; }
# An HTTP server without /healthz (404): regiond always has one.
mkdir -p "$dir/missing"
port_404=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$dir/missing" "$port_404" >/dev/null 2>&1 & pids+=($!)
# A listener that accepts connections and never answers.
port_silent=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(8); time.sleep(60)' "$port_silent" & pids+=($!)
# A port nobody listens on.
port_closed=$(free_port)
for p in "$port_ok" "$port_404" "$port_silent"; do wait_port "$p" || { echo "listener on $p did not start"; exit 1; }; done

failed=0
run() {  # run NAME PORT WANT(0|nonzero)
    local rc=0 start end
    start=$(date +%s)
    REGIOND_PORT=$2 "${check[@]}" 2>/dev/null || rc=$?
    end=$(date +%s)
    if { [ "$3" = 0 ] && [ "$rc" -eq 0 ]; } || { [ "$3" != 0 ] && [ "$rc" -ne 0 ]; }; then
        echo "ok   $1: exit $rc ($((end - start))s)"
    else
        echo "FAIL $1: exit $rc, wanted $3"
        failed=1
    fi
}
run "200 from regiond's /healthz" "$port_ok" 0
run "404 from /healthz" "$port_404" nonzero
run "closed port" "$port_closed" nonzero
run "silent server" "$port_silent" nonzero

[ "$failed" -eq 0 ] && echo "check-healthcheck: ok" || { echo "check-healthcheck: FAILED"; exit 1; }
