"""The model registry: version numbers, lifecycle, traffic weights, the HTTP API and its client."""
