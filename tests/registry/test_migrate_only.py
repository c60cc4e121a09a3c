"""`relearn registry --migrate-only` (the Kubernetes init container) brings a database to head."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from registry.store.sql import MIGRATIONS, make_engine

ROOT = Path(__file__).resolve().parents[2]


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head() or ""


def test_migrate_only_creates_the_schema_and_exits(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RELEARN_DATABASE_URL": database_url,
        "RELEARN_STATE_DIR": str(tmp_path / "state"),
    }
    # A second run (a restarted pod) finds the schema at head and changes nothing.
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "relearn.cli", "registry", "--migrate-only"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert revision == _head_revision()
        assert {"model_versions", "outbox"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
