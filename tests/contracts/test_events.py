"""Internal events round-trip through JSON, ignore unknown fields, and topics are named in one place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.events import (
    ModelDeployed,
    RegistryCommandIssued,
    RegistryEventOccurred,
    RetrainReason,
    RetrainRequested,
    to_json,
)
from contracts.model_types import BUILT_IN, ModelTypeCatalog
from contracts.topics import TopicName, Topics

DEPLOYED_EXAMPLE = {
    "deployment_id": "6f1c1f5e-3f59-4f0c-9d4e-0a3c8f3f2d11",
    "command_id": None,
    "model_type": "calling_score",
    "artifact_uri": "file:///tmp/calling_score/" + "a" * 64 + ".onnx",
    "sha256": "a" * 64,
    "size_bytes": 54321,
    "onnx_opset": 17,
    "input_name": "features",
    "input_shape": [None, 23],
    "output_name": "score",
    "output_shape": [None, 1],
    "metrics": {
        "train_loss": 0.0234,
        "val_loss": 0.0279,
        "test_loss": 0.0257,
        "early_stopping_epoch": 42,
        "parameters": 13441,
        "train_samples": 8000,
        "val_samples": 1000,
        "test_samples": 1000,
    },
    "baseline_metrics": {"test_loss": 0.0262},
    "lineage": {
        "topic": "training-samples",
        "offsets": {"0": [0, 10000]},
        "seed": 42,
        "package_version": "0.1.0",
    },
    "trained_at": "2026-11-26T10:00:00Z",
    "version_hint": None,
}


def test_the_design_example_of_model_deployed_parses_and_round_trips() -> None:
    event = ModelDeployed.model_validate_json(json.dumps(DEPLOYED_EXAMPLE))
    assert event.metrics.parameters == 13441
    assert event.lineage is not None and event.lineage.offsets == {"0": (0, 10000)}
    assert ModelDeployed.model_validate_json(to_json(event)) == event


def test_internal_events_ignore_unknown_fields() -> None:
    raw = json.dumps({**DEPLOYED_EXAMPLE, "added_in_a_later_release": [1, 2]})
    assert ModelDeployed.model_validate_json(raw).model_type == "calling_score"


@pytest.mark.parametrize(
    "event",
    [
        RetrainRequested(
            model_type="calling_score", reason=RetrainReason.SAMPLE_THRESHOLD, new_samples=1000
        ),
        RegistryCommandIssued(type="rollback", model_type="calling_score", version="v1.1"),
        RegistryEventOccurred(
            type="traffic_changed", model_type="calling_score", weights={"v1.0": 0.9, "v1.1": 0.1}
        ),
    ],
)
def test_commands_and_events_round_trip(event) -> None:
    assert type(event).model_validate_json(to_json(event)) == event


def test_builtin_mlp_has_the_parameter_count_the_seed_reported() -> None:
    assert [spec.parameter_count() for spec in BUILT_IN] == [13441, 13441]


def test_model_types_come_from_configuration(tmp_path: Path) -> None:
    config = tmp_path / "types.yaml"
    config.write_text(
        "model_types:\n  - {name: churn, feature_count: 5, target: positive_outcome, loss: bce,"
        " hidden_layers: [8]}\n"
    )
    catalog = ModelTypeCatalog.load(config)
    assert catalog.names() == ["calling_score", "churn", "outcome_prediction"]
    assert catalog.get("churn").parameter_count() == 5 * 8 + 8 + 8 + 1


def test_topic_names_carry_the_prefix() -> None:
    topics = Topics("run1-")
    assert topics.outcome_events == "run1-outcome-events"
    assert topics.outcome_events_dlq == "run1-outcome-events.dlq"
    assert len(set(topics.all())) == len(TopicName)


def test_no_module_outside_contracts_spells_a_topic_name() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("bus", "streams", "training", "registry", "simulator", "relearn"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            for topic in TopicName:
                if f'"{topic.value}"' in text or f"'{topic.value}'" in text:
                    offenders.append(f"{path.relative_to(root)}: {topic.value}")
    assert offenders == []


@pytest.mark.parametrize(
    "model, fields",
    [
        (RetrainRequested, {"model_type": "m" * 65, "reason": "manual"}),
        (RegistryCommandIssued, {"type": "rollback", "model_type": "m" * 65}),
        (RegistryCommandIssued, {"type": "rollback", "model_type": "m", "reason": "r" * 1_001}),
    ],
)
def test_internal_free_text_is_bounded(model, fields: dict) -> None:  # type: ignore[no-untyped-def]
    """What the services republish must stay far under the broker's 1 MB limit."""
    with pytest.raises(ValueError):
        model.model_validate_json(json.dumps(fields))
