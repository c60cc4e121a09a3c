"""`pip install relearn` pulls no torch, and every service entry point runs without it.

The slim environment is a real venv holding exactly the distributions pyproject's base
dependencies pull in (transitively, from this environment's metadata), linked from this venv
instead of downloaded: a few seconds, and no network. The slim install itself (`pip install .`,
~300 MB against ~6 GB with torch) is measured in the README's "Running across machines".
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.deploy.environments import ROOT, closure, project_requirements, top_level_entries

TORCH_FAMILY = {"torch", "onnx", "onnxscript", "pyarrow", "triton"}

# Imports every module of the services and the CLI (training/ is the trainer's: it needs torch),
# runs `relearn --help` as the console script does, and `relearn trainer` expecting the hint.
PROBE = r"""
import importlib, importlib.util, io, pkgutil, sys, contextlib
assert importlib.util.find_spec("torch") is None, "torch is importable in the slim venv"
imported = []
for package in ("contracts", "bus", "streams", "registry", "simulator", "relearn"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if info.name == "registry.migrations.env":  # run by Alembic only, inside a migration
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
import training.settings, training.errors  # what the CLI's trainer commands read before torch
from registry.client import ModelRouter  # the client apps embed
from relearn.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
assert "streams" in out.getvalue() and "registry" in out.getvalue(), out.getvalue()
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["trainer"])
assert code == 1 and "relearn[trainer]" in err.getvalue(), (code, err.getvalue())
assert not any(name.split(".")[0] in {"torch", "onnx", "onnxscript"} for name in sys.modules)
print(len(imported), "modules imported")
"""


def test_the_base_dependencies_pull_in_no_torch() -> None:
    slim = set(closure(project_requirements()))
    assert not slim & TORCH_FAMILY, slim & TORCH_FAMILY
    assert {"onnxruntime", "confluent-kafka", "fastapi", "sqlalchemy"} <= slim
    trainer = set(closure(project_requirements("trainer")))
    assert {"torch", "onnx", "onnxscript"} <= trainer
    test = set(closure(project_requirements("test")))
    assert "torch" in test, "make test must install the trainer's dependencies too"


@pytest.mark.timeout(120)
def test_every_entry_point_runs_in_a_venv_without_torch(tmp_path: Path) -> None:
    venv = tmp_path / "slim"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    site = Path(purelib)
    ours = Path(sysconfig.get_paths()["purelib"])
    for distribution in closure(project_requirements()).values():
        for entry in top_level_entries(distribution):
            target = site / entry.name
            if entry.exists() and not target.exists():
                target.symlink_to(entry)
    linked = {path.name.split("-")[0].lower() for path in site.iterdir()}
    assert "torch" not in linked and ours != site
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL"))
    }
    env["PYTHONPATH"] = str(ROOT)  # the source tree under test, as `pip install -e .` would
    env["RELEARN_STATE_DIR"] = str(tmp_path / "state")
    done = subprocess.run(
        [str(python), "-s", "-c", PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "modules imported" in done.stdout, done.stdout
