"""Priority 6: a three-node cluster (replication 3, min.insync.replicas=2, acks=all, idempotent
producers), each broker SIGKILLed in turn and restarted while traffic flows: nothing is lost and
the streams worker and the registry carry on without a restart (CI 12,000 events at 150/s, full
30,000 at 500/s).
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
from contracts.events import new_id, to_json
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
from tests.chaos.test_broker_outage import registered
from tests.chaos.test_registry_replay import MT
from tests.chaos.test_streams_sigkill import counted, produce_at_rate
from tests.registry.conftest import make_deployment
from tests.streams.harness import produce, wait_until
from tests.streams.test_streams_on_broker import (
    _all_counted,
    _assert_outputs,
    _assert_tables_equal_truth,
    _workers,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(int(size(600, 2_400)))]


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    layout = dedicated_cluster(tmp_path / "kafka", 3)
    try:
        bootstrap = local_broker.up(layout, timeout=240, heap="384m")
    except local_broker.BrokerError as exc:
        pytest.fail(f"no three-node cluster: {exc}", pytrace=False)
    try:
        yield layout, bootstrap
    finally:
        local_broker.down(layout)


@pytest.mark.scenario("6 three-node cluster, each broker SIGKILLed")
def test_each_broker_of_three_killed_in_turn_while_traffic_flows(
    cluster: tuple[local_broker.ClusterLayout, str],
    tmp_path: Path,
    record_row: Callable[[ScenarioFigures], None],
) -> None:
    began = time.monotonic()
    layout, bootstrap = cluster
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    topics = Topics(prefix)
    create_topics(bootstrap, topics, partitions=4, replication=3)
    messages, truth = outcome_events(int(size(12_000, 30_000)), seed=47)
    (worker,) = _workers(bootstrap, prefix, tmp_path, 1)
    worker.env["RELEARN_TOPIC_REPLICATION"] = "3"
    registry = Registry.for_scenario(bootstrap, prefix, tmp_path, RELEARN_TOPIC_REPLICATION="3")
    deployment = make_deployment(registry.state_dir / "artifacts").model_copy(
        update={"deployment_id": new_id()}
    )
    recoveries: list[float] = []
    registry_back = 0.0
    try:
        worker.start()
        registry.start()
        worker.wait_web(timeout=180)
        registry.wait_ready()
        producer: threading.Thread = produce_at_rate(
            bootstrap, topics.outcome_events, messages, float(size(150, 500))
        )
        for node in layout.node_ids():
            time.sleep(5)
            before = counted(worker)
            local_broker.stop_node(layout, node, kill=True)
            killed = time.monotonic()
            if node == 1:  # one version (production): more would hold streams' retrain trigger
                produce(bootstrap, topics.model_deployed, [(MT.encode(), to_json(deployment))])
                wait_until(
                    lambda: registered(registry) == 1,
                    120,
                    f"registry stalled with broker {node} down",
                )
                registry_back = elapsed_since(killed)
            # recovered: streams counts beyond its count at the kill, with the broker still down
            # (or, the producer done, has counted everything)
            wait_until(
                lambda b=before: (
                    counted(worker) > b or (not producer.is_alive() and _all_counted(worker, truth))
                ),
                120,
                f"streams made no progress with broker {node} down",
            )
            recoveries.append(elapsed_since(killed))
            time.sleep(max(0.0, killed + 5 - time.monotonic()))  # down at least 5 s
            restart_node(layout, node)
            wait_until(lambda: broker_count(bootstrap) == 3, 180, f"broker {node} not back")
        producer.join()
        # Slow but steady here: with three JVMs on two cores a streams commit (changelog flush,
        # acks=all to 3 replicas) takes tens of seconds.
        wait_until(lambda: _all_counted(worker, truth), size(300, 1_200), "events not all counted")
        _assert_tables_equal_truth(worker, truth)
        _assert_outputs(bootstrap, topics, truth)
        ids = forwarded_ids(bootstrap, topics.training_samples, truth.valid_ids)
        assert (ids.lost, ids.duplicated, ids.unexpected) == (0, 0, 0), ids
        assert worker.process is not None and worker.process.poll() is None, "streams died"
        assert registry.alive, "registry died"
        recovery = max(*recoveries, registry_back)
        record_row(
            ScenarioFigures(
                len(messages) + 1,
                "3 x broker SIGKILL + restart (one at a time)",
                ids.lost,
                ids.duplicated,
                recovery,
                notes=(
                    f"from each kill to streams counting again {recoveries} s; the registry "
                    f"registered with broker 1 down in {registry_back} s; tables exact"
                ),
                seconds=elapsed_since(began),
            )
        )
    finally:
        worker.stop()
        registry.stop()
