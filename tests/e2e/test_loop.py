"""The whole loop, as three real service processes on the real broker: the story `make run` tells.

outcome events -> retrain command at exactly 1,000 samples -> model-deployed -> v1.0 production ->
a broken candidate registered at 0.1 and rolled back by the A/B test (docs/decision.md) -> a healthy
candidate promoted 0.1 -> 0.5 -> 1.0. Generous time bounds, exact assertions on what happened.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from contracts.events import (
    ModelDeployed,
    RegistryCommandIssued,
    RegistryEventOccurred,
    RegistryEventType,
    RetrainReason,
    RetrainRequested,
)
from relearn.demo import DemoConfig, Story

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def registry_events(story: Story, kind: RegistryEventType) -> list[RegistryEventOccurred]:
    return [
        s.event
        for s in story.timeline.history  # type: ignore[union-attr]
        if isinstance(s.event, RegistryEventOccurred) and s.event.type is kind
    ]


def of_type(story: Story, cls: type) -> list:
    return [s.event for s in story.timeline.history if isinstance(s.event, cls)]  # type: ignore[union-attr]


def test_outcomes_to_rollback_and_promotion(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    console = Console(record=True, width=160, file=(tmp_path / "story.txt").open("w"))
    # The story's own bounds fit pytest's 600 s (pyproject.toml), which also covers starting the
    # session broker when this test is the first to need it and stopping the three services.
    story = Story(
        DemoConfig(run_dir=tmp_path / "runs", rate=400.0, step_timeout=300, total_timeout=480),
        console,
    )
    code = story.run()
    told = console.export_text()
    assert code == 0, told

    first_retrain = of_type(story, RetrainRequested)[0]
    assert first_retrain.reason is RetrainReason.SAMPLE_THRESHOLD
    assert first_retrain.new_samples == 1000
    assert first_retrain.baseline_version is None

    deployed = of_type(story, ModelDeployed)
    assert deployed[0].command_id == first_retrain.command_id
    assert deployed[0].metrics.parameters == 13441

    registered = registry_events(story, RegistryEventType.VERSION_REGISTERED)
    assert [(e.version, e.status) for e in registered[:3]] == [
        ("v1.0", "production"),
        ("v1.1", "staging"),
        ("v1.2", "staging"),
    ]
    assert registered[0].weights == {"v1.0": 1.0}
    assert registered[1].weights == pytest.approx({"v1.0": 0.9, "v1.1": 0.1})
    broken = next(d for d in deployed if (d.metrics.model_extra or {}).get("fault_injected") == 1.0)
    assert broken.sha256 not in {deployed[0].sha256}

    rollbacks = [c for c in of_type(story, RegistryCommandIssued) if c.type.value == "rollback"]
    assert [(c.version, c.issued_by) for c in rollbacks] == [("v1.1", "auto")]
    evidence = rollbacks[0].evidence or {}
    assert evidence["verdict"] == "rollback"
    assert int(evidence["matured_candidate"]) >= 450  # the plan's first look, matured outcomes

    rolled_back = registry_events(story, RegistryEventType.VERSION_ROLLED_BACK)
    assert [(e.version, e.weights) for e in rolled_back] == [("v1.1", {"v1.0": 1.0})]

    ramp = [
        e.weights.get("v1.2")
        for e in registry_events(story, RegistryEventType.TRAFFIC_CHANGED)
        if "v1.2" in e.weights
    ]
    assert ramp[0] == pytest.approx(0.1) and 0.5 in [pytest.approx(w) for w in ramp]
    promoted = registry_events(story, RegistryEventType.VERSION_PROMOTED)
    assert [(e.version, e.weights) for e in promoted] == [("v1.2", {"v1.2": 1.0})]

    statuses = {v.version: (v.status, v.weight) for v in story.versions}
    assert statuses["v1.0"] == ("archived", 0.0)
    assert statuses["v1.1"] == ("rolled_back", 0.0)
    assert statuses["v1.2"] == ("production", 1.0)

    served = {row["version"] for row in story.performance}
    assert {"v0.0", "v1.0", "v1.1", "v1.2"} <= served
    assert sum(row["sample_count"] for row in story.performance) >= 3000
