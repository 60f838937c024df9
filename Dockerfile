# The steam-recsys command with the `cluster` feature: the image of docker-compose.yml's Ballista
# scheduler and executors (`steam-recsys cluster scheduler|executor`).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p steam-pipelines --features cluster --bin steam-recsys

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/steam-recsys /usr/local/bin/steam-recsys
ENTRYPOINT ["steam-recsys"]
