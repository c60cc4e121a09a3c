"""A week of a model type's life on a live registry and streams worker, then a dashboard screenshot.

`python -m tests.dashboard.showcase docs/dashboard.png` (broker: KAFKA_BOOTSTRAP_SERVERS, else
127.0.0.1:9092). Everything on the page is real: ONNX artifacts registered from model-deployed
events, commands applied by the registry, a trainer-shaped rejection, outcome events counted by
a `relearn streams` worker (past days included), and streams' own retrain commands and A/B test.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bus.admin import create_topics
from contracts.events import RegistryCommandIssued, RegistryCommandType, TrainingMetrics, to_json
from contracts.topics import Topics
from registry.client import RegistryClient
from registry.settings import RegistrySettings
from tests.conftest import free_port
from tests.dashboard.conftest import MT, TOKEN, Stack, publish, start_registry
from tests.streams.harness import StreamsWorker, get_json, wait_until

REPO = Path(__file__).resolve().parents[2]


def outcomes(
    version: str, count: int, rate: float, at: datetime, rng: random.Random, spread: float = 3600.0
) -> list[bytes]:
    values = []
    for _ in range(count):
        positive = rng.random() < rate
        score = min(1.0, max(0.0, rng.gauss(0.75 if positive else 0.3, 0.15)))
        values.append(
            orjson.dumps(
                {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "model_type": MT,
                    "model_version": version,
                    "subject_id": f"s{rng.getrandbits(40)}",
                    "features": [round(rng.random(), 3) for _ in range(23)],
                    "prediction": min(1.0, max(0.0, rng.gauss(rate, 0.1))),
                    "outcome_score": score,
                    "positive_outcome": positive,
                    "occurred_at": (at + timedelta(seconds=rng.uniform(0, spread))).isoformat(),
                }
            )
        )
    return values


def metrics(train: float, val: float, test: float, epoch: int, samples: int) -> TrainingMetrics:
    """What the trainer reports for the built-in MLP (13,441 parameters)."""
    return TrainingMetrics(
        train_loss=train,
        val_loss=val,
        test_loss=test,
        early_stopping_epoch=epoch,
        parameters=13_441,
        train_samples=int(samples * 0.8),
        val_samples=samples // 10,
        test_samples=samples // 10,
    )


def command(
    type_: RegistryCommandType, version: str, reason: str, weights: dict[str, float] | None = None
) -> bytes:
    return to_json(
        RegistryCommandIssued(
            type=type_,
            model_type=MT,
            version=version,
            weights=weights,
            reason=reason,
            issued_by="auto",
        )
    )


def main(out: Path) -> int:
    from training.errors import RejectionReason, TrainingError
    from training.pipeline import rejection_event

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    base = Path(tempfile.mkdtemp(prefix="relearn-showcase-"))
    topics = Topics(f"showcase{uuid.uuid4().hex[:6]}-")
    create_topics(bootstrap, topics, partitions=4, replication=1)
    streams = StreamsWorker(
        bootstrap,
        topics.prefix,
        free_port(),
        base / "streams",
        RELEARN_RETRAIN_SAMPLE_THRESHOLD="600",
    ).start()
    (base / "artifacts").mkdir()
    registry = start_registry(
        RegistrySettings(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            topic_prefix=topics.prefix,
            state_dir=base,
            artifact_dir=base / "artifacts",
            api_token=TOKEN,
            streams_url=streams.url,
            registry_consumer_group=f"showcase-{uuid.uuid4().hex[:6]}",
        )
    )
    client = RegistryClient(registry.url, token=TOKEN)
    stack = Stack(bootstrap, topics, registry, streams, base / "artifacts", client)
    rng = random.Random(7)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = [today - timedelta(days=6 - i) for i in range(7)]
    try:
        streams.wait_web(90)
        # The week before: v0.0 (no model) first, then v1.0 in production, a bad v1.1 rolled back.
        publish(bootstrap, topics.outcome_events, outcomes("v0.0", 160, 0.38, day[0], rng))
        stack.deploy(seed=1, metrics=metrics(0.0241, 0.0262, 0.0260, 38, 4200))
        wait_until(lambda: stack.version_count() == 1, 30, "v1.0")
        for d in day[1:5]:
            publish(
                bootstrap,
                topics.outcome_events,
                outcomes("v1.0", rng.randint(140, 190), rng.uniform(0.52, 0.58), d, rng),
            )
        stack.deploy(
            seed=2,
            metrics=metrics(0.0229, 0.0255, 0.0258, 41, 5100),
            baseline_metrics={"test_loss": 0.0260, "version": "v1.0"},
        )
        wait_until(lambda: stack.version_count() == 2, 30, "v1.1")
        publish(bootstrap, topics.outcome_events, outcomes("v1.1", 40, 0.31, day[4], rng))
        publish(
            bootstrap,
            topics.registry_commands,
            [
                command(
                    RegistryCommandType.ROLLBACK,
                    "v1.1",
                    "sequential test: candidate positive rate lower (p=0.004)",
                )
            ],
        )
        wait_until(lambda: client.version(MT, "v1.1").status == "rolled_back", 30, "rollback")
        rejected = rejection_event(
            MT,
            str(uuid.uuid4()),
            TrainingError(
                "test loss 0.0291 is 12.0% worse than production's 0.0260 (tolerance 5%)",
                reason=RejectionReason.WORSE_THAN_PRODUCTION,
            ),
        )
        publish(bootstrap, topics.registry_events, [to_json(rejected)])
        stack.deploy(
            seed=3,
            metrics=metrics(0.0203, 0.0231, 0.0236, 47, 6800),
            baseline_metrics={"test_loss": 0.0260, "version": "v1.0"},
        )
        wait_until(lambda: stack.version_count() == 3, 30, "v1.2")
        for d in day[5:]:
            publish(
                bootstrap,
                topics.outcome_events,
                outcomes("v1.0", 150, 0.55, d, rng) + outcomes("v1.2", 30, 0.62, d, rng),
            )
        publish(
            bootstrap,
            topics.registry_commands,
            [
                command(
                    RegistryCommandType.PROMOTE,
                    "v1.2",
                    "sequential test: candidate better (ramp 0.5)",
                    {"v1.2": 0.5, "v1.0": 0.5},
                )
            ],
        )
        wait_until(lambda: client.version(MT, "v1.2").weight == 0.5, 30, "ramp step")
        wait_until(
            lambda: (get_json(f"{streams.url}/healthz") or {}).get("registry_events_seen", 0) >= 9,
            60,
            "streams follows the registry",
        )
        time.sleep(0.5)
        now = datetime.now(UTC)  # live outcomes: after the ramp step, so in the A/B test
        publish(
            bootstrap,
            topics.outcome_events,
            outcomes("v1.0", 170, 0.55, now, rng, 1.0) + outcomes("v1.2", 180, 0.63, now, rng, 1.0),
        )
        wait_until(
            lambda: (
                (get_json(f"{streams.url}/abtest/{MT}") or {})
                .get("candidate", {})
                .get("samples", 0)
                >= 180
            ),
            60,
            "A/B counted",
        )
        subprocess.run(
            [
                sys.executable,
                str(REPO / "scripts" / "screenshot.py"),
                f"{registry.url}/",
                str(out),
                "--refreshes",
                "3",
            ],
            check=True,
        )
        return 0
    finally:
        client.close()
        registry.stop()
        streams.stop()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")))
