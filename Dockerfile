# syntax=docker/dockerfile:1
# The steam-recsys command with the `cluster` feature: the image of docker-compose.yml's Ballista
# scheduler and executors (`steam-recsys cluster scheduler|executor`). The registry and the build
# artefacts are cached between builds, so a change to our code does not rebuild DataFusion.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p steam-pipelines --features cluster --bin steam-recsys \
    && cp target/release/steam-recsys /usr/local/bin/steam-recsys

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/steam-recsys /usr/local/bin/steam-recsys
ENTRYPOINT ["steam-recsys"]
