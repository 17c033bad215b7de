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
COPY gateway.toml /etc/gateway/gateway.toml
WORKDIR /etc/gateway
USER gateway
EXPOSE 8443 8080 9901
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve", "--config", "/etc/gateway/gateway.toml"]
