"""`relearn train`: the manual path from JSON and Parquet, --deploy, and --from-lineage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts.events import Lineage, ModelDeployed
from contracts.topics import Topics
from relearn.cli import main
from tests.training.kafka_helpers import produce_samples, read_topic
from training.export import score_onnx
from training.files import write_parquet
from training.pipeline import package_version
from training.samples import KafkaSampleReader
from training.service import build_pipeline
from training.settings import TrainerSettings
from training.synthetic import synthetic_samples


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("RELEARN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RELEARN_REGISTRY_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("RELEARN_GATE_ATTEMPTS", "1")  # no registry here: no need to retry
    monkeypatch.setenv("RELEARN_TRAINING_MIN_SAMPLES", "100")
    monkeypatch.setenv("RELEARN_TRAINING_BATCH_SIZE", "64")
    monkeypatch.setenv("RELEARN_FAULTS_DIR", str(tmp_path / "faults"))
    return tmp_path


def _lines(out: str) -> dict[str, str]:
    return {line.split(":")[0]: line for line in out.splitlines()}


def test_manual_path_from_json_prints_the_old_metric_lines(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = synthetic_samples(300, "calling_score", seed=3)
    data = cli_env / "samples.json"
    data.write_text(json.dumps(samples + samples[:10]))
    output = cli_env / "out" / "model.onnx"
    code = main(["train", "--model-type", "calling_score", "--data", str(data), "--output", str(output),
                 "--max-epochs", "4"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    lines = _lines(out)
    for label in ("Test Loss", "Val Loss", "Train Loss"):
        assert lines[label].startswith(f"{label}: 0.") and len(lines[label].split(": ")[1]) == 6
    assert "13441 parameters" in out
    assert "Early stopping at epoch" in out or "No early stopping (4 epochs)" in out
    assert "300 samples" in out and "10 duplicates" in out
    rows = np.asarray([s["features"] for s in samples[:5]], dtype=np.float32)
    assert score_onnx(output.read_bytes(), rows).shape == (5,)


@pytest.mark.integration
def test_manual_path_from_parquet_deploys(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("RELEARN_TOPIC_PREFIX", topic_prefix)
    data = cli_env / "samples.parquet"
    write_parquet(data, synthetic_samples(250, "outcome_prediction", seed=4))
    monkeypatch.chdir(cli_env)
    argv = ["train", "--model-type", "outcome_prediction", "--data", str(data), "--deploy",
            "--max-epochs", "3"]  # fmt: skip
    # --deploy with no registry to gate against: the default policy refuses ...
    assert main(argv) == 2
    assert "Rejected: gate_unavailable: registry_unreachable" in capsys.readouterr().out
    # ... and the deploy policy deploys ungated, saying so
    monkeypatch.setenv("RELEARN_GATE_UNAVAILABLE_POLICY", "deploy")
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Gate: registry_unreachable" in out and "passed ungated" in out
    assert (cli_env / "outcome_prediction.onnx").exists()  # the default --output
    (event,) = [
        ModelDeployed.model_validate_json(m.value() or b"")
        for m in read_topic(kafka_bootstrap, topics.model_deployed, 1)
    ]
    assert (
        event.command_id is None
        and event.lineage is None
        and event.model_type == "outcome_prediction"
    )
    assert f"Deployed: deployment_id {event.deployment_id}" in out
    assert event.artifact_uri.startswith((cli_env / "state" / "artifacts").resolve().as_uri())


@pytest.mark.parametrize(
    "model_type, content, reason",
    [
        ("nope", "[]", "unknown_model_type"),
        ("calling_score", "{not json", "invalid_data"),
        ("calling_score", "[]", "too_few_samples"),
    ],
)
def test_manual_path_bad_input(
    cli_env: Path, capsys: pytest.CaptureFixture[str], model_type: str, content: str, reason: str
) -> None:
    data = cli_env / "bad.json"
    data.write_text(content)
    assert main(["train", "--model-type", model_type, "--data", str(data)]) == 2
    assert f"Rejected: {reason}" in capsys.readouterr().out


@pytest.fixture
def stand_in_registry() -> Iterator[tuple[str, dict[str, Any]]]:
    """Serves GET /models/{type}/versions/{v} from a dict, like the registry's route does."""
    records: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = records.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {"detail": "not found"}).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", records
    finally:
        server.shutdown()


@pytest.mark.integration
def test_from_lineage_reproduces_the_recorded_metrics(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    stand_in_registry: tuple[str, dict[str, Any]],
) -> None:
    url, records = stand_in_registry
    for key, value in {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "RELEARN_TOPIC_PREFIX": topic_prefix,
                       "RELEARN_REGISTRY_URL": url, "RELEARN_TRAINING_MAX_EPOCHS": "4",
                       # the stand-in answers no /models: let the recorded candidate through
                       "RELEARN_GATE_UNAVAILABLE_POLICY": "deploy"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    produce_samples(
        kafka_bootstrap, topics.training_samples, synthetic_samples(200, "calling_score", seed=8)
    )
    settings = TrainerSettings()
    pipeline = build_pipeline(settings, faults=False)
    spec = pipeline.spec_for("calling_score")
    read = KafkaSampleReader(kafka_bootstrap, topics.training_samples).read_window(
        spec, datetime.now(UTC) - timedelta(days=1)
    )
    candidate = pipeline.build(spec, read.dataset)
    lineage = Lineage(topic=read.topic, offsets=read.lineage_offsets(), seed=settings.training_seed,
                      package_version=package_version())  # fmt: skip
    path = "/models/calling_score/versions/v1.0"
    # the registry's whole answer (registry.views.VersionOut), as the typed client reads it
    records[path] = {
        "model_type": "calling_score", "version": "v1.0", "status": "production", "weight": 1.0,
        "lineage": lineage.model_dump(mode="json"), "metrics": candidate.metrics,
        "baseline_metrics": None, "sha256": "0" * 64, "artifact_uri": "file:///v1.0.onnx",
        "size_bytes": 1, "created_at": "2026-12-01T00:00:00Z", "deployment_id": None,
        "command_id": None,
    }  # fmt: skip
    # another environment's hyperparameters do not matter: the recorded ones are used
    monkeypatch.setenv("RELEARN_TRAINING_MAX_EPOCHS", "1")
    assert main(["train", "--from-lineage", "calling_score", "v1.0"]) == 0
    assert "Reproduced exactly" in capsys.readouterr().out

    records[path] = {**records[path],
                     "metrics": {**candidate.metrics, "test_loss": candidate.metrics["test_loss"] + 1e-9}}  # fmt: skip
    assert main(["train", "--from-lineage", "calling_score", "v1.0"]) == 3
    assert "Not reproduced: ['test_loss'] differ" in capsys.readouterr().out
