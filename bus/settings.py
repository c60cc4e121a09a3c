"""Settings every relearn process shares: where Kafka is, the topic prefix, the model types."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.logs import LogFormat
from contracts.model_types import ModelTypeCatalog
from contracts.topics import Topics


class KafkaSettings(BaseSettings):
    """Base for each service's settings; read from the environment when the entry point builds it."""

    model_config = SettingsConfigDict(
        env_prefix="RELEARN_", extra="ignore", frozen=True, populate_by_name=True
    )

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "RELEARN_BOOTSTRAP_SERVERS"),
    )
    topic_prefix: str = ""
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    model_types_file: Path | None = None
    state_dir: Path = Path(".relearn")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def model_types(self) -> ModelTypeCatalog:
        return ModelTypeCatalog.load(self.model_types_file)


class LogSettings(BaseSettings):
    """How every entry point writes its log lines (RELEARN_LOG_FORMAT: text or json)."""

    model_config = SettingsConfigDict(env_prefix="RELEARN_", extra="ignore", frozen=True)

    log_format: LogFormat = LogFormat.TEXT
