# The tomato image: `tomato operator` in the Deployment, and the `tomato exec` binary that
# every attempt's Job copies into its test container (so it is built static, for any image).
# Not built by CI here (no container runtime on these machines).
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin tomato

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/tomato /usr/local/bin/tomato
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tomato"]
