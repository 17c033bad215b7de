# Multi-stage build: compile in the Rust image, run from a slim Debian as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY gateway.toml ./
RUN cargo build --release --locked && strip target/release/gateway

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /etc/gateway gateway \
    && mkdir -p /etc/gateway/certs && chown -R gateway /etc/gateway
COPY --from=build /src/target/release/gateway /usr/local/bin/gateway
COPY deploy/healthcheck.sh /usr/local/bin/healthcheck
COPY gateway.toml /etc/gateway/gateway.toml
WORKDIR /etc/gateway
USER gateway
EXPOSE 8443 8080 9901
# The admin listener's /healthz, over bash's /dev/tcp (the image has no curl). Assumes the
# admin listener on port 9901, as in the shipped and deploy/ configs.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "9901", "/healthz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve", "--config", "/etc/gateway/gateway.toml"]
