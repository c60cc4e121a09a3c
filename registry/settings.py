"""The registry service's settings (env prefix RELEARN_), built by the entry point."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr

from bus.settings import KafkaSettings
from contracts.serving import INITIAL_CANDIDATE_WEIGHT, MAX_CANDIDATE_WEIGHT


class RegistrySettings(KafkaSettings):
    """Where the database and artifacts are, the API token, the port, the consumer group."""

    database_url: str | None = None  # default: sqlite under state_dir
    artifact_dir: Path | None = None  # default: state_dir/artifacts
    api_token: SecretStr | None = None  # default: a token generated once under state_dir
    registry_host: str = "127.0.0.1"
    registry_port: int = Field(default=8080, ge=1, le=65535)
    registry_consumer_group: str = "relearn-registry"
    registry_candidate_weight: float = Field(default=INITIAL_CANDIDATE_WEIGHT, gt=0, le=1)
    # The most a staging version may hold; production keeps at least the rest (409 otherwise).
    # At least the ramp's last step before promotion: below it every automatic ramp would be
    # refused, and a better candidate would stay at its first weight, undecided.
    registry_max_candidate_weight: float = Field(
        default=MAX_CANDIDATE_WEIGHT, ge=MAX_CANDIDATE_WEIGHT, lt=1
    )
    registry_route_cache_seconds: float = Field(default=1.0, ge=0)
    # A killed instance's partitions move to a live one after this long (librdkafka: 45 s).
    registry_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    registry_kafka_enabled: bool = True
    # The dashboard at `/`: where streams' web views are (proxied server-side), history bounds.
    streams_url: str = "http://127.0.0.1:6066"
    dashboard_streams_timeout: float = Field(default=2.0, gt=0)
    dashboard_history_max_items: int = Field(default=500, ge=10)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.state_dir / 'registry.db').resolve()}"

    def resolved_artifact_dir(self) -> Path:
        return (self.artifact_dir or self.state_dir / "artifacts").resolve()

    def token_file(self) -> Path:
        return self.state_dir / "registry.token"

    def resolved_api_token(self) -> str:
        """RELEARN_API_TOKEN, else the token in state_dir/registry.token (created on first use)."""
        if self.api_token is not None and self.api_token.get_secret_value():
            return self.api_token.get_secret_value()
        path = self.token_file()
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(token)
        return token
