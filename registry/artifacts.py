"""The artifact store adapter: file:// URIs confined to RELEARN_ARTIFACT_DIR, checked by sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

from registry.errors import ArtifactRejected

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Resolves and verifies artifacts; nothing outside `root` is ever read."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, artifact_uri: str) -> Path:
        """The local path of a file:// URI, refusing any path (or symlink) that leaves the root."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ArtifactRejected("unsupported_uri", f"only file:// artifact URIs: {artifact_uri}")
        try:
            path = Path(unquote(parsed.path)).resolve()
        except (ValueError, OSError, RuntimeError) as exc:  # a NUL, a symlink loop
            raise ArtifactRejected("unsupported_uri", f"not a usable path: {exc}") from exc
        if not path.is_relative_to(self.root):
            raise ArtifactRejected(
                "path_escape", f"artifact {artifact_uri} is outside the artifact directory"
            )
        return path

    def verify(self, artifact_uri: str, sha256: str, size_bytes: int | None = None) -> Path:
        """The path, once the file exists, has `size_bytes` and hashes to `sha256`."""
        path = self.resolve(artifact_uri)
        try:
            if not path.is_file():
                raise ArtifactRejected("missing_artifact", f"no artifact file at {artifact_uri}")
            size = path.stat().st_size
            if size_bytes is not None and size != size_bytes:
                raise ArtifactRejected(
                    "size_mismatch", f"artifact is {size} bytes, the event says {size_bytes}"
                )
            actual = sha256_of(path)
        except OSError as exc:  # e.g. a name too long for the file system: never readable
            raise ArtifactRejected("unreadable_artifact", f"{artifact_uri}: {exc}") from exc
        if actual != sha256:
            raise ArtifactRejected(
                "sha256_mismatch", f"artifact sha256 is {actual}, the event says {sha256}"
            )
        return path
