"""One store suite, run against every store: SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from contracts.events import RegistryEventOccurred, RegistryEventType, new_id
from contracts.serving import Status
from contracts.topics import TopicName
from registry import lifecycle
from registry.errors import IllegalTransition
from registry.store import RegistryStore
from tests.registry.conftest import DeploymentFactory

MT = "calling_score"
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def register(store: RegistryStore, deployed):  # type: ignore[no-untyped-def]
    return store.apply(
        MT, deployed.deployment_id, lambda state: lifecycle.plan_registration(state, deployed, NOW)
    )


def test_register_and_read_back_domain_objects(
    store: RegistryStore, deployment: DeploymentFactory
) -> None:
    first, second = deployment(), deployment(seed=1, version_hint="v2.0")
    register(store, first)
    result = register(store, second)
    assert not result.duplicate and result.outcome == "applied"
    versions = store.versions(MT)
    assert [(v.version, v.status, v.weight) for v in versions] == [
        ("v1.0", Status.PRODUCTION, 0.9),
        ("v2.0", Status.STAGING, 0.1),
    ]
    one = store.version(MT, "v2.0")
    assert one is not None and one.sha256 == second.sha256 and one.metrics["test_loss"] == 0.025
    assert one.created_at.tzinfo is not None and one.deployment_id == second.deployment_id
    revision, serving = store.serving(MT)
    assert revision == 2 and serving == {"v1.0": (0.9, first.sha256), "v2.0": (0.1, second.sha256)}
    assert store.model_types() == [MT]
    assert store.version(MT, "v9.9") is None


def test_same_deployment_id_applies_once(
    store: RegistryStore, deployment: DeploymentFactory
) -> None:
    deployed = deployment()
    register(store, deployed)
    events = store.event_count()
    again = register(store, deployed)
    assert again.duplicate and again.outcome == "applied"
    assert len(store.versions(MT)) == 1 and store.event_count() == events


def test_refused_planner_writes_nothing(
    store: RegistryStore, deployment: DeploymentFactory
) -> None:
    register(store, deployment())
    events = store.event_count()
    with pytest.raises(IllegalTransition):
        store.apply(MT, "cmd-1", lambda s: lifecycle.plan_rollback(s, MT, "v1.0", "", NOW))
    assert store.processed_outcome("cmd-1") is None and store.event_count() == events
    assert store.record_refusal(MT, "cmd-1", "illegal_transition", "no earlier version")
    assert not store.record_refusal(MT, "cmd-1", "illegal_transition", "again")
    assert store.processed_outcome("cmd-1") == "refused"


def test_outbox_keeps_events_until_marked_sent(
    store: RegistryStore, deployment: DeploymentFactory
) -> None:
    register(store, deployment())
    pending = store.unsent_events()
    assert len(pending) == 2
    first = RegistryEventOccurred.model_validate_json(pending[0].payload)
    assert first.type is RegistryEventType.VERSION_REGISTERED and first.weights == {"v1.0": 1.0}
    store.mark_sent([pending[0].id])
    assert [r.id for r in store.unsent_events()] == [pending[1].id]
    store.mark_sent([pending[1].id])
    assert store.unsent_events() == [] and store.event_count() == 2


def test_outbox_carries_commands_to_their_own_topic_in_commit_order(
    store: RegistryStore, deployment: DeploymentFactory
) -> None:
    """A manual retrain goes through the outbox too: sent in commit order with the events, to
    retrain-commands, and not counted as a registry event."""
    register(store, deployment())
    events = store.event_count()
    store.enqueue(MT, TopicName.RETRAIN_COMMANDS, b'{"command_id": "c1"}')
    pending = store.unsent_events()
    assert [r.topic for r in pending] == [
        TopicName.REGISTRY_EVENTS,
        TopicName.REGISTRY_EVENTS,
        TopicName.RETRAIN_COMMANDS,
    ]
    assert pending[-1].payload == b'{"command_id": "c1"}' and pending[-1].model_type == MT
    assert store.event_count() == events


def test_concurrent_writers_get_unique_versions(
    store: RegistryStore, deployment: DeploymentFactory
) -> None:
    """8 writers x 50 registrations: 400 distinct versions, weights still summing to 1."""
    template = deployment()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer() -> None:
        start.wait()
        try:
            for _ in range(50):
                register(store, template.model_copy(update={"deployment_id": new_id()}))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = store.versions(MT)
    assert len(versions) == 400 and len({v.version for v in versions}) == 400
    assert {v.version for v in versions} == {f"v1.{i}" for i in range(400)}
    assert abs(sum(v.weight for v in versions) - 1.0) < 1e-6
    assert sum(v.status is Status.PRODUCTION for v in versions) == 1


def test_a_second_deployment_for_one_command_is_recorded_as_ignored(
    store: RegistryStore, deployment: DeploymentFactory
) -> None:
    """A zombie trainer's second deployment: on PostgreSQL its outcome used to be refused as
    too long for its column, so the designed case was dead-lettered as unstorable."""
    first = deployment().model_copy(update={"command_id": new_id()})
    register(store, first)
    zombie = first.model_copy(update={"deployment_id": new_id()})
    result = register(store, zombie)
    assert result.outcome == lifecycle.DUPLICATE_COMMAND
    assert store.processed_outcome(zombie.deployment_id) == lifecycle.DUPLICATE_COMMAND
    assert [v.version for v in store.versions(MT)] == ["v1.0"]


def test_a_database_made_by_the_first_schema_is_upgraded_in_place(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from registry.store import open_store
    from registry.store.sql import MIGRATIONS

    engine = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text("INSERT INTO processed_messages VALUES ('m1', :mt, 'applied', '', :at)"),
            {"mt": MT, "at": NOW},
        )
    engine.dispose()
    upgraded = open_store(database_url)  # migrates to the newest revision
    try:
        assert upgraded.processed_outcome("m1") == "applied"
    finally:
        upgraded.close()
    with create_engine(database_url).begin() as connection:
        connection.execute(
            text("INSERT INTO processed_messages VALUES ('m2', :mt, :outcome, '', :at)"),
            {"mt": MT, "outcome": lifecycle.DUPLICATE_COMMAND, "at": NOW},
        )


def test_which_versions_were_production_is_backfilled_then_stored(
    database_url: str, deployment: DeploymentFactory
) -> None:
    """Rolling back production restores a version that was production, never a candidate kept
    out. Revision 0004 marks the production and archived rows of a database made before it
    (then every archived version had been production); from then on the store keeps the record."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from registry.store import open_store
    from registry.store.sql import MIGRATIONS

    engine = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        for version, status in (("v1.0", "archived"), ("v1.1", "production"), ("v1.2", "staging")):
            connection.execute(
                text(
                    "INSERT INTO model_versions (model_type, version, major, minor, status,"
                    " weight, sha256, artifact_uri, size_bytes, metrics, created_at)"
                    " VALUES ('lead_score', :v, 1, :minor, :status, 0, '', '', 0, '{}', :at)"
                ),
                {"v": version, "minor": int(version[-1]), "status": status, "at": NOW},
            )
    engine.dispose()
    opened = open_store(database_url)  # migrates to the newest revision
    try:
        assert {v.version: v.was_production for v in opened.versions("lead_score")} == {
            "v1.0": True,
            "v1.1": True,
            "v1.2": False,
        }
        register(opened, deployment())  # v1.0 production
        register(opened, deployment(seed=1))  # v1.1 staging
        opened.apply(MT, "p", lambda s: lifecycle.plan_promote(s, MT, "v1.1", None, "won", NOW))
        register(opened, deployment(seed=2))  # v1.2 staging, then kept out
        opened.apply(MT, "k", lambda s: lifecycle.plan_keep_production(s, MT, "v1.2", "", NOW))
        register(opened, deployment(seed=3))  # v1.3 staging, then promoted and rolled back
        opened.apply(MT, "q", lambda s: lifecycle.plan_promote(s, MT, "v1.3", None, "won", NOW))
        opened.apply(MT, "r", lambda s: lifecycle.plan_rollback(s, MT, "v1.3", "bad", NOW))
        assert [(v.version, v.status, v.was_production) for v in opened.versions(MT)] == [
            ("v1.0", Status.ARCHIVED, True),
            ("v1.1", Status.PRODUCTION, True),
            ("v1.2", Status.ARCHIVED, False),
            ("v1.3", Status.ROLLED_BACK, True),
        ]
    finally:
        opened.close()
