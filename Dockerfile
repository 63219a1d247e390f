# syntax=docker/dockerfile:1
# Syros server image: a release build of `syros` on Debian slim, run as a non-root user.
#
#   docker build -t syros .
#   docker run -p 9090:9090 -p 8080:8080 -p 8081:8081 -e JWT_SECRET=... syros
#
# The server binds 0.0.0.0 in the container, which it refuses without authentication: set
# JWT_SECRET (or JWT_JWKS_FILE), or SYROS_ALLOW_UNAUTHENTICATED=true on a trusted network.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- build ---------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target directory between builds; the binary is copied
# out of the mount so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p syros-server \
    && install -D -m 0755 target/release/syros /out/syros

# --- runtime -------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 syros \
    && useradd --system --uid 10001 --gid syros --home-dir /var/lib/syros --shell /usr/sbin/nologin syros \
    && install -d -o syros -g syros -m 0750 /var/lib/syros /etc/syros
COPY --from=builder /out/syros /usr/local/bin/syros

ENV SERVER_HOST=0.0.0.0 \
    GRPC_PORT=9090 \
    REST_PORT=8080 \
    WS_PORT=8081 \
    SYROS_DATA_DIR=/var/lib/syros \
    LOG_FORMAT=json
# gRPC, REST/GraphQL/metrics, event WebSocket.
EXPOSE 9090 8080 8081
VOLUME ["/var/lib/syros"]
USER 10001:10001
WORKDIR /var/lib/syros

# No curl in the slim image: bash's /dev/tcp sends a plain HTTP/1.0 GET /health.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${REST_PORT} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/syros"]
CMD ["serve"]
