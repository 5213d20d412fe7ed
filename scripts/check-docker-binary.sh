#!/usr/bin/env bash
# Builds regiond the way the Dockerfile does and checks that every shared
# library it needs exists in the runtime image: debian:bookworm-slim plus
# libmicrohttpd12 and its dependencies. Fails naming anything else (a
# dynamically linked Swift runtime, libcurl from FoundationNetworking,
# libxml2 from FoundationXML, ...), any library ldd cannot find, and any
# glibc symbol version newer than bookworm's 2.36.
#
#   scripts/check-docker-binary.sh                 # build, then check .build/release/regiond
#   scripts/check-docker-binary.sh --binary PATH   # check an existing binary
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || { echo "usage: $0 [--binary PATH]" >&2; exit 2; }; binary=$2; shift 2 ;;
        --binary=*) binary=${1#--binary=}; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [--binary PATH]" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    echo "== swift build -c release --static-swift-stdlib --product regiond"
    log=.build/docker-binary-build.log
    mkdir -p .build
    if ! swift build -c release --static-swift-stdlib --product regiond >"$log" 2>&1; then
        tail -40 "$log"
        echo "check-docker-binary: build failed (full log: $log)"
        exit 1
    fi
    binary="$(swift build -c release --show-bin-path)/regiond"
fi
[ -f "$binary" ] || { echo "check-docker-binary: no such file: $binary"; exit 1; }

# Sonames the runtime image has, and why.
allowed=(
    # debian:bookworm-slim: libc6 (essential)
    linux-vdso.so.1 ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2
    libpthread.so.0 librt.so.1 libresolv.so.2 libutil.so.1
    # debian:bookworm-slim: libgcc-s1 and libstdc++6 (apt depends on them),
    # zlib1g (dpkg pre-depends on it)
    libgcc_s.so.1 libstdc++.so.6 libz.so.1
    # libmicrohttpd12 and what `apt-cache depends --recurse libmicrohttpd12`
    # adds: libgnutls30 libp11-kit0 libidn2-0 libunistring2 libtasn1-6
    # libnettle8 libhogweed6 libgmp10 libffi8 (same set as
    # `ldd libmicrohttpd.so.12` on bookworm)
    libmicrohttpd.so.12 libgnutls.so.30 libp11-kit.so.0 libidn2.so.0
    libunistring.so.2 libtasn1.so.6 libnettle.so.8 libhogweed.so.6
    libgmp.so.10 libffi.so.8
)
glibc_max=2.36   # bookworm's glibc

is_allowed() { local a; for a in "${allowed[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }

echo "== $binary ($(du -h "$binary" | cut -f1))"
echo "direct (NEEDED): $(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"

if ! out=$(ldd "$binary" 2>&1); then
    if grep -q "not a dynamic executable" <<<"$out"; then
        echo "statically linked: needs no shared library"
        echo "check-docker-binary: ok"
        exit 0
    fi
    echo "$out"; echo "check-docker-binary: ldd failed"; exit 1
fi

bad=()
echo "needs (ldd, the whole closure):"
while read -r line; do
    [ -n "$line" ] || continue
    name=$(basename "${line%% *}")
    if [[ $line == *"not found"* ]]; then
        verdict="NOT FOUND"; bad+=("$name (not found)")
    elif is_allowed "$name"; then
        verdict="ok"
    else
        case "$name" in
            libswift*|libFoundation*|lib_FoundationICU*|libdispatch*|libBlocksRuntime*)
                bad+=("$name (Swift runtime linked dynamically: was --static-swift-stdlib used?)") ;;
            *) bad+=("$name") ;;
        esac
        verdict="NOT IN THE RUNTIME IMAGE"
    fi
    printf '  %-24s %s\n' "$name" "$verdict"
done <<<"$out"

newest=$(objdump -T "$binary" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -Vu | tail -1)
if [ -n "$newest" ]; then
    if [ "$(printf '%s\n%s\n' "$newest" "$glibc_max" | sort -V | tail -1)" != "$glibc_max" ]; then
        bad+=("glibc symbol version GLIBC_$newest (bookworm has $glibc_max)")
    fi
    echo "newest glibc symbol version: GLIBC_$newest (bookworm: $glibc_max)"
fi

if [ ${#bad[@]} -gt 0 ]; then
    echo "check-docker-binary: FAILED: not in debian:bookworm-slim + libmicrohttpd12:"
    printf '  %s\n' "${bad[@]}"
    exit 1
fi
echo "check-docker-binary: ok"
