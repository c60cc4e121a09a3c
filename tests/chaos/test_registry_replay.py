"""Priority 4: the registry SIGKILLed between its database commit and its offset commit, then its
input topics replayed 3 times: the database is unchanged and every version is unique.

tests/registry/test_chaos.py proves a mid-stream kill registers each deployment once; this adds
operator commands, proves the kill landed inside the commit window, and replays everything.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts.events import RegistryCommandIssued, RegistryCommandType, new_id, to_json
from contracts.topics import Topics
from registry.store import open_store
from tests.chaos.harness import Registry, ScenarioFigures, elapsed_since, size
from tests.conftest import free_port
from tests.registry.conftest import make_deployment
from tests.streams.harness import consumer_lag, produce, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(int(size(600, 3_600)))]

MT = "calling_score"
REPLAYS = 3


def snapshot(registry: Registry) -> dict[str, Any]:
    """Everything the database decides: versions, statuses, weights, refusals, the outbox size."""
    store = open_store(f"sqlite:///{registry.state_dir / 'registry.db'}")
    try:
        versions = sorted(
            (v.version, v.status, round(v.weight, 9), v.deployment_id, v.sha256)
            for v in store.versions(MT)
        )
        return {"versions": versions, "serving": store.serving(MT), "events": store.event_count()}
    finally:
        store.close()


def settled(bootstrap: str, group: str, topics: Topics) -> bool:
    return all(
        consumer_lag(bootstrap, f"{group}.{name}", topic) == 0
        for name, topic in (
            ("model-deployed", topics.model_deployed),
            ("registry-commands", topics.registry_commands),
        )
    )


@pytest.mark.scenario("4 registry SIGKILL in commit window + 3 replays")
def test_registry_killed_in_commit_window_then_inputs_replayed_three_times(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    tmp_path: Path,
    record_row: Callable[[ScenarioFigures], None],
) -> None:
    began = time.monotonic()
    count = int(size(120, 1_000))
    template = make_deployment(tmp_path / "state" / "artifacts")
    deployments = [template.model_copy(update={"deployment_id": new_id()}) for _ in range(count)]
    group = f"chaos-{uuid.uuid4().hex[:8]}"
    registry = Registry(
        kafka_bootstrap,
        topic_prefix,
        free_port(),
        tmp_path / "state",
        RELEARN_REGISTRY_CONSUMER_GROUP=group,
    )
    try:
        registry.start().wait_ready()
        produce(
            kafka_bootstrap, topics.model_deployed, [(MT.encode(), to_json(d)) for d in deployments]
        )
        db = f"sqlite:///{registry.state_dir / 'registry.db'}"
        wait_until(lambda: len(open_store(db).versions(MT)) >= 10, 60, "some registrations")
        registry.kill()  # offsets are committed every few seconds; the database at once
        killed = time.monotonic()
        in_db = len(open_store(db).versions(MT))
        lag_at_kill = consumer_lag(
            kafka_bootstrap, f"{group}.model-deployed", topics.model_deployed
        )
        committed = count - lag_at_kill
        assert committed < in_db, f"kill missed the window: {committed} committed, {in_db} in db"
        registry.start().wait_ready()
        # recovered: answering and registering beyond what the database held at the kill
        wait_until(lambda: len(open_store(db).versions(MT)) > in_db, 120, "no new registration")
        recovery = elapsed_since(killed)
        wait_until(lambda: len(open_store(db).versions(MT)) == count, 120, "all registrations")
        # One candidate at a time (#13): each deployment replaced the untested one before it, so
        # v1.0 is production and the newest version the one live candidate.
        live = {v.version: v for v in open_store(db).versions(MT) if v.weight > 0}
        candidate = next(name for name, v in live.items() if "staging" in str(v.status))
        assert set(live) == {"v1.0", candidate}, live
        commands = [
            RegistryCommandIssued(
                command_id=new_id(),
                type=RegistryCommandType.PROMOTE,
                model_type=MT,
                version="v1.0",
                reason="chaos",
                issued_by="chaos",
            ),
            RegistryCommandIssued(
                command_id=new_id(),
                type=RegistryCommandType.PROMOTE,
                model_type=MT,
                version=candidate,
                weights={candidate: 0.5, "v1.0": 0.5},
                reason="ramp",
                issued_by="chaos",
            ),
            RegistryCommandIssued(
                command_id=new_id(),
                type=RegistryCommandType.ROLLBACK,
                model_type=MT,
                version="v1.1",  # already rolled back when v1.2 replaced it: refused, no change
                reason="chaos",
                issued_by="auto",
            ),
            RegistryCommandIssued(
                command_id=new_id(),
                type=RegistryCommandType.PROMOTE,
                model_type=MT,
                version=candidate,
                reason="chaos",
                issued_by="chaos",
            ),
        ]
        produce(
            kafka_bootstrap, topics.registry_commands, [(MT.encode(), to_json(c)) for c in commands]
        )
        wait_until(lambda: settled(kafka_bootstrap, group, topics), 60, "commands applied")
        time.sleep(1.0)  # the outbox publisher drains after the commit
        before = snapshot(registry)
        statuses = {v[0]: str(v[1]) for v in before["versions"]}
        assert "production" in statuses[candidate] and "rolled_back" in statuses["v1.1"], statuses
        assert "production" not in statuses["v1.0"], statuses
        registry.kill()
        for replay in range(REPLAYS):  # a fresh consumer group reads both topics from offset 0
            replay_group = f"{group}-replay{replay}"
            registry = Registry(
                kafka_bootstrap,
                topic_prefix,
                registry.port,
                tmp_path / "state",
                RELEARN_REGISTRY_CONSUMER_GROUP=replay_group,
            )
            registry.start().wait_ready()
            wait_until(
                lambda g=replay_group: settled(kafka_bootstrap, g, topics),
                120,
                f"replay {replay} consumed",
            )
            registry.kill()
            assert snapshot(registry) == before, f"replay {replay} changed the database"
        versions = Counter(v[0] for v in before["versions"])
        found = Counter(v[3] for v in before["versions"])
        lost = len({d.deployment_id for d in deployments} - set(found))
        doubled = sum(n - 1 for n in found.values()) + sum(n - 1 for n in versions.values())
        assert lost == 0 and doubled == 0, (lost, doubled)
        record_row(
            ScenarioFigures(
                count + len(commands),
                f"1 SIGKILL ({in_db} in db, {committed} committed), 3 full replays",
                lost,
                doubled,
                recovery,
                notes=(
                    f"lost/duplicated by deployment id and version; {before['events']} registry "
                    "events in the outbox before and after the replays; the 4 commands' statuses "
                    "asserted"
                ),
                seconds=elapsed_since(began),
            )
        )
    finally:
        registry.stop()
