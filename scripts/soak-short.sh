#!/usr/bin/env bash
# The soak of bench/soak.sh, short enough for the test command: 50,000 requests.
set -euo pipefail
exec "$(dirname "$0")/../bench/soak.sh" 50000 64
