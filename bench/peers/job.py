"""The job every peer runs, through relearn's own contract functions: validate, forward, count, daily.

Pure functions and the peers' settings; each peer app wires these into its library's idioms, so
the libraries are compared on the Kafka plumbing alone, never on the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.settings import KafkaSettings
from contracts.events import RetrainReason, RetrainRequested, forwarded_json, to_json
from contracts.model_types import ModelTypeCatalog
from contracts.topics import Topics
from contracts.validation import OutcomeRejected
from streams import rules
from streams.processing import forwardable_outcome, parse_sample

CATALOG = ModelTypeCatalog()


class _PeerEnvironment(BaseSettings):
    """The PEERS_* variables `PeerSettings.to_env` sets for a peer app."""

    model_config = SettingsConfigDict(env_prefix="PEERS_", extra="ignore", frozen=True)

    data_dir: Path
    variant: str
    commit_interval_seconds: float = 1.0
    retrain_threshold: int = 1000


@dataclass(frozen=True)
class PeerSettings:
    """What the runner hands a peer app, through its environment (read only in `main`)."""

    bootstrap: str
    prefix: str
    data_dir: Path
    commit_interval: float
    threshold: int
    variant: str  # faust: "agents" or "take"; quix: "at-least-once" or "exactly-once"

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    @property
    def app_id(self) -> str:
        return f"{self.prefix}peer-{self.variant}"

    @classmethod
    def from_env(cls) -> PeerSettings:
        kafka, peer = KafkaSettings(), _PeerEnvironment()  # type: ignore[call-arg]
        return cls(
            bootstrap=kafka.bootstrap_servers,
            prefix=kafka.topic_prefix,
            data_dir=peer.data_dir,
            commit_interval=peer.commit_interval_seconds,
            threshold=peer.retrain_threshold,
            variant=peer.variant,
        )

    def to_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "RELEARN_TOPIC_PREFIX": self.prefix,
            "PEERS_DATA_DIR": str(self.data_dir),
            "PEERS_COMMIT_INTERVAL_SECONDS": str(self.commit_interval),
            "PEERS_RETRAIN_THRESHOLD": str(self.threshold),
            "PEERS_VARIANT": self.variant,
        }


@dataclass(frozen=True)
class Checked:
    """One outcome event after validation: a sample to forward, or a reason to dead-letter it."""

    raw: bytes | None
    event_id: str = ""
    model_type: str = ""
    forward: bytes = b""
    reason: str = ""
    detail: str = ""


def check_outcome(raw: bytes | None) -> Checked:
    """relearn's outcome check (`streams.processing.forwardable_outcome`, fast path included)."""
    try:
        fields = forwardable_outcome(raw, CATALOG, datetime.now(UTC))
    except OutcomeRejected as rejected:
        return Checked(raw, reason=rejected.reason.value, detail=rejected.detail)
    return Checked(raw, fields["event_id"], fields["model_type"], forwarded_json(fields))


def dead_letter_headers(checked: Checked) -> list[tuple[str, bytes]]:
    return [("error.reason", checked.reason.encode()), ("error.detail", checked.detail.encode())]


def read_sample(value: bytes | None) -> dict[str, Any]:
    """The forwarded sample (streams' own parse: MalformedSample on anything else)."""
    return parse_sample(value)


def day_key(sample: dict[str, Any]) -> str:
    return rules.performance_key(sample["model_type"], sample["model_version"], sample["day"])


def add_to_day(sums: list[Any] | None, sample: dict[str, Any]) -> list[Any]:
    """[sample_count, positives, prediction_sum, outcome_score_sum] with one more sample."""
    day = rules.DailyPerformance(*(sums or ())).add(
        sample["positive_outcome"], sample["prediction"], sample["outcome_score"]
    )
    return [day.sample_count, day.positives, day.prediction_sum, day.outcome_score_sum]


def crossed(count: int, threshold: int) -> bool:
    return count % threshold == 0


def retrain_command(model_type: str, count: int) -> bytes:
    """The command a threshold crossing sends; its id is the crossing, so a re-send is visible."""
    return to_json(
        RetrainRequested(
            command_id=f"{model_type}-{count}",
            model_type=model_type,
            reason=RetrainReason.SAMPLE_THRESHOLD,
            new_samples=count,
        )
    )
