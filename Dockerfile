# Two images from one file: `slim` runs streams and the registry (no torch, a few hundred MB),
# `trainer` adds torch/onnx for `relearn trainer` (several GB). The command picks the service:
#   docker build --target slim -t relearn:slim .      relearn streams | registry | topics create
#   docker build --target trainer -t relearn:trainer .  relearn trainer | train
FROM python:3.11-slim AS source
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY bus bus
COPY streams streams
COPY training training
COPY registry registry
COPY simulator simulator
COPY relearn relearn

# Separate stages, so building the slim target never downloads torch.
FROM source AS build-slim
RUN python -m venv /opt/slim && /opt/slim/bin/pip install --no-cache-dir .

FROM source AS build-trainer
RUN python -m venv /opt/trainer && /opt/trainer/bin/pip install --no-cache-dir '.[trainer]'

FROM python:3.11-slim AS slim
COPY --from=build-slim /opt/slim /opt/slim
ENV PATH=/opt/slim/bin:$PATH RELEARN_STATE_DIR=/data/state RELEARN_ARTIFACT_DIR=/data/artifacts
VOLUME ["/data"]
ENTRYPOINT ["relearn"]

FROM python:3.11-slim AS trainer
COPY --from=build-trainer /opt/trainer /opt/trainer
ENV PATH=/opt/trainer/bin:$PATH RELEARN_STATE_DIR=/data/state RELEARN_ARTIFACT_DIR=/data/artifacts
VOLUME ["/data"]
ENTRYPOINT ["relearn"]
