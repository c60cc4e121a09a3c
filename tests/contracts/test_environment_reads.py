"""Every environment variable is read through a pydantic-settings class, never os.environ/getenv."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["contracts", "bus", "streams", "training", "registry", "simulator", "relearn", "bench", "scripts"]  # fmt: skip


def _reads(tree: ast.AST) -> list[int]:
    """Lines that read one variable: os.getenv(...), os.environ.get(...), os.environ[...] as a value.
    Handing the whole environment to a child (`dict(os.environ)`, `{**os.environ}`) is no read."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target in ("os.getenv", "os.environ.get", "environ.get", "getenv"):
                lines.append(node.lineno)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if ast.unparse(node.value) in ("os.environ", "environ"):
                lines.append(node.lineno)
    return lines


def test_no_module_reads_the_environment_by_hand() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for source in SOURCES
        for path in sorted((ROOT / source).rglob("*.py"))
        for line in _reads(ast.parse(path.read_text()))
    ]
    assert offenders == []


def test_the_scan_sees_a_read() -> None:
    assert _reads(ast.parse("import os\nx = os.environ.get('A')\ny = os.environ['B']")) == [2, 3]
    assert (
        _reads(ast.parse("import os\nenv = {**os.environ, 'A': '1'}\nos.environ['C'] = 'x'")) == []
    )
