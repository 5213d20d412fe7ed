#!/usr/bin/env bash
# Generates Sources/RegionClient from openapi.yaml with swift-openapi-generator
# (pinned in scripts/openapi-generator/Package.swift) and records what it was
# generated from in scripts/openapi-generator/generated-from.sha256.
#   scripts/generate-client.sh          regenerate; commit the result
#   scripts/generate-client.sh --check  regenerate into a temporary folder and
#                                       fail if the committed code differs
# The generator's first build takes minutes (OpenAPIKit, Yams), which is why
# the code is committed and no regiond build depends on it.
set -euo pipefail
cd "$(dirname "$0")/.."

tool=scripts/openapi-generator
out=Sources/RegionClient
stamp=$tool/generated-from.sha256

swift build --package-path "$tool" --product swift-openapi-generator >&2
generator="$(swift build --package-path "$tool" --show-bin-path)/swift-openapi-generator"

# swift-openapi-generator 1.14 splits the types into eight files that all
# open with the same `public import`s, and before Swift 6.4 the compiler warns
# about each one a file does not use (the generator's `@diagnose` for it needs
# 6.4). One Types.swift uses them all, so the parts are joined into it, each
# without its copy of the imports.
join_types() {
    local dir=$1 header part
    header=$(awk '!/^(\/\/ Generated|#if compiler|@diagnose|#endif|.*import )/ { print NR - 1; exit }' "$dir/Types.swift")
    for part in Components Operations Components+Schemas Components+Parameters \
        Components+RequestBodies Components+Responses Components+Headers; do
        if ! cmp -s <(head -n "$header" "$dir/Types.swift") <(head -n "$header" "$dir/Types+$part.swift"); then
            echo "Types+$part.swift does not open with Types.swift's imports" >&2
            return 1
        fi
        tail -n +"$((header + 1))" "$dir/Types+$part.swift" >>"$dir/Types.swift"
        rm "$dir/Types+$part.swift"
    done
    if compgen -G "$dir/Types+*.swift" >/dev/null; then
        echo "the generator wrote a part that join_types does not know: $(ls "$dir"/Types+*.swift)" >&2
        return 1
    fi
}

# Fails on any diagnostic (a construct it skipped or a warning), not only on errors.
generate() {
    local log diagnostics
    log=$(mktemp) diagnostics=$(mktemp)
    if ! "$generator" generate --config "$tool/openapi-generator-config.yaml" \
        --output-directory "$1" --diagnostics-output-path "$diagnostics" openapi.yaml >"$log" 2>&1 \
        || ! grep -qx 'diagnostics: \[\]' "$diagnostics"; then
        cat "$log" "$diagnostics" >&2
        rm -f "$log" "$diagnostics"
        echo "swift-openapi-generator did not accept openapi.yaml cleanly" >&2
        return 1
    fi
    rm -f "$log" "$diagnostics"
    join_types "$1"
}

if [ "${1:-}" = "--check" ]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    generate "$scratch"
    if ! diff -ru "$out" "$scratch"; then
        echo "$out is not what openapi.yaml generates: run scripts/generate-client.sh" >&2
        exit 1
    fi
    echo "$out is current"
    exit 0
fi

rm -f "$out"/*.swift
mkdir -p "$out"
generate "$out"
sha256sum openapi.yaml "$tool/openapi-generator-config.yaml" "$out"/*.swift >"$stamp"
echo "generated $out; commit it with $stamp"
