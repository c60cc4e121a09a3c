"""Debian's Prometheus scrapes a running streams worker, registry and trainer (loopback only)
while outcome events and a retrain flow: what its HTTP API reports agrees with the registry's
tables, streams' tables and the topics."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from contracts.events import RegistryEventOccurred
from contracts.topics import Topics
from relearn.supervisor import ServiceSpec, Supervisor, relearn_argv
from streams.testing import outcome_events
from tests.conftest import free_port
from tests.deploy.environments import ROOT
from tests.streams import harness as streams_harness
from tests.training.kafka_helpers import command, produce_command, produce_samples, read_topic
from training.synthetic import synthetic_samples

pytestmark = pytest.mark.integration

RULES = ROOT / "deploy" / "prometheus" / "rules" / "relearn.yml"
MT = "calling_score"
ROUTES = 5
OUTCOME_EVENTS = 2000


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def services(
    kafka_bootstrap: str, topics: Topics, group_id: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """A streams worker, the registry and a trainer of this test's own, as `relearn up` starts
    them."""
    registry_port, trainer_port, streams_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEARN_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RELEARN_TOPIC_PREFIX": topics.prefix,
        "RELEARN_STATE_DIR": str(tmp_path / "state"),
        "RELEARN_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "RELEARN_REGISTRY_PORT": str(registry_port),
        "RELEARN_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
        "RELEARN_REGISTRY_CONSUMER_GROUP": f"{group_id}-registry",
        "RELEARN_TRAINER_GROUP_ID": f"{group_id}-trainer",
        "RELEARN_TRAINER_WEB_PORT": str(trainer_port),
        "RELEARN_STREAMS_WEB_PORT": str(streams_port),
        "RELEARN_STREAMS_APP_ID": f"{group_id}-streams",
        # streams counts the outcome events below without sending a retrain of its own (the
        # trainer's counters are the test's one command's)
        "RELEARN_RETRAIN_SAMPLE_THRESHOLD": "1000000",
        "RELEARN_TRAINING_MIN_SAMPLES": "100",
        "RELEARN_TRAINING_MAX_EPOCHS": "4",
        "RELEARN_TRAINING_PATIENCE": "2",
        "RELEARN_TRAINING_BATCH_SIZE": "64",
    }
    supervisor = Supervisor(
        [ServiceSpec(name, relearn_argv(name)) for name in ("registry", "trainer", "streams")],
        base_env=env,
        log_dir=tmp_path / "logs",
    )
    supervisor.start()
    urls = {
        "registry": f"http://127.0.0.1:{registry_port}",
        "trainer": f"http://127.0.0.1:{trainer_port}",
        "streams": f"http://127.0.0.1:{streams_port}",
    }
    try:
        for name, url in urls.items():
            wait_until(lambda url=url: answers(f"{url}/readyz"), 60, f"{name} ready")
        yield urls
    finally:
        supervisor.stop()


@pytest.fixture
def prometheus(services: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Prometheus on a free loopback port, scraping the three every second, with our rules."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install prometheus (scripts/system-deps.sh)"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": f"relearn-{name}",
                "static_configs": [{"targets": [url.removeprefix("http://")]}],
            }
            for name, url in services.items()
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/-/ready"), 30, "prometheus ready")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def query(prometheus: str, expression: str) -> float | None:
    """The value of an expression with one result (None when it has none yet)."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5)
    result = answer.json()["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def settles_at(prometheus: str, expression: str, expected: float, timeout: float = 20) -> None:
    """Scrapes come every second: wait for Prometheus to have seen the expected value."""
    seen: list[float | None] = []

    def agrees() -> bool:
        seen.append(query(prometheus, expression))
        return seen[-1] == expected

    try:
        wait_until(agrees, timeout, expression)
    except AssertionError:
        pytest.fail(f"{expression}: Prometheus says {seen[-1]}, the system {expected}")


def test_scraped_counters_agree_with_the_tables_and_the_topics(
    kafka_bootstrap: str, topics: Topics, services: dict[str, str], prometheus: str
) -> None:
    started = time.monotonic()
    settles_at(prometheus, 'sum(up{job=~"relearn-.*"})', 3)

    produce_samples(kafka_bootstrap, topics.training_samples, synthetic_samples(300, MT, seed=8))
    produce_command(kafka_bootstrap, topics.retrain_commands, command(MT))
    # no outcome_prediction samples at all: rejected (too_few_samples)
    produce_command(kafka_bootstrap, topics.retrain_commands, command("outcome_prediction"))
    registry = services["registry"]
    wait_until(lambda: httpx.get(f"{registry}/models/{MT}/versions", timeout=5).json(), 60, "v1.0")
    for subject in range(ROUTES):
        assert httpx.get(f"{registry}/models/{MT}/route", params={"subject_id": subject}).json()

    # what the topics and the registry say
    deployed = read_topic(kafka_bootstrap, topics.model_deployed, 1, settle=1.0)
    versions = httpx.get(f"{registry}/models/{MT}/versions", timeout=5).json()
    weights = httpx.get(f"{registry}/models/{MT}", timeout=5).json()["weights"]
    events = [
        RegistryEventOccurred.model_validate_json(m.value() or b"")
        for m in read_topic(kafka_bootstrap, topics.registry_events, 2, settle=2.0)
    ]
    trainer_rejections = [e for e in events if e.type == "deployment_rejected"]
    assert len(deployed) == 1 and [v["version"] for v in versions] == ["v1.0"]
    assert [e.reason for e in trainer_rejections] == ["too_few_samples"]

    # what Prometheus scraped
    settles_at(prometheus, 'sum(relearn_trainer_commands_total{status="published"})', len(deployed))
    settles_at(prometheus, "sum(relearn_trainer_rejections_total)", len(trainer_rejections))
    settles_at(
        prometheus,
        'relearn_trainer_rejections_total{model_type="outcome_prediction",reason="too_few_samples"}',
        1,
    )
    settles_at(prometheus, "max(relearn_trainer_consecutive_rejections)", 1)
    settles_at(prometheus, f'relearn_trainer_samples_read_total{{model_type="{MT}"}}', 300)
    settles_at(
        prometheus,
        f'relearn_trainer_phase_duration_seconds_count{{model_type="{MT}",phase="proof"}}',
        1,
    )
    settles_at(
        prometheus,
        f'relearn_registry_versions_registered_total{{model_type="{MT}"}}',
        len(versions),
    )
    settles_at(prometheus, f'sum(relearn_registry_versions{{model_type="{MT}"}})', len(versions))
    for version, weight in weights.items():
        settles_at(
            prometheus,
            f'relearn_registry_traffic_weight{{model_type="{MT}",version="{version}"}}',
            weight,
        )
    settles_at(prometheus, f'relearn_registry_routes_total{{model_type="{MT}"}}', ROUTES)
    # registry-events holds the registry's own events (its outbox) and the trainer's rejections
    settles_at(
        prometheus,
        "relearn_registry_events_published_total",
        len(events) - len(trainer_rejections),
    )
    settles_at(prometheus, "relearn_registry_outbox_unsent", 0)
    _streams_counters_agree(kafka_bootstrap, topics, services["streams"], prometheus)
    # the alert rules evaluate against these series without error; none fires for a healthy loop
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert rules and all(rule["health"] == "ok" for g in rules for rule in g["rules"]), rules
    firing = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    assert [a for a in firing if a["state"] == "firing"] == []
    assert time.monotonic() - started < 90


def _streams_counters_agree(bootstrap: str, topics: Topics, streams: str, prometheus: str) -> None:
    """Outcome events through streams: its scraped counters against its topics and tables."""
    messages, truth = outcome_events(OUTCOME_EVENTS, seed=31)
    streams_harness.produce(bootstrap, topics.outcome_events, messages)

    def counted() -> bool:
        views = [
            httpx.get(f"{streams}/samples/{model_type}", timeout=5) for model_type in truth.per_type
        ]
        return all(
            view.status_code == 200 and view.json()["new_samples"] == truth.per_type[model_type]
            for view, model_type in zip(views, truth.per_type, strict=True)
        )

    wait_until(counted, 90, "streams counted every outcome event")
    samples = streams_harness.read_topic(bootstrap, topics.training_samples)
    forwarded = [m for m in samples if dict(m.headers() or []).get("source.offset") is not None]
    dead = streams_harness.read_topic(bootstrap, topics.outcome_events_dlq)
    retrains = streams_harness.read_topic(bootstrap, topics.retrain_commands)
    assert len(forwarded) == len(truth.valid_ids) and len(dead) == truth.invalid > 0
    outcome = f'topic="{topics.outcome_events}"'
    settles_at(prometheus, f"relearn_streams_events_consumed_total{{{outcome}}}", len(messages))
    settles_at(
        prometheus,
        f'relearn_streams_events_consumed_total{{topic="{topics.training_samples}"}}',
        len(samples),
    )
    settles_at(prometheus, "sum(relearn_streams_events_forwarded_total)", len(forwarded))
    settles_at(prometheus, "sum(relearn_streams_dead_letters_total)", len(dead))
    settles_at(prometheus, "sum(relearn_streams_duplicates_dropped_total)", truth.duplicates)
    # the test's own two commands are on retrain-commands; streams sent none of its own
    assert len(retrains) == 2
    settles_at(prometheus, "sum(relearn_streams_retrain_commands_total)", 0)
    for model_type, count in truth.per_type.items():
        settles_at(prometheus, f'relearn_streams_new_samples{{model_type="{model_type}"}}', count)
    settles_at(prometheus, "sum(relearn_streams_consumer_lag)", 0)
    settles_at(prometheus, "sum(relearn_streams_commits_refused_total)", 0)
