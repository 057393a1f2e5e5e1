# syntax=docker/dockerfile:1
# gatehouse-operator — build from the repository root:
#   docker build -f images/operator.Dockerfile -t gatehouse/gatehouse-operator:0.1.0 .
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
    cargo build --release --locked -p gatehouse-operator --bin gatehouse-operator \
 && install -D -m 0755 target/release/gatehouse-operator /out/gatehouse-operator

# --- runtime: distroless (glibc + libgcc + CA certificates, no shell, no package manager) ------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse-operator /usr/local/bin/gatehouse-operator
# 65532 = "nonroot" in distroless; the Helm chart and the operator run it with
# runAsNonRoot, readOnlyRootFilesystem and all capabilities dropped — nothing is written outside
# /tmp (an emptyDir in Kubernetes).
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/gatehouse-operator"]
CMD ["run"]
