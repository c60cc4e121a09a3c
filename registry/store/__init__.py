"""Registry stores, chosen by URL scheme: `open_store("sqlite:///...")`, `open_store("postgresql://...")`."""

from __future__ import annotations

from registry.store.base import ApplyResult, Planner, RegistryStore


def open_store(url: str) -> RegistryStore:
    """The store for a database URL (migrated to the newest schema)."""
    if url.startswith(("sqlite", "postgresql")):
        from registry.store.sql import SqlRegistryStore

        return SqlRegistryStore(url)
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


__all__ = ["ApplyResult", "Planner", "RegistryStore", "open_store"]
