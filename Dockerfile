# syntax=docker/dockerfile:1
# Multi-stage build of the gateway's release binary; the runtime image runs as a non-root user.
# Configure with DATABASE_URL (a role granted gateway_app, see docs/database-roles.md),
# GATEWAY_OWNER_DATABASE_URL and GATEWAY_JWT_SECRET (see src/config.rs for every variable).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY catalog catalog
COPY codegen codegen
COPY bench bench
COPY src src
# The GraphiQL bundle the binary embeds (built in tools/graphiql, committed).
COPY assets assets
COPY migrations migrations
COPY tests tests
RUN cargo build --release --locked --bin gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=build /src/target/release/gateway /usr/local/bin/gateway
USER 10001:10001
ENV GATEWAY_BIND=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
ENTRYPOINT ["gateway", "serve"]
