"""Alembic environment: migrates the connection the SQL store hands over (never reads env vars)."""

from __future__ import annotations

from alembic import context

from registry.store.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` run from a shell: an explicit URL is required
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
