"""The artifact store, the command ledger and the fault file."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np

from tests.training.conftest import dataset_of, spec_of
from training.artifacts import LocalArtifactStore
from training.faults import degrade, fault_path, take_fault
from training.ledger import RecordedOutcome, SqliteCommandLedger
from training.network import build_network, predict


def test_artifacts_are_content_addressed_and_atomic(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    data = b"onnx bytes"
    digest = hashlib.sha256(data).hexdigest()
    stored = store.put("calling_score", data)
    path = tmp_path / "artifacts" / "calling_score" / f"{digest}.onnx"
    assert stored.uri == path.as_uri() and stored.sha256 == digest and stored.size_bytes == 10
    assert store.get(stored.uri) == data
    assert store.put("calling_score", data) == stored  # idempotent
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind


def test_a_damaged_file_of_the_same_size_is_written_over(tmp_path: Path) -> None:
    """It used to be trusted for its size alone: the deployment then named a file whose bytes
    the registry refused, and every retrain of the same model met it again."""
    store = LocalArtifactStore(tmp_path)
    data = b"onnx bytes"
    path = Path(store.put("calling_score", data).uri[len("file://") :])
    path.write_bytes(b"onnx bytez")  # bit rot, or a torn copy: same size, other bytes
    assert store.get(store.put("calling_score", data).uri) == data


def test_concurrent_puts_of_the_same_bytes_agree(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = bytes(range(256)) * 4000
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(store.put("t", data))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.uri for r in results}) == 1
    assert store.get(results[0].uri) == data


def test_ledger_keeps_the_first_outcome_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite"
    ledger = SqliteCommandLedger(path)
    first = RecordedOutcome("c1", "deployed", "d1", "model-deployed", b"k", b'{"a":1}')
    assert ledger.outcome_of("c1") is None
    assert ledger.record(first) == first
    assert ledger.record(RecordedOutcome("c1", "rejected", "e2", "x", b"k", b"{}")) == first
    ledger.close()
    assert SqliteCommandLedger(path).outcome_of("c1") == first


def test_fault_file_is_read_once(tmp_path: Path) -> None:
    assert take_fault(tmp_path, "calling_score") is None
    fault_path(tmp_path, "calling_score").write_text("0.75\n")
    assert take_fault(tmp_path, "calling_score") == 0.75
    assert not fault_path(tmp_path, "calling_score").exists()
    assert take_fault(tmp_path, "calling_score") is None
    for bad in ("abc", "0", "1.5", "nan"):
        fault_path(tmp_path, "calling_score").write_text(bad)
        assert take_fault(tmp_path, "calling_score") is None
        assert not fault_path(tmp_path, "calling_score").exists()


def test_degrade_changes_outputs_by_strength() -> None:
    spec = spec_of("calling_score")
    rows = dataset_of(spec.name, 200).features
    baseline = predict(build_network(spec, rows, seed=1), rows)
    changes = []
    for strength in (0.05, 1.0):
        network = build_network(spec, rows, seed=1)
        degrade(network, strength, seed=1)
        changes.append(float(np.mean(np.abs(predict(network, rows) - baseline))))
    assert 0 < changes[0] < changes[1]
