#!/usr/bin/env bash
# Disk-full test for regiond's journal (the README's "State that survives").
#
# Runs regiond with its state directory on a 256 KiB tmpfs, allocates some
# regions, fills the filesystem, and checks that:
#   * a change the journal cannot take is answered 503 state_unavailable and
#     is not made (GET /regions lists exactly the acknowledged regions);
#   * /readyz is 503 while the journal is failing;
#   * once space is back the journal recovers by itself (/readyz 200 within a
#     few seconds) and changes work again;
#   * after kill -9 and a restart every acknowledged region is there and none
#     of the refused ones.
# Needs root or CAP_SYS_ADMIN (mount): if tmpfs cannot be mounted it fails
# (exit 1); without privileges run the Swift test instead, which makes the
# journal's writes fail with a file-size limit:
#   swift test --filter DiskFullTests
#
# usage: scripts/disk-full-test.sh --binary .build/debug/regiond
set -euo pipefail

binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --binary=*) binary="${1#--binary=}"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ -n "$binary" ] || { echo "usage: $0 --binary PATH" >&2; exit 2; }
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
[ -x "$binary" ] || { echo "FAIL: $binary is not an executable" >&2; exit 2; }

started=$(date +%s.%N)
python3="$(python3 -c "import sys; print(sys.executable)")"  # not the pyenv shim: each request starts one
work="$(mktemp -d /tmp/regiond-diskfull.XXXXXX)"
mnt="$work/mnt"
mkdir "$mnt"
pid=""
mounted=0
cleanup() {
    local status=$?
    if [ "$status" != 0 ] && [ "${keep:-0}" != 1 ]; then
        keep=1
        echo "FAIL: stopped with status $status (regiond: $(server_state))" >&2
        [ -f "$work/regiond.log" ] && { echo "--- regiond log tail:" >&2; tail -20 "$work/regiond.log" >&2; }
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ "$mounted" = 1 ]; then umount "$mnt" || umount -l "$mnt" || true; fi
    if [ "${keep:-0}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

if ! mount -t tmpfs -o size=256k tmpfs "$mnt" 2>"$work/mount.err"; then
    # Loud on purpose: a skipped test that exits 0 reads as a pass in CI.
    echo "======================================================================" >&2
    echo "FAIL: cannot mount tmpfs ($(cat "$work/mount.err"))" >&2
    echo "This test needs root or CAP_SYS_ADMIN to mount a small tmpfs." >&2
    echo "The unprivileged variant is the Swift test: swift test --filter DiskFullTests" >&2
    echo "======================================================================" >&2
    trap - EXIT  # nothing started or mounted yet, and the message above says why
    rm -rf "$work"
    exit 1
fi
mounted=1
state="$mnt/state"

fail() {
    keep=1
    echo "FAIL: $*" >&2
    if [ -f "$work/regiond.log" ]; then echo "--- regiond log tail:" >&2; tail -20 "$work/regiond.log" >&2; fi
    echo "--- df:" >&2; df -k "$mnt" >&2 || true
    ls -la "$state" >&2 || true
    exit 1
}

# One HTTP request: prints "STATUS CODE OFFSET" (CODE is the problem's code or
# "-", OFFSET the region's offset or "-"); the body goes to $work/body.
req() { # METHOD PATH [JSON-BODY]
    "$python3" - "$port" "$work/body" "$@" <<'EOF'
import http.client, json, sys
port, out, method, path = sys.argv[1:5]
body = sys.argv[5] if len(sys.argv) > 5 else None
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
r = conn.getresponse()
raw = r.read()
open(out, "wb").write(raw)
try:
    j = json.loads(raw)
except ValueError:
    j = {}
j = j if isinstance(j, dict) else {}
print(r.status, j.get("code", "-"), j.get("offset", "-"))
EOF
}

# The server's regions, one "offset class label" line each, sorted.
list_regions() {
    "$python3" - "$port" <<'EOF'
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
conn.request("GET", "/regions")
r = conn.getresponse()
if r.status != 200:
    print("GET /regions answered", r.status, r.read(), file=sys.stderr)
    sys.exit(1)
for x in json.loads(r.read())["regions"]:
    print(x["offset"], x["class"], x.get("label", "-"))
EOF
}

start() {
    # The address is regiond's "listening on" notice on stderr (port 0: only
    # it knows the port); the log is shared by every start, so read past its end.
    local from
    from=$(( $(stat -c %s "$work/regiond.log" 2>/dev/null || echo 0) + 1 ))
    "$binary" --port 0 --state-dir "$state" --log-level notice >/dev/null 2>>"$work/regiond.log" &
    pid=$!
    port=""
    for _ in $(seq 100); do
        port=$(tail -c "+$from" "$work/regiond.log" | sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' | head -1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "regiond exited before listening"
        sleep 0.1
    done
    [ -n "$port" ] || fail "regiond did not log 'listening on' within 10 s"
    wait_ready 10 || fail "/readyz not 200 within 10 s after start"
}

readyz() { { req GET /readyz 2>/dev/null || echo "no-answer"; } | cut -d' ' -f1; }

server_state() {
    if [ -z "$pid" ]; then echo "not started"
    elif kill -0 "$pid" 2>/dev/null; then echo "pid $pid alive"
    else wait "$pid" 2>/dev/null; echo "pid $pid EXITED with status $? (128+9=kill, 134=abort/trap, 132/133=Swift trap)"; fi
}

wait_ready() { # SECONDS
    local deadline=$(( $(date +%s) + $1 ))
    while [ "$(date +%s)" -le "$deadline" ]; do
        [ "$(readyz 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

acked="$work/acked"      # "offset class label" of every region that must be there
refused="$work/refused"  # labels of allocations answered 503
: >"$acked"; : >"$refused"
padding=$(printf 'x%.0s' $(seq 180))  # long labels: each record takes more room

allocate() { # LABEL SIZE -> sets status, code, offset
    status=""; code=""; offset=""
    read -r status code offset < <(req POST /regions "{\"size\": $2, \"label\": \"$1\"}") || true
    [ -n "$status" ] || fail "POST /regions (label $1) got no answer: is regiond still alive? ($(server_state))"
}

expect_listed() { # WHEN
    list_regions >"$work/listed" || fail "$1: GET /regions failed"
    sort -n "$acked" >"$work/expected"
    if ! diff -u "$work/expected" "$work/listed" >"$work/diff"; then
        cat "$work/diff" >&2
        fail "$1: GET /regions is not exactly the acknowledged regions (- expected, + listed)"
    fi
    while read -r label; do
        grep -q " $label\$" "$work/listed" && fail "$1: region $label, answered 503, is visible"
    done <"$refused"
    return 0
}

echo "disk-full-test: tmpfs of 256 KiB at $mnt"
start
echo "started on port $port"

# 1. Some acknowledged regions, and one acknowledged release.
for i in 1 2 3 4 5 6; do
    allocate "ack-$i-$padding" $(( i * 1048576 ))
    [ "$status" = 201 ] || fail "allocation $i before the disk is full answered $status $code"
    echo "$offset $("$python3" -c "import json;print(json.load(open('$work/body'))['class'])") ack-$i-$padding" >>"$acked"
done
gone=$(sed -n 2p "$acked" | cut -d' ' -f1)
status=""; read -r status code _ < <(req DELETE "/regions/$gone") || true
[ "$status" = 200 ] || fail "release of $gone answered $status $code"
sed -i "/^$gone /d" "$acked"
expect_listed "before the disk is full"
echo "acknowledged: $(wc -l <"$acked") regions (and one release)"

# 2. Fill the filesystem to the last byte.
dd if=/dev/zero of="$mnt/filler" bs=4096 2>/dev/null || true
dd if=/dev/zero of="$mnt/filler2" bs=1 2>/dev/null || true
echo "filled: $(df -k --output=avail "$mnt" | tail -1 | tr -d ' ') KiB free"

# 3. Allocate until the journal refuses (a small record may still fit in the
#    last page of the journal): bounded.
n=0
first503=""
while [ $n -lt 400 ]; do
    n=$((n + 1))
    allocate "fill-$n-$padding" 1048576
    if [ "$status" = 201 ]; then
        echo "$offset 0 fill-$n-$padding" >>"$acked"
    elif [ "$status" = 503 ]; then
        [ "$code" = state_unavailable ] || fail "allocation on a full disk answered 503 with code $code, not state_unavailable: $(cat "$work/body")"
        echo "fill-$n-$padding" >>"$refused"
        first503=$n
        break
    else
        fail "allocation on a full disk answered $status $code: $(cat "$work/body")"
    fi
done
[ -n "$first503" ] || fail "no 503 after $n allocations on a full disk"
echo "the journal refused allocation $first503 ($((first503 - 1)) still fit): 503 state_unavailable"

# 4. While it fails: changes are refused, /readyz is 503, nothing changed.
[ "$(readyz)" = 503 ] || fail "/readyz is not 503 while the journal is failing"
for i in 1 2 3; do
    allocate "refused-$i" $(( i * 4 * 1048576 ))
    [ "$status" = 503 ] && [ "$code" = state_unavailable ] || fail "allocation while failing answered $status $code"
    echo "refused-$i" >>"$refused"
done
victim=$(head -1 "$acked" | cut -d' ' -f1)
status=""; read -r status code _ < <(req DELETE "/regions/$victim") || true
[ "$status" = 503 ] && [ "$code" = state_unavailable ] || fail "release while failing answered $status $code"
status=""; read -r status code _ < <(req GET "/regions/$victim") || true
[ "$status" = 200 ] || fail "region $victim whose release was refused is gone: GET answered $status $code"
expect_listed "while the disk is full"
sleep 1.5  # a recovery attempt or two on the full disk
[ "$(readyz)" = 503 ] || fail "/readyz turned 200 while the disk is still full"
allocate "refused-4" 1048576
[ "$status" = 503 ] && [ "$code" = state_unavailable ] || fail "allocation on a still-full disk answered $status $code"
echo "refused-4" >>"$refused"
expect_listed "after recovery attempts on a full disk"
echo "while full: allocations and releases 503 state_unavailable, /readyz 503, regions unchanged"

# 5. Space comes back: the journal recovers by itself.
rm -f "$mnt/filler" "$mnt/filler2"
t0=$(date +%s.%N)
wait_ready 5 || fail "/readyz not 200 within 5 s after the disk has space again"
echo "recovered: /readyz 200 after $("$python3" -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s"
expect_listed "after recovery"
allocate "after-recovery" 5000000
[ "$status" = 201 ] || fail "allocation after recovery answered $status $code: $(cat "$work/body")"
echo "$offset 2 after-recovery" >>"$acked"
status=""; read -r status code _ < <(req DELETE "/regions/$victim") || true
[ "$status" = 200 ] || fail "release of $victim after recovery answered $status $code"
sed -i "/^$victim /d" "$acked"
expect_listed "after changes following the recovery"

# 6. kill -9 and restart on the same directory.
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=""
start
expect_listed "after kill -9 and restart"
echo "after kill -9 and restart: all $(wc -l <"$acked") acknowledged regions there, none of the $(wc -l <"$refused") refused"
status=""; read -r status code _ < <(req GET /pool) || true
[ "$status" = 200 ] || fail "GET /pool answered $status"

took=$("$python3" -c "print(f'{$(date +%s.%N) - $started:.1f}')")
echo "PASS: disk-full test in ${took}s"
