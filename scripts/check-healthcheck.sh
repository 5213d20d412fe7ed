#!/usr/bin/env bash
# Runs the Dockerfile's HEALTHCHECK command, exactly as written there (its
# /usr/local/bin/regiond replaced by the built binary), the way Docker does:
# in the container's environment, next to a regiond that is PID 1 and got
# its flags from `docker run regiond ...`, not from the health check.
#
# With unshare(1) allowed (root), regiond runs as PID 1 of a new PID
# namespace with the image's variables (REGIOND_HOST=0.0.0.0 REGIOND_PORT=8080)
# and the check runs inside that namespace (nsenter); otherwise the check
# gets `--pid <regiond's pid>`, the same reading of its command line.
# Wanted: exit 0 for regiond started with --port P and with --unix-socket S;
# exit 1 for a stopped regiond, a server answering 404, and a listener that
# never answers (after the check's 3 s timeout).
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
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ -n "$binary" ] || binary="$(swift build --show-bin-path)/regiond"
[ -x "$binary" ] || { echo "check-healthcheck: $binary is not an executable (run swift build first)" >&2; exit 2; }
binary=$(realpath "$binary")

# The HEALTHCHECK's CMD as an argv (JSON exec form, continuation lines joined).
mapfile -d '' -t check < <(python3 - "$binary" <<'PY'
import json, re, sys
text = open("Dockerfile").read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
if not m:
    sys.exit("check-healthcheck: no HEALTHCHECK ... CMD [...] in Dockerfile")
argv = json.loads(m.group(1))
if argv[0] != "/usr/local/bin/regiond":
    sys.exit(f"check-healthcheck: the HEALTHCHECK runs {argv[0]}, not /usr/local/bin/regiond")
for arg in [sys.argv[1]] + argv[1:]:
    sys.stdout.write(arg + "\0")
PY
)
[ "${#check[@]}" -gt 0 ] || { echo "check-healthcheck: could not read the HEALTHCHECK"; exit 1; }
echo "HEALTHCHECK CMD: ${check[*]}"

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
image_env=(env REGIOND_HOST=0.0.0.0 REGIOND_PORT=8080 "REGIOND_STATE_DIR=$dir/state")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

namespaces=0
unshare --pid --fork --mount-proc true 2>/dev/null && namespaces=1
server=""   # the host pid of the regiond being checked
# start NAME FLAGS...: regiond as `docker run regiond FLAGS...` would run it.
start() {
    local name=$1; shift
    if [ "$namespaces" = 1 ]; then
        "${image_env[@]}" unshare --pid --fork --mount-proc --kill-child "$binary" "$@" 2>"$dir/$name.err" & pids+=($!)
        for _ in $(seq 100); do
            server=$(cat "/proc/${pids[-1]}/task/${pids[-1]}/children" 2>/dev/null | tr -d ' ')
            [ -n "$server" ] && break
            sleep 0.05
        done
    else
        "${image_env[@]}" "$binary" "$@" 2>"$dir/$name.err" & pids+=($!)
        server=${pids[-1]}
    fi
    [ -n "$server" ] || { echo "regiond ($name) did not start"; exit 1; }
}
# healthcheck: the CMD, in the container's place.
healthcheck() {
    if [ "$namespaces" = 1 ] && [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        "${image_env[@]}" nsenter --target "$server" --pid --mount "${check[@]}"
    elif [ "$namespaces" = 0 ] && [ -n "$server" ]; then
        "${image_env[@]}" "${check[@]}" --pid "$server"
    else
        "${image_env[@]}" "${check[@]}"
    fi
}

failed=0
expect() {  # expect NAME WANT(0|1) [VARIABLE=VALUE...]: runs the check until it gives WANT, up to 10 s
    local name=$1 want=$2 rc=1 out="" start=$SECONDS
    shift 2
    for _ in $(seq 20); do
        rc=0; out=$(healthcheck 2>&1) || rc=$?
        [ "$rc" = "$want" ] && break
        [ "$want" = 1 ] && break   # a failure is wanted at once, not eventually
        sleep 0.5
    done
    if [ "$rc" = "$want" ]; then
        echo "ok   $name: exit $rc ($((SECONDS - start)) s)${out:+: $out}"
    else
        echo "FAIL $name: exit $rc, wanted $want${out:+: $out}"
        failed=1
    fi
}

port=$(free_port)
start port --in-memory --port "$port"
expect "regiond started with --port $port (REGIOND_PORT=8080 in the environment)" 0
kill "$server"; wait "${pids[-1]}" 2>/dev/null || true
server=""
image_env+=("REGIOND_PORT=$port")
expect "regiond stopped (nothing on port $port)" 1

start unix --in-memory --unix-socket "$dir/regiond.sock"
expect "regiond started with --unix-socket $dir/regiond.sock" 0
kill "$server"; wait "${pids[-1]}" 2>/dev/null || true
server=""

# An HTTP server without /readyz (404): regiond always has one.
mkdir -p "$dir/missing"
port_404=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$dir/missing" "$port_404" >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port_404") 2>/dev/null && break; sleep 0.1; done
image_env+=("REGIOND_PORT=$port_404")
expect "404 from /readyz" 1
# A listener that accepts connections and never answers.
port_silent=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(8); time.sleep(60)' "$port_silent" & pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port_silent") 2>/dev/null && break; sleep 0.1; done
image_env+=("REGIOND_PORT=$port_silent")
expect "silent server" 1

[ "$failed" -eq 0 ] && echo "check-healthcheck: ok" || { echo "check-healthcheck: FAILED"; exit 1; }
