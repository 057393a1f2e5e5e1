# syntax=docker/dockerfile:1
# gatehouse-demo-server — the example MCP server of the quickstart and of docs/first-policy.md
# (tools echo, add, whoami, admin_reset, …; `whoami` returns the Authorization header it received,
# so you can see the credential the gateway injected). Not part of a production install.
#   docker build -f images/demo-server.Dockerfile -t gatehouse/gatehouse-demo-server:0.1.0 .

# --- build: the whole workspace is the build context; only this binary is compiled -------------
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatehouse-demo-server --bin gatehouse-demo-server \
 && install -D -m 0755 target/release/gatehouse-demo-server /out/gatehouse-demo-server

# --- runtime: distroless, non-root ------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse-demo-server /usr/local/bin/gatehouse-demo-server
USER 65532:65532
EXPOSE 3001
ENTRYPOINT ["/usr/local/bin/gatehouse-demo-server"]
# In a cluster, listen on all addresses and accept the Service's host name (see
# docs/first-policy.md); the default listens on loopback only.
CMD ["--listen", "0.0.0.0:3001"]
