"""A real run for the dashboard tests: broker, streams worker, registry in a thread, headless chromium."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bus.admin import create_topics
from bus.clients import make_producer
from contracts.events import Lineage, ModelDeployed, to_json
from contracts.topics import Topics
from registry.client import RegistryClient
from registry.main import create_app
from registry.settings import RegistrySettings
from tests.conftest import free_port
from tests.registry.conftest import make_deployment
from tests.streams.harness import StreamsWorker, get_json, read_topic, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "dashboard-test-token"
MT = "calling_score"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


@dataclass
class LiveRegistry:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def start_registry(settings: RegistrySettings) -> LiveRegistry:
    """The real registry app under uvicorn in a thread, on a free port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "the registry did not start")
    return LiveRegistry(f"http://127.0.0.1:{port}", server, thread)


@dataclass
class Stack:
    """A registry and a streams worker on one topic prefix, and what was sent to them."""

    bootstrap: str
    topics: Topics
    registry: LiveRegistry
    streams: StreamsWorker
    artifact_dir: Path
    client: RegistryClient
    sent: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.registry.url

    def deploy(self, seed: int, **overrides: object) -> ModelDeployed:
        lineage = Lineage(
            topic=self.topics.training_samples,
            offsets={"0": (0, 40 * seed)},
            seed=seed,
            package_version="0.1.0",
        )
        overrides.setdefault("lineage", lineage)
        deployment = make_deployment(self.artifact_dir, MT, seed=seed, **overrides)
        publish(self.bootstrap, self.topics.model_deployed, [deployment.model_dump_json().encode()])
        return deployment

    def version_count(self) -> int:
        return len(self.client.versions(MT))

    def rejections(self) -> int:
        history = get_json(f"{self.url}/dashboard/api/{MT}/history") or {}
        return len(history.get("rejections", []))


def publish(bootstrap: str, topic: str, values: list[bytes], key: bytes = MT.encode()) -> None:
    producer = make_producer(bootstrap)
    for value in values:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def outcome(version: str, positive: bool, prediction: float, index: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "model_type": MT,
            "model_version": version,
            "subject_id": f"s-{version}-{index}",
            "features": [0.1 * (index % 7)] * 23,
            "prediction": prediction,
            "outcome_score": 1.0 if positive else 0.0,
            "positive_outcome": positive,
            "occurred_at": now,
            "served_at": now,  # served as it occurred: in the A/B test, waiting for its window
        }
    ).encode()


def _outcomes(version: str, count: int, positives: int, prediction: float) -> list[bytes]:
    return [outcome(version, i < positives, prediction, i) for i in range(count)]


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The loop's services on real data: v1.0 production, v1.1 staging at 0.1, one rejection,
    outcomes for both versions counted by streams (60, past the threshold of 50, but held:
    v1.1 is a canary under test), and a retrain command an operator requested."""
    base = tmp_path_factory.mktemp("dashboard")
    topics = Topics(f"t{uuid.uuid4().hex[:10]}-")
    create_topics(kafka_bootstrap, topics, partitions=4, replication=1)
    streams = StreamsWorker(
        kafka_bootstrap,
        topics.prefix,
        free_port(),
        base / "streams",
        RELEARN_RETRAIN_SAMPLE_THRESHOLD="50",
    ).start()
    artifact_dir = base / "artifacts"
    artifact_dir.mkdir()
    settings = RegistrySettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,  # the alias: `bootstrap_servers=` is ignored
        topic_prefix=topics.prefix,
        state_dir=base,
        artifact_dir=artifact_dir,
        api_token=TOKEN,
        registry_consumer_group=f"registry-{uuid.uuid4().hex[:8]}",
        streams_url=streams.url,
    )
    registry = start_registry(settings)
    client = RegistryClient(registry.url, token=TOKEN)
    live = Stack(kafka_bootstrap, topics, registry, streams, artifact_dir, client)
    try:
        live.deploy(seed=1)
        wait_until(lambda: live.version_count() == 1, 30, "v1.0 registered")
        live.deploy(seed=2)
        wait_until(lambda: live.version_count() == 2, 30, "v1.1 registered")
        # A deployment whose artifact does not match its digest: the registry rejects it.
        bad = make_deployment(artifact_dir, MT, seed=3)
        tampered = bad.model_copy(update={"sha256": "0" * 64})
        publish(kafka_bootstrap, topics.model_deployed, [tampered.model_dump_json().encode()])
        wait_until(lambda: live.rejections() == 1, 30, "the tampered deployment rejected")
        # The trainer publishes its own rejections on registry-events (no version, no weights).
        from training.errors import RejectionReason, TrainingError
        from training.pipeline import rejection_event

        refused = TrainingError(
            "test loss 12% worse than production", reason=RejectionReason.WORSE_THAN_PRODUCTION
        )
        publish(
            kafka_bootstrap,
            topics.registry_events,
            [to_json(rejection_event(MT, "cmd-trainer-1", refused))],
        )
        wait_until(lambda: live.rejections() == 2, 30, "the trainer's rejection followed")
        streams.wait_web(90)
        events = len(read_topic(kafka_bootstrap, topics.registry_events))
        wait_until(
            lambda: (
                (get_json(f"{streams.url}/healthz") or {}).get("registry_events_seen") == events
            ),
            60,
            "streams follows the registry's events",
        )
        time.sleep(0.2)  # outcomes strictly after the experiment started
        publish(
            kafka_bootstrap,
            topics.outcome_events,
            _outcomes("v1.0", 40, 20, 0.6) + _outcomes("v1.1", 20, 5, 0.3),
        )
        live.sent = {"v1.0": (40, 0.5, 0.6), "v1.1": (20, 0.25, 0.3)}

        def counted() -> bool:
            rows = get_json(f"{streams.url}/performance/{MT}?days=7") or []
            return {r["version"]: r["sample_count"] for r in rows} == {"v1.0": 40, "v1.1": 20}

        wait_until(counted, 60, "streams counted the outcomes")
        client.retrain(MT)
        yield live
    finally:
        client.close()
        registry.stop()
        streams.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"no chromium at {CHROMIUM} (scripts/system-deps.sh installs it)"
        # `make test` installs it (scripts/system-deps.sh): missing means set-up is broken.
        pytest.fail(message, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; its screenshot is saved under test-artifacts/dashboard/ whatever happens."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()


def wait_refreshes(page: Any, more_than: int = 0, timeout: float = 15_000) -> int:
    page.wait_for_function(
        f"Number(document.body.dataset.refreshes) > {more_than}", timeout=timeout
    )
    return int(page.evaluate("Number(document.body.dataset.refreshes)"))
