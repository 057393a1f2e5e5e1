# syntax=docker/dockerfile:1
# gatehouse-gateway — build from the repository root:
#   docker build -f images/gateway.Dockerfile -t gatehouse/gatehouse-gateway:0.1.0 .
# (or podman/buildah/nerdctl with the same arguments; see docs/images.md).

# --- build: the whole workspace is the build context; only this binary is compiled -------------
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Dependencies come from Cargo.lock (--locked). The cache mounts keep the registry and target
# directory between builds; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatehouse-gateway --bin gatehouse-gateway \
 && install -D -m 0755 target/release/gatehouse-gateway /out/gatehouse-gateway

# --- runtime: distroless (glibc + libgcc + CA certificates, no shell, no package manager) ------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse-gateway /usr/local/bin/gatehouse-gateway
# 65532 = "nonroot" in distroless; the Helm chart and the operator run it with
# runAsNonRoot, readOnlyRootFilesystem and all capabilities dropped — nothing is written outside
# /tmp (an emptyDir in Kubernetes).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gatehouse-gateway"]
# Local mode from mounted manifests by default; in Kubernetes the operator sets the arguments
# (cluster mode) on the Deployments it creates.
#   docker run --rm -p 8080:8080 -v "$PWD/examples/quickstart:/etc/gatehouse/manifests:ro" gatehouse/gatehouse-gateway:0.1.0
CMD ["run", "--manifests", "/etc/gatehouse/manifests", "--listen", "0.0.0.0:8080"]
