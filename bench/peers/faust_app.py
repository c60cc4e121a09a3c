"""The job as a faust-streaming app: agents over Tables, per event or in `take` batches.

Run as `python -m bench.peers.faust_app worker --without-web -l warn`; PEERS_VARIANT picks "agents" (one
event at a time, the docs' idiom) or "take" (batches, one count write per key per batch).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import faust

from bench.peers.job import (
    PeerSettings,
    add_to_day,
    check_outcome,
    crossed,
    day_key,
    dead_letter_headers,
    read_sample,
    retrain_command,
)

TAKE = 1_000  # events per batch in the take variant
PARTITIONS = 4  # tables are co-partitioned with outcome-events and training-samples


def build(settings: PeerSettings) -> faust.App:
    # A `take` batch is written after its events were iterated, where faust knows no current
    # event: its RocksDB store cannot file a write then (it asserts one), so that variant keeps
    # its tables in memory (faust's default store, restored from the changelogs at start), and
    # its changelog partitions come from the producer's partitioner, as faust's docs advise for
    # writes outside a stream.
    batched = settings.variant == "take"
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://" if batched else "rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=PARTITIONS,
        broker_commit_interval=settings.commit_interval,
        consumer_auto_offset_reset="earliest",
    )
    topics = settings.topics
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    outcomes = app.topic(topics.outcome_events, **raw)
    dead_letters = app.topic(topics.outcome_events_dlq, **raw)
    samples = app.topic(topics.training_samples, **raw)
    commands = app.topic(topics.retrain_commands, **raw)

    seen = app.Table("seen", default=bool, use_partitioner=batched)
    counts = app.Table("counts", default=int, use_partitioner=batched)
    daily = app.Table("daily", default=list, use_partitioner=batched)

    async def on_outcome_event(event: Any) -> None:
        checked = check_outcome(event.value)
        if checked.reason:
            await dead_letters.send(
                key=event.key, value=event.value, headers=dead_letter_headers(checked)
            )
        elif not seen[checked.event_id]:
            seen[checked.event_id] = True
            await samples.send(key=checked.model_type.encode(), value=checked.forward)

    async def send_crossings(model_type: str, before: int, after: int) -> None:
        for count in range(before + 1, after + 1):
            if crossed(count, settings.threshold):
                await commands.send(
                    key=model_type.encode(), value=retrain_command(model_type, count)
                )

    if not batched:

        @app.agent(outcomes)
        async def on_outcome(stream: Any) -> None:
            async for event in stream.events():
                await on_outcome_event(event)

        @app.agent(samples)
        async def on_sample(stream: Any) -> None:
            async for value in stream:
                sample = read_sample(value)
                model_type = sample["model_type"]
                counts[model_type] += 1
                key = day_key(sample)
                daily[key] = add_to_day(daily[key], sample)
                await send_crossings(model_type, counts[model_type] - 1, counts[model_type])

    else:

        @app.agent(outcomes)
        async def on_outcomes(stream: Any) -> None:
            async for events in stream.take_events(TAKE, within=settings.commit_interval / 5):
                for event in events:
                    await on_outcome_event(event)

        @app.agent(samples)
        async def on_samples(stream: Any) -> None:
            async for values in stream.take(TAKE, within=settings.commit_interval / 5):
                batch = [read_sample(value) for value in values]
                added = Counter(sample["model_type"] for sample in batch)
                days: dict[str, list[Any]] = {}
                for sample in batch:
                    key = day_key(sample)
                    days[key] = add_to_day(days.get(key) or daily[key], sample)
                daily.update(days)
                for model_type, n in added.items():
                    before = counts[model_type]
                    counts[model_type] = before + n
                    await send_crossings(model_type, before, before + n)

    return app


def main() -> None:
    build(PeerSettings.from_env()).main()


if __name__ == "__main__":
    main()
