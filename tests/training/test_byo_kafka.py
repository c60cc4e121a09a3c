"""A team's training script through the whole loop on the real broker, beside a broken one.

retrain command -> the script on the window (test rows held back) -> relearn's proof -> gate
against production through the registry's HTTP API -> model-deployed with the script's lineage
-> the registry registers it (the second one at 0.1); a failing script is a deployment_rejected
verdict with its stderr, and the worker goes on serving.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from contracts.events import ModelDeployed, RegistryEventOccurred, RegistryEventType
from contracts.topics import Topics
from registry.main import create_app
from registry.settings import RegistrySettings
from tests.registry.conftest import wait_for
from tests.training.kafka_helpers import (
    command,
    produce_command,
    produce_samples,
    read_topic,
    running_worker,
    trainer_settings,
)
from training.production import RegistryHttp
from training.service import build_worker
from training.synthetic import synthetic_samples

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ml" / "train_calling_score_model.py"
TOKEN = "byo-token"


def _model_types(tmp_path: Path) -> Path:
    path = tmp_path / "model_types.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model_types": [
                    {
                        "name": "team_score",
                        "feature_count": 23,
                        "target": "outcome_score",
                        "loss": "mse",
                        "trainer": {
                            "kind": "script",
                            "argv": ["{python}", str(EXAMPLE), "--data", "{data}",
                                     "--output", "{output}", "--model", "linear"],
                            "timeout_seconds": 300,
                        },
                    },
                    {
                        "name": "team_broken",
                        "feature_count": 23,
                        "target": "outcome_score",
                        "loss": "mse",
                        "trainer": {
                            "kind": "script",
                            "argv": ["{python}", "-c",
                                     "import sys; sys.exit('KeyError: tenure_days')",
                                     "{data}", "{output}"],
                        },
                    },
                ]
            }
        )
    )  # fmt: skip
    return path


def _samples(model_type: str, count: int, seed: int) -> list[dict]:
    samples = synthetic_samples(count, "calling_score", seed=seed)
    return [{**s, "model_type": model_type} for s in samples]


def test_a_team_script_deploys_through_the_loop_and_a_broken_one_is_a_verdict(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    model_types = _model_types(tmp_path)
    artifacts = tmp_path / "artifacts"
    registry_settings = RegistrySettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=topic_prefix,
        state_dir=tmp_path / "registry",
        artifact_dir=artifacts,
        api_token=TOKEN,
        registry_consumer_group=f"r-{uuid.uuid4().hex[:8]}",
        model_types_file=model_types,
    )
    settings = trainer_settings(
        kafka_bootstrap, topic_prefix, tmp_path, group_id,
        model_types_file=model_types, artifact_dir=artifacts,
    )  # fmt: skip
    produce_samples(
        kafka_bootstrap,
        topics.training_samples,
        _samples("team_score", 500, seed=3) + _samples("team_broken", 300, seed=4),
    )
    broken, first, second = command("team_broken"), command("team_score"), command("team_score")

    with TestClient(create_app(registry_settings)) as client:

        def versions() -> list[dict]:
            response = client.get("/models/team_score/versions")
            return response.json() if response.status_code == 200 else []

        worker = build_worker(settings, production=RegistryHttp("", client=client))
        with running_worker(settings, worker):
            produce_command(kafka_bootstrap, topics.retrain_commands, broken)
            produce_command(kafka_bootstrap, topics.retrain_commands, first)
            wait_for(lambda: len(versions()) == 1, 180, "v1.0 registered")
            produce_command(kafka_bootstrap, topics.retrain_commands, second)
            wait_for(lambda: len(versions()) == 2, 180, "v1.1 registered")
        registered = {v["version"]: v for v in versions()}

    # the broken script: a verdict with its reason and stderr, nothing deployed for it
    rejections = [
        RegistryEventOccurred.model_validate_json(m.value() or b"")
        for m in read_topic(kafka_bootstrap, topics.registry_events, 1, timeout=30, settle=1.0)
    ]
    rejected = [e for e in rejections if e.type is RegistryEventType.DEPLOYMENT_REJECTED]
    assert [(e.model_type, e.reason) for e in rejected] == [("team_broken", "trainer_failed")]
    details = rejected[0].details or {}
    assert details["command_id"] == broken.command_id
    assert "KeyError: tenure_days" in details["stderr_tail"]

    deployed = [
        ModelDeployed.model_validate_json(m.value() or b"")
        for m in read_topic(kafka_bootstrap, topics.model_deployed, 2, settle=1.0)
    ]
    assert [d.command_id for d in deployed] == [first.command_id, second.command_id]
    script_sha = hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    for event in deployed:
        assert event.model_type == "team_score" and event.input_shape == [None, 23]
        metrics = event.metrics.model_dump()
        assert metrics["test_samples"] == 50 and metrics["trainer"] == "script"
        assert {"test_loss", "val_loss", "train_loss"} <= set(metrics["reported_metrics"])
        assert event.lineage is not None and event.lineage.trainer is not None
        assert event.lineage.trainer["sha256"] == script_sha
        assert event.lineage.trainer["argv"][1] == str(EXAMPLE)
    assert deployed[0].metrics.model_dump()["gate"] == "no_production"
    # the second is gated against v1.0 on the same held-back rows (same window, same seed)
    assert deployed[1].metrics.model_dump()["gate"] == "passed"
    assert deployed[1].baseline_metrics is not None
    assert deployed[1].baseline_metrics["version"] == "v1.0"

    assert (registered["v1.0"]["status"], registered["v1.0"]["weight"]) == ("production", 0.9)
    assert (registered["v1.1"]["status"], registered["v1.1"]["weight"]) == ("staging", 0.1)
    assert registered["v1.1"]["sha256"] == deployed[1].sha256
    assert registered["v1.1"]["lineage"]["trainer"]["sha256"] == script_sha
