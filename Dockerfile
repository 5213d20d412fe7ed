# syntax=docker/dockerfile:1
# regiond: build with the Swift toolchain, run on debian:bookworm-slim.
#   docker build -t regiond .
#   docker run --rm -p 8080:8080 -v regiond-state:/var/lib/regiond regiond
# scripts/check-docker-binary.sh checks that the binary needs no shared
# library the runtime stage lacks.

FROM swift:6.3-bookworm AS builder
# Versions come from the bookworm snapshot the base image is built on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
# Tests are not built, but SwiftPM refuses to load a manifest whose test
# targets have no directory ("target 'MemoryPoolTests' has overlapping sources").
COPY Tests ./Tests
COPY openapi.yaml ./
RUN swift build -c release --static-swift-stdlib --product regiond \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/regiond" /out/regiond

FROM debian:bookworm-slim
# Versions come from bookworm; libmicrohttpd12 is the only addition.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 regiond \
    && useradd --system --no-log-init --uid 10001 --gid regiond \
        --home-dir /var/lib/regiond --no-create-home --shell /usr/sbin/nologin regiond \
    && install -d -o regiond -g regiond -m 0750 /var/lib/regiond
COPY --from=builder /out/regiond /usr/local/bin/regiond
ENV REGIOND_HOST=0.0.0.0 REGIOND_PORT=8080 REGIOND_STATE_DIR=/var/lib/regiond
USER regiond
WORKDIR /var/lib/regiond
VOLUME ["/var/lib/regiond"]
EXPOSE 8080
# regiond's own probe (no curl in the image): GET /readyz, ready or not.
# Given no address flags it reads PID 1's command line and environment when
# PID 1 is regiond, so `docker run regiond --port 9000` is checked on 9000.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/regiond", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/regiond"]
