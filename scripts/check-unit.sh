#!/usr/bin/env bash
# Checks dist/regiond.service with `systemd-analyze verify` (no running
# systemd needed). verify wants ExecStart's binary to exist, so a copy of the
# unit, ExecStart pointed at the built binary, is what it reads.
#
# usage: scripts/check-unit.sh [--binary PATH]
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --binary=*) binary="${1#--binary=}"; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ -n "$binary" ] || binary="$(swift build --show-bin-path)/regiond"
[ -x "$binary" ] || { echo "check-unit: $binary is not an executable (run swift build first)" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
grep -q '^ExecStart=/usr/local/bin/regiond$' dist/regiond.service ||
    { echo "check-unit: ExecStart is not /usr/local/bin/regiond"; exit 1; }
sed "s|^ExecStart=/usr/local/bin/regiond$|ExecStart=$(realpath "$binary")|" dist/regiond.service >"$dir/regiond.service"
# verify prints warnings and still exits 0 for some; any output is a failure.
out=$(systemd-analyze verify "$dir/regiond.service" 2>&1) || { echo "$out"; echo "check-unit: FAILED"; exit 1; }
[ -z "$out" ] || { echo "$out"; echo "check-unit: FAILED (warnings)"; exit 1; }
echo "check-unit: systemd-analyze verify dist/regiond.service: ok"
