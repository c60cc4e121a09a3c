# One image for the three relearn services; the command picks the service (relearn streams|trainer|registry).
FROM python:3.11-slim
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
RUN pip install --no-cache-dir .
ENV RELEARN_STATE_DIR=/data/state RELEARN_ARTIFACT_DIR=/data/artifacts
VOLUME ["/data"]
ENTRYPOINT ["relearn"]
