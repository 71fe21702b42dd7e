# syntax=docker/dockerfile:1
#
# siphon: the host and the collector components in one image.
#
#   docker build -t siphon .
#   docker run --rm -p 127.0.0.1:9464:9464 \
#     -v "$PWD/siphon.toml:/etc/siphon/config/siphon.toml:ro" siphon
#
# Stage 1 builds the host (release) and every Rust collector under guests/
# for wasm32-wasip2; stage 2 is a small Debian with the binary, the collectors
# under /opt/siphon/collectors, and a non-root user. Kubernetes manifests:
# examples/kubernetes/.

FROM rust:1-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
# The collectors: every guests/* crate whose lib is a cdylib (as `make guests`
# picks them, without the test guests and the Python toolchain).
RUN cargo build --release --locked -p siphon \
 && crates=$(for manifest in guests/*/Cargo.toml; do \
      if grep -Eq '^crate-type *=.*"cdylib"' "$manifest"; then sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1; fi; \
    done) \
 && cargo build --locked --profile guest --target wasm32-wasip2 $(printf -- '-p %s ' $crates) \
 && mkdir -p /out/collectors \
 && for crate in $crates; do \
      cp "target/wasm32-wasip2/guest/$(echo "$crate" | tr - _).wasm" /out/collectors/; \
    done

FROM debian:bookworm-slim
# CA roots for the vendors' and Google's TLS endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin siphon \
 && install -d -o siphon -g siphon -m 0700 /var/cache/siphon /var/lib/siphon
COPY --from=build /src/target/release/siphon /usr/local/bin/siphon
COPY --from=build /out/collectors/ /opt/siphon/collectors/
USER 10001:10001
# Status page, /status, /healthz, /readyz, /metrics (when [http] listen is set).
EXPOSE 9464
# siphon runs as PID 1: it handles SIGTERM (drain), SIGINT and SIGHUP
# (reload) itself and starts no child processes.
ENTRYPOINT ["/usr/local/bin/siphon"]
CMD ["run", "--config", "/etc/siphon/config/siphon.toml"]
