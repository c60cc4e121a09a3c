"""The job as a quix-streams app: two StreamingDataFrames with state (`python -m bench.peers.quix_app`)."""

from __future__ import annotations

import logging
from typing import Any

from quixstreams import Application, State
from quixstreams.models import Serializer

from bench.peers.job import (
    Checked,
    PeerSettings,
    add_to_day,
    check_outcome,
    crossed,
    day_key,
    dead_letter_headers,
    read_sample,
    retrain_command,
)

COUNT = "count"  # the state key of the sample count; the message key (model_type) scopes it


class ForwardedSample(Serializer):
    """training-samples carries the sample exactly as relearn's worker writes it."""

    def __call__(self, value: Checked, ctx: Any) -> bytes:
        return value.forward


def first_sighting(checked: Checked, state: State) -> bool:
    """De-duplication on event_id (repeats share the subject key, so the same state)."""
    if state.exists(checked.event_id):
        return False
    state.set(checked.event_id, True)
    return True


def count_sample(sample: dict[str, Any], state: State) -> dict[str, Any]:
    """Count per model type and the day's sums, both in the model type's state."""
    count = state.get(COUNT, 0) + 1
    state.set(COUNT, count)
    key = day_key(sample)
    state.set(key, add_to_day(state.get(key), sample))
    return {"model_type": sample["model_type"], "count": count}


def build(settings: PeerSettings) -> Application:
    app = Application(
        broker_address=settings.bootstrap,
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval,
        processing_guarantee=settings.variant,
        state_dir=settings.data_dir,
        loglevel="WARNING",
    )
    topics = settings.topics
    outcomes = app.topic(topics.outcome_events, key_deserializer="str", value_deserializer="bytes")
    dead_letters = app.topic(
        topics.outcome_events_dlq, key_serializer="str", value_serializer="bytes"
    )
    samples_out = app.topic(
        topics.training_samples, key_serializer="str", value_serializer=ForwardedSample()
    )
    samples_in = app.topic(
        topics.training_samples, key_deserializer="str", value_deserializer="bytes"
    )
    commands = app.topic(topics.retrain_commands, key_serializer="str", value_serializer="bytes")

    checked = app.dataframe(outcomes).apply(check_outcome)
    rejected = checked.filter(lambda c: bool(c.reason))
    rejected = rejected.set_headers(lambda c, key, timestamp, headers: dead_letter_headers(c))
    rejected.apply(lambda c: c.raw).to_topic(dead_letters)
    fresh = checked.filter(lambda c: not c.reason).filter(first_sighting, stateful=True)
    fresh.to_topic(samples_out, key=lambda c: c.model_type)

    counted = app.dataframe(samples_in).apply(read_sample).apply(count_sample, stateful=True)
    crossings = counted.filter(lambda c: crossed(c["count"], settings.threshold))
    crossings.apply(lambda c: retrain_command(c["model_type"], c["count"])).to_topic(commands)
    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    build(PeerSettings.from_env()).run()


if __name__ == "__main__":
    main()
