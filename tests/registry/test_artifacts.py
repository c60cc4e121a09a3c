"""The artifact store refuses, with a code, every artifact it cannot read; it never raises
anything else (an unexpected error made the consumer retry the record forever)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from registry.artifacts import ArtifactStore
from registry.errors import ArtifactRejected


def test_a_good_artifact_is_verified(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model")
    digest = hashlib.sha256(b"model").hexdigest()
    path = ArtifactStore(tmp_path).verify(f"file://{tmp_path}/m.onnx", digest, 5)
    assert path == (tmp_path / "m.onnx").resolve()


@pytest.mark.parametrize(
    "name, code",
    [
        ("x" * 300 + ".onnx", "unreadable_artifact"),  # ENAMETOOLONG from the file system
        ("loop", "unsupported_uri"),  # a symlink loop: resolve() raises RuntimeError
        ("missing.onnx", "missing_artifact"),
    ],
)
def test_an_artifact_that_cannot_be_read_is_rejected_with_a_code(
    tmp_path: Path, name: str, code: str
) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    with pytest.raises(ArtifactRejected) as rejected:
        ArtifactStore(tmp_path).verify(f"file://{tmp_path}/{name}", "0" * 64, 5)
    assert rejected.value.code == code
