#!/usr/bin/env bash
# Every test of regiond: what `make test` and CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
trap 'echo "== make test: $((SECONDS - started)) s"' EXIT

scripts/install-deps.sh

# The full check (scripts/generate-client.sh --check) builds the generator,
# minutes on a fresh clone; this one says whether the committed client was
# generated from this openapi.yaml and left as generated.
echo "== Sources/RegionClient generated from openapi.yaml"
if ! sha256sum --quiet -c scripts/openapi-generator/generated-from.sha256; then
    echo "openapi.yaml or Sources/RegionClient changed without scripts/generate-client.sh"
    exit 1
fi

echo "== swift build (no warnings)"
mkdir -p .build
build_log=.build/swift-build.log
if ! swift build --build-tests >"$build_log" 2>&1; then
    tail -80 "$build_log"
    echo "swift build failed (full log: $build_log)"
    exit 1
fi
# A warning fails the run. Only what is compiled prints its warnings: on a
# fresh clone (CI) that is everything; locally, run it after "rm -rf .build" to see all.
if grep -E '(^|: )warning: ' "$build_log" | sort -u | grep .; then
    echo "the build printed warnings (full log: $build_log)"
    exit 1
fi

echo "== swift test"
log=.build/swift-test.log
if ! swift test --skip-build >"$log" 2>&1; then
    grep -v '^\[' "$log" | tail -80
    echo "swift test failed (full log: $log)"
    exit 1
fi
grep -E '^(✔|✘) (Test run|Suite)|Executed [0-9]+ tests' "$log"

echo "== kill -9 crash test"
python3 scripts/crash-test.py --binary "$(swift build --show-bin-path)/regiond"

echo "== disk-full test"
scripts/disk-full-test.sh --binary "$(swift build --show-bin-path)/regiond"

echo "== README: the walkthrough, run as written"
.build/venv/bin/python scripts/check-readme.py --binary "$(swift build --show-bin-path)/regiond"

echo "== openapi.yaml against the router"
"$(swift build --show-bin-path)/regiond" --print-routes | .build/venv/bin/python scripts/check-openapi.py

echo "== schemathesis"
scripts/schemathesis.sh --binary "$(swift build --show-bin-path)/regiond"

echo "== Dockerfile"
.build/venv/bin/hadolint Dockerfile
scripts/check-healthcheck.sh

echo "== dist/regiond.service"
scripts/check-unit.sh
scripts/check-docker-binary.sh

echo "== soak (50,000 requests)"
scripts/soak-short.sh

echo "== sanitizers (thread, address)"
scripts/sanitizers.sh

echo "== fuzz (60 s)"
scripts/fuzz.sh 60
