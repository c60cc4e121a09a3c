"""Alembic migrations of the registry schema (run on start-up by the SQL store)."""
