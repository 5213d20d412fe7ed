#!/usr/bin/env bash
# Installs what the build and the tests need when it is missing:
# libmicrohttpd-dev through apt-get; for the tests also systemd (for
# systemd-analyze) and the Python tools in .build/venv. With --no-python
# only what building and running regiond needs (`make run`).
set -euo pipefail
cd "$(dirname "$0")/.."

python=yes
case "${1:-}" in
    "") ;;
    --no-python) python=no ;;
    *) echo "usage: $0 [--no-python]" >&2; exit 2 ;;
esac

if ! pkg-config --exists libmicrohttpd 2>/dev/null; then
    echo "== installing libmicrohttpd-dev"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libmicrohttpd-dev pkg-config curl >/dev/null
fi

[ "$python" = yes ] || exit 0

# systemd-analyze verify checks dist/regiond.service; no running systemd needed.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "== installing systemd (for systemd-analyze)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

venv=.build/venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s scripts/requirements.txt "$venv/requirements.txt"; then
    echo "== installing Python tools into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt
    cp scripts/requirements.txt "$venv/requirements.txt"
fi
