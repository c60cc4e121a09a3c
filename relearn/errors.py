"""The CLI's own errors: one root, shown as one line (a bug anywhere else keeps its traceback)."""

from __future__ import annotations


class RelearnError(Exception):
    """Root of the `relearn` command's errors: the message is for the person at the terminal."""
