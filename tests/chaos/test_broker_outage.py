"""Priority 5: the only broker SIGKILLed for a while (CI 10 s, full 30 s) and restarted while the
streams worker and the registry run: both reconnect by themselves and nothing is lost.

A dedicated broker on free ports (never the session broker), so killing it harms no other test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bus import local_broker
from bus.admin import create_topics
from bus.clients import broker_count
from contracts.events import RegistryCommandIssued, RegistryCommandType, new_id, to_json
from contracts.topics import Topics
from streams.testing import outcome_events
from tests.chaos.harness import (
    Registry,
    ScenarioFigures,
    dedicated_cluster,
    elapsed_since,
    forwarded_ids,
    restart_node,
    size,
)
from tests.chaos.test_registry_replay import MT
from tests.chaos.test_streams_sigkill import counted
from tests.registry.conftest import make_deployment
from tests.streams.harness import get_json, produce, wait_until
from tests.streams.test_streams_on_broker import (
    _all_counted,
    _assert_outputs,
    _assert_tables_equal_truth,
    _workers,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(int(size(600, 3_600))),
]


@pytest.fixture
def own_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    layout = dedicated_cluster(tmp_path / "kafka", 1)
    try:
        bootstrap = local_broker.up(layout, timeout=180)
    except local_broker.BrokerError as exc:
        pytest.fail(f"no dedicated broker: {exc}", pytrace=False)
    try:
        yield layout, bootstrap
    finally:
        local_broker.down(layout)


def registered(registry: Registry, model_type: str = MT) -> int:
    return len(get_json(f"{registry.url}/models/{model_type}/versions") or [])


# The registry's half of the scenario uses a model type of its own, which streams never counts:
# its candidate under A/B test cannot hold streams' retrain trigger for the counted types.
PROBE = "outage_probe"


def statuses(registry: Registry) -> dict[str, tuple[str, float]]:
    versions = get_json(f"{registry.url}/models/{PROBE}/versions") or []
    return {v["version"]: (v["status"], round(v["weight"], 6)) for v in versions}


@pytest.mark.scenario("5 single broker SIGKILL + restart")
def test_single_broker_killed_and_restarted_every_service_reconnects(
    own_broker: tuple[local_broker.ClusterLayout, str],
    tmp_path: Path,
    record_row: Callable[[ScenarioFigures], None],
) -> None:
    began = time.monotonic()
    layout, bootstrap = own_broker
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    topics = Topics(prefix)
    create_topics(bootstrap, topics, partitions=4, replication=1)
    outage = float(size(10, 30))
    messages, truth = outcome_events(int(size(8_000, 100_000)), seed=41)
    third = len(messages) // 3
    (worker,) = _workers(bootstrap, prefix, tmp_path, 1)
    probe_types = tmp_path / "model-types.yaml"
    probe_types.write_text(
        f"model_types:\n  - {{name: {PROBE}, feature_count: 23, target: outcome_score, loss: mse}}\n"
    )
    registry = Registry.for_scenario(
        bootstrap, prefix, tmp_path, RELEARN_MODEL_TYPES_FILE=str(probe_types)
    )
    artifacts = registry.state_dir / "artifacts"
    deployments = [
        make_deployment(artifacts, model_type=PROBE, seed=seed).model_copy(
            update={"deployment_id": new_id()}
        )
        for seed in (0, 1)
    ]
    # sent into the outage: the candidate v1.1 promoted, retiring v1.0 (visible in /versions)
    promote = RegistryCommandIssued(
        type=RegistryCommandType.PROMOTE,
        model_type=PROBE,
        version="v1.1",
        reason="sent during the outage",
        issued_by="chaos",
    )
    try:
        worker.start()
        registry.start()
        worker.wait_web()
        registry.wait_ready()
        produce(bootstrap, topics.outcome_events, messages[:third])
        produce(
            bootstrap, topics.model_deployed, [(PROBE.encode(), to_json(d)) for d in deployments]
        )
        wait_until(lambda: registered(registry, PROBE) == 2, 60, "two registrations")
        assert statuses(registry) == {"v1.0": ("production", 0.9), "v1.1": ("staging", 0.1)}
        before = counted(worker)

        local_broker.stop_node(layout, 1, kill=True)
        killed = time.monotonic()
        # producers keep sending into the outage (idempotent, acks=all: they buffer and retry)
        delivered = threading.Event()

        def produce_into_the_outage() -> None:
            produce(
                bootstrap,
                topics.outcome_events,
                messages[third : 2 * third],
                flush_timeout=outage + 120,
            )
            produce(
                bootstrap,
                topics.registry_commands,
                [(PROBE.encode(), to_json(promote))],
                flush_timeout=outage + 120,
            )
            delivered.set()

        during = threading.Thread(target=produce_into_the_outage, daemon=True)
        during.start()
        time.sleep(outage)
        restart_node(layout, 1)
        restarted = time.monotonic()
        wait_until(lambda: broker_count(bootstrap) >= 1, 120, "broker did not come back")
        # recovery, from the kill: streams counts beyond its count at the kill, the registry
        # applies the command sent during the outage
        wait_until(lambda: counted(worker) > before, 180, "streams never resumed")
        streams_back = elapsed_since(killed)
        wait_until(
            lambda: statuses(registry).get("v1.1") == ("production", 1.0),
            180,
            "the registry never applied the command sent during the outage",
        )
        registry_back = elapsed_since(killed)
        during.join(timeout=120)
        assert delivered.is_set(), "the producer never delivered its outage batch"
        assert statuses(registry) == {"v1.0": ("archived", 0.0), "v1.1": ("production", 1.0)}
        produce(bootstrap, topics.outcome_events, messages[2 * third :])
        wait_until(lambda: _all_counted(worker, truth), 180, "events not all counted")
        _assert_tables_equal_truth(worker, truth)
        _assert_outputs(bootstrap, topics, truth)
        ids = forwarded_ids(bootstrap, topics.training_samples, truth.valid_ids)
        assert (ids.lost, ids.duplicated, ids.unexpected) == (0, 0, 0), ids
        versions = get_json(f"{registry.url}/models/{PROBE}/versions") or []
        registered_ids = [v.get("deployment_id") for v in versions]
        assert sorted(registered_ids) == sorted(d.deployment_id for d in deployments)
        assert worker.process is not None and worker.process.poll() is None, "streams died"
        assert registry.alive, "registry died"
        record_row(
            ScenarioFigures(
                len(messages) + len(deployments) + 1,
                f"broker SIGKILL, down {restarted - killed:.0f} s",
                ids.lost,
                ids.duplicated,
                max(streams_back, registry_back),
                notes=(
                    f"from the kill: streams counting again in {streams_back} s, registry applying "
                    f"the promote sent during the outage in {registry_back} s (v1.1 production, "
                    "v1.0 archived); tables exact, deployment ids exact, no service restarted"
                ),
                seconds=elapsed_since(began),
            )
        )
    finally:
        worker.stop()
        registry.stop()
