"""contracts/topics.py says who writes and reads each topic; the code obeys it where a scan can tell."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from contracts.events import RegistryEventType, RetrainReason
from contracts.topics import (
    CONTRACTS,
    REGISTRY_EVENT_WRITER,
    RETRAIN_REASON_WRITER,
    Party,
    TopicName,
    Topics,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "streams": Party.STREAMS,
    "training": Party.TRAINER,
    "registry": Party.REGISTRY,
    "simulator": Party.SIMULATOR,
    "relearn": Party.CLI,
}
# CLI commands that run a service's own code in the foreground.
FILES = {
    "relearn/commands/train.py": Party.TRAINER,
    "relearn/commands/simulate.py": Party.SIMULATOR,
}
# `Topics.<property>` -> topic: the way code names a deployed topic.
PROPERTIES = {
    name: TopicName(Topics().__getattribute__(name))
    for name, value in vars(Topics).items()
    if isinstance(value, property)
}


def _modules() -> Iterator[tuple[str, Party, ast.AST]]:
    for package, party in PACKAGES.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            yield relative, FILES.get(relative, party), ast.parse(path.read_text())


def _enum_member(node: ast.AST, enum: str) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == enum:
            return node.attr
    return None


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_every_event_type_and_reason_has_one_writer_that_may_write_its_topic() -> None:
    assert set(REGISTRY_EVENT_WRITER) == {t.value for t in RegistryEventType}
    assert set(RETRAIN_REASON_WRITER) == {r.value for r in RetrainReason}
    events = CONTRACTS[TopicName.REGISTRY_EVENTS]
    assert set(REGISTRY_EVENT_WRITER.values()) == events.writers
    assert set(RETRAIN_REASON_WRITER.values()) == CONTRACTS[TopicName.RETRAIN_COMMANDS].writers
    assert set(CONTRACTS) == set(TopicName)


def test_code_names_only_the_topics_its_service_writes_or_reads() -> None:
    offenders = []
    for path, party, tree in _modules():
        for node in ast.walk(tree):
            topic = None
            if isinstance(node, ast.Attribute) and node.attr in PROPERTIES:
                topic = PROPERTIES[node.attr]
            elif (member := _enum_member(node, "TopicName")) is not None:
                topic = TopicName[member]
            if topic is None:
                continue
            contract = CONTRACTS[topic]
            if party not in contract.writers | contract.readers:
                offenders.append(f"{path}:{node.lineno} {party} names {topic}")  # type: ignore[attr-defined]
    assert offenders == []


# What builds a registry event or a retrain command, and the enum naming which one.
BUILDERS = {
    "RegistryEventOccurred": ("RegistryEventType", RegistryEventType, REGISTRY_EVENT_WRITER),
    "_event": ("RegistryEventType", RegistryEventType, REGISTRY_EVENT_WRITER),  # registry.lifecycle
    "RetrainRequested": ("RetrainReason", RetrainReason, RETRAIN_REASON_WRITER),
}


def test_registry_events_and_retrain_commands_are_built_by_their_one_writer() -> None:
    offenders = []
    seen: set[str] = set()
    for path, party, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _called(node) not in BUILDERS:
                continue
            enum_name, enum, writer = BUILDERS[_called(node)]
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                member = _enum_member(argument, enum_name)
                if member is None:
                    continue
                value = enum[member].value
                seen.add(value)
                if writer[value] is not party:
                    offenders.append(f"{path}:{node.lineno} {party} writes {value}")
    assert offenders == []
    # the scan finds the writers at all: the trainer's rejection and the registry's retrain
    assert {"deployment_rejected", "artifact_rejected", "manual"} <= seen


def test_code_produces_only_to_the_topics_its_service_writes() -> None:
    offenders = []
    for path, party, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) == "produce" and node.args:
                for inner in ast.walk(node.args[0]):
                    if isinstance(inner, ast.Attribute) and inner.attr in PROPERTIES:
                        topic = PROPERTIES[inner.attr]
                        if party not in CONTRACTS[topic].writers:
                            offenders.append(f"{path}:{node.lineno} {party} produces to {topic}")
    assert offenders == []


def test_the_registry_sends_only_through_its_outbox() -> None:
    """What the registry writes is committed with its change, then published by the outbox: no
    HTTP handler or service method produces inline (only the outbox and the dead letters do)."""
    producing = sorted(
        path
        for path, _party, tree in _modules()
        if path.startswith("registry/")
        and any(isinstance(n, ast.Call) and _called(n) == "produce" for n in ast.walk(tree))
    )
    assert "registry/outbox.py" in producing
    assert set(producing) <= {"registry/consumers.py", "registry/outbox.py"}  # + dead letters
