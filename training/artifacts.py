"""The content-addressed artifact store: `<root>/<model_type>/<sha256>.onnx`, written atomically."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    sha256: str
    size_bytes: int


class ArtifactStore(Protocol):
    """Where validated models live; the same bytes always get the same address."""

    def put(self, model_type: str, data: bytes) -> StoredArtifact: ...

    def get(self, uri: str) -> bytes: ...


class LocalArtifactStore:
    """A local directory (RELEARN_ARTIFACT_DIR): write to a temp file, fsync, rename into place."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_for(self, model_type: str, sha256: str) -> Path:
        return self.root / model_type / f"{sha256}.onnx"

    def put(self, model_type: str, data: bytes) -> StoredArtifact:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(model_type, digest)
        if not _holds(path, digest):
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                dir=path.parent, prefix=".incoming-", suffix=".onnx"
            )
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a crash
            finally:
                os.close(directory)
            log.info(
                "artifact stored model_type=%s sha256=%s bytes=%d", model_type, digest, len(data)
            )
        return StoredArtifact(uri=path.as_uri(), sha256=digest, size_bytes=len(data))

    def get(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"not a file URI: {uri}")
        return Path(url2pathname(parsed.path)).read_bytes()


def _holds(path: Path, sha256: str) -> bool:
    """True when `path` already holds exactly the bytes hashing to `sha256` (a stored model,
    written again by a retried command); a damaged file of the same size is written over."""
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest() == sha256
    except OSError:
        return False
