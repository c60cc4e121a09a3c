"""The streams service's settings, read from the environment when an entry point builds them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bus.settings import KafkaSettings


class StreamsSettings(KafkaSettings):
    """Everything a streams worker needs; env names are RELEARN_<FIELD> unless said otherwise."""

    retrain_sample_threshold: int = Field(default=1000, ge=1)
    retrain_max_age_days: float = Field(default=7.0, gt=0)
    dedupe_window_hours: float = Field(default=24.0, gt=0)
    # The A/B decision's plan (streams/experiment.py, docs/decision.md): its first look at this
    # many matured candidate outcomes, doubling up to the maximum. Tests may shrink both; the
    # error bounds hold for any plan (the boundaries are computed for its looks).
    abtest_first_look: int = Field(default=450, ge=1)
    # The false-rollback bound of the positive-rate test over the whole ramp (the squared-error
    # guardrail adds its own 0.1%). The shared contract names this setting with 0.05; 0.01 is
    # the default because the goal is <= 2.5% false rollbacks per candidate, measured.
    rollback_alpha: float = Field(default=0.01, gt=0, lt=0.5)
    abtest_max_candidate_outcomes: int = Field(default=57_600, ge=1)
    # Event time the watermark trails the newest outcome by (outcomes out of order across
    # partitions); a demo on a seconds time scale uses a few seconds.
    abtest_watermark_allowance_seconds: float = Field(default=300.0, ge=0)
    # One retrain in flight per model type: a retrain command unanswered (no version registered,
    # no rejection) after this long no longer holds the next one (the trainer may be gone).
    # 0 holds nothing: one command per crossing (tests of the counting that run no trainer).
    retrain_pending_timeout_seconds: float = Field(default=1800.0, ge=0)
    # The consumer group and the prefix of the internal topics (changelogs); the topic prefix
    # is prepended, so isolated runs never share state.
    streams_app_id: str = "relearn-streams"
    streams_web_host: str = "127.0.0.1"
    streams_web_port: int = Field(default=6066, ge=1, le=65535)
    # Where this worker keeps its RocksDB tables; default <state_dir>/streams/<app id>-<port>,
    # unique per worker on one machine because the web port is.
    streams_data_dir: Path | None = None
    # How often each worker asks the model types it owns whether the schedule trigger is due.
    schedule_check_seconds: float = Field(default=60.0, gt=0)
    # How often consumed offsets are committed (the changelog is flushed first).
    streams_commit_interval_seconds: float = Field(default=1.0, gt=0)
    # A worker killed without leaving the group holds its partitions until its session times
    # out; a long timeout (Kafka's default is 45 s) stalls the survivors that long.
    streams_session_timeout_seconds: float = Field(default=10.0, ge=6.0)
    # How long a starting worker waits to have read registry-events before it joins the group.
    registry_catch_up_seconds: float = Field(default=30.0, ge=0)
    # Prometheus metrics on /metrics (docs/metrics.md); false counts nothing, to measure their
    # cost (BENCHMARKS.md) or to run without them.
    streams_metrics: bool = True

    @property
    def app_id(self) -> str:
        return f"{self.topic_prefix}{self.streams_app_id}"

    @property
    def data_dir(self) -> Path:
        if self.streams_data_dir is not None:
            return self.streams_data_dir
        return self.state_dir / "streams" / f"{self.app_id}-{self.streams_web_port}"

    @property
    def web_url(self) -> str:
        return f"http://{self.streams_web_host}:{self.streams_web_port}"
