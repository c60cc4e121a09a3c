"""Which optional installs (pip extras) a command needs, and the error when one is missing."""

from __future__ import annotations

import importlib.util

from relearn.errors import RelearnError

# The packages only `relearn[trainer]` brings (see pyproject.toml); streams and registry need none.
TRAINER_MODULES = ("torch", "onnx", "onnxscript")


class MissingExtraError(RelearnError):
    """A command needs a pip extra that is not installed."""


def require_trainer_extra(command: str) -> None:
    """Raise a clear error when `relearn[trainer]` is not installed (a slim install)."""
    missing = [name for name in TRAINER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"`relearn {command}` needs the trainer extra ({', '.join(missing)} not installed): "
            "pip install 'relearn[trainer]'"
        )
