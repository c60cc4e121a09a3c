"""The SQLAlchemy 2 registry store (SQLite, PostgreSQL): each plan applied in one transaction."""

from __future__ import annotations

import fcntl
import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select, text, update
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contracts.topics import TopicName
from contracts.versions import parse_version
from registry.domain import ModelVersion, OutboxRecord
from registry.errors import StoreConflict, Unstorable
from registry.lifecycle import Plan
from registry.store.base import ApplyResult, Planner, RegistryStore
from registry.store.schema import ModelTypeRow, OutboxRow, ProcessedRow, VersionRow

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
MAX_ATTEMPTS = 200
MIGRATION_LOCK = 7215400001  # PostgreSQL advisory lock keys
OUTBOX_LOCK = 7215400002


def _utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # instances starting together migrate once
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory one."""
    database = url.split("///", 1)[1] if "///" in url else ""
    return Path(database) if database and database != ":memory:" else None


def _sqlite_engine(url: str) -> Engine:
    database = _sqlite_file(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so writers can BEGIN IMMEDIATE:
        # a read-then-write transaction otherwise fails with "database is locked" under contention.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class SqlRegistryStore(RegistryStore):
    """A registry store over any SQLAlchemy URL; migrates the schema when opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = make_engine(url)
        migrate(self._engine)
        self._is_sqlite = url.startswith("sqlite")
        writer = self._engine.execution_options(sqlite_immediate=True)
        self._writes = sessionmaker(writer, expire_on_commit=False)
        self._reads = sessionmaker(self._engine, expire_on_commit=False)

    # -- changes ---------------------------------------------------------------------------
    def apply(self, model_type: str, message_id: str, planner: Planner) -> ApplyResult:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._apply_once(model_type, message_id, planner, attempt)
            except DataError as exc:
                raise Unstorable(f"the database refuses this record: {exc.orig}") from exc
            except (IntegrityError, StoreConflict, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not self._is_retryable(exc):
                    raise
                if attempt == MAX_ATTEMPTS:
                    raise
                log.debug(
                    "conflict model_type=%s message_id=%s attempt=%d: %s",
                    model_type,
                    message_id,
                    attempt,
                    type(exc).__name__,
                )
                time.sleep(random.uniform(0, 0.002 * min(attempt, 20)))
        raise AssertionError("unreachable")

    def _is_retryable(self, exc: OperationalError) -> bool:
        message = str(exc.orig).lower()
        return any(s in message for s in ("locked", "busy", "serializ", "deadlock"))

    def _apply_once(
        self, model_type: str, message_id: str, planner: Planner, attempt: int
    ) -> ApplyResult:
        with self._writes() as session, session.begin():
            done = session.get(ProcessedRow, message_id)
            if done is not None:
                return ApplyResult(
                    duplicate=True, plan=None, outcome=done.outcome, attempts=attempt
                )
            # Writers of one model type queue on its row (PostgreSQL; SQLite's BEGIN IMMEDIATE
            # already serializes) instead of burning retries; the unique keys and the revision
            # compare-and-set below stay the correctness guard, e.g. for the first version.
            type_row = session.get(ModelTypeRow, model_type, with_for_update=True)
            revision = type_row.revision if type_row is not None else 0
            rows = self._version_rows(session, model_type)
            plan = planner([row.to_domain() for row in rows])
            self._write_plan(session, plan, rows)
            if plan.insert is not None or plan.changes:
                self._bump_revision(session, model_type, type_row, revision)
            session.add(
                ProcessedRow(
                    message_id=message_id,
                    model_type=model_type,
                    outcome=plan.outcome,
                    detail="",
                    processed_at=_utc_now(),
                )
            )
            session.flush()
        return ApplyResult(duplicate=False, plan=plan, outcome=plan.outcome, attempts=attempt)

    def _version_rows(self, session: Session, model_type: str) -> list[VersionRow]:
        query = (
            select(VersionRow)
            .where(VersionRow.model_type == model_type)
            .order_by(VersionRow.major, VersionRow.minor)
        )
        return list(session.scalars(query))

    def _write_plan(self, session: Session, plan: Plan, rows: Sequence[VersionRow]) -> None:
        by_version = {row.version: row for row in rows}
        for version, (status, weight) in plan.changes.items():
            row = by_version[version]
            after = row.to_domain().with_state(status, weight)  # the rules' record, as planned
            row.status = status.value
            row.weight = weight
            row.was_production = after.was_production
        if plan.insert is not None:
            new = plan.insert
            major, minor = parse_version(new.version)
            session.add(
                VersionRow(
                    model_type=new.model_type,
                    version=new.version,
                    major=major,
                    minor=minor,
                    status=new.status.value,
                    weight=new.weight,
                    sha256=new.sha256,
                    artifact_uri=new.artifact_uri,
                    size_bytes=new.size_bytes,
                    metrics=new.metrics,
                    baseline_metrics=new.baseline_metrics,
                    lineage=new.lineage,
                    created_at=new.created_at,
                    deployment_id=new.deployment_id,
                    command_id=new.command_id,
                    was_production=new.was_production,
                )
            )
        now = _utc_now()
        for event_ in plan.events:
            session.add(
                OutboxRow(
                    model_type=plan.model_type, payload=event_.model_dump_json(), created_at=now
                )
            )

    def _bump_revision(
        self, session: Session, model_type: str, row: ModelTypeRow | None, revision: int
    ) -> None:
        """Compare-and-set: a writer that committed in between makes this attempt retry."""
        if row is None:
            session.add(ModelTypeRow(name=model_type, revision=1))
            session.flush()  # a concurrent first writer fails here on the primary key
            return
        result = session.execute(
            update(ModelTypeRow)
            .where(ModelTypeRow.name == model_type, ModelTypeRow.revision == revision)
            .values(revision=revision + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StoreConflict(f"{model_type} changed concurrently (revision {revision})")

    def record_refusal(self, model_type: str, message_id: str, code: str, detail: str) -> bool:
        try:
            with self._writes() as session, session.begin():
                if session.get(ProcessedRow, message_id) is not None:
                    return False
                session.add(
                    ProcessedRow(
                        message_id=message_id,
                        model_type=model_type,
                        outcome="refused",
                        detail=f"{code}: {detail}"[:2000],
                        processed_at=_utc_now(),
                    )
                )
            return True
        except IntegrityError:
            return False
        except DataError as exc:
            raise Unstorable(f"the database refuses this record: {exc.orig}") from exc

    def processed_outcome(self, message_id: str) -> str | None:
        with self._reads() as session:
            row = session.get(ProcessedRow, message_id)
            return row.outcome if row is not None else None

    # -- reads -----------------------------------------------------------------------------
    def versions(self, model_type: str) -> list[ModelVersion]:
        with self._reads() as session:
            return [row.to_domain() for row in self._version_rows(session, model_type)]

    def version(self, model_type: str, version: str) -> ModelVersion | None:
        with self._reads() as session:
            row = session.scalar(
                select(VersionRow).where(
                    VersionRow.model_type == model_type, VersionRow.version == version
                )
            )
            return row.to_domain() if row is not None else None

    def model_types(self) -> list[str]:
        with self._reads() as session:
            return list(session.scalars(select(ModelTypeRow.name).order_by(ModelTypeRow.name)))

    def serving(self, model_type: str) -> tuple[int, dict[str, tuple[float, str]]]:
        with self._reads() as session:
            revision = (
                session.scalar(select(ModelTypeRow.revision).where(ModelTypeRow.name == model_type))
                or 0
            )
            rows = session.execute(
                select(VersionRow.version, VersionRow.weight, VersionRow.sha256).where(
                    VersionRow.model_type == model_type, VersionRow.weight > 0
                )
            )
            return revision, {version: (weight, sha) for version, weight, sha in rows}

    def enqueue(self, model_type: str, topic: TopicName, payload: bytes) -> None:
        with self._writes() as session, session.begin():
            session.add(
                OutboxRow(
                    model_type=model_type,
                    topic=topic.value,
                    payload=payload.decode(),
                    created_at=_utc_now(),
                )
            )

    def unsent_events(self, limit: int = 500) -> list[OutboxRecord]:
        with self._reads() as session:
            rows = session.execute(
                select(OutboxRow.id, OutboxRow.model_type, OutboxRow.payload, OutboxRow.topic)
                .where(OutboxRow.sent_at.is_(None))
                .order_by(OutboxRow.id)
                .limit(limit)
            )
            return [
                OutboxRecord(id=i, model_type=m, payload=p.encode(), topic=TopicName(t))
                for i, m, p, t in rows
            ]

    def mark_sent(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._writes() as session, session.begin():
            session.execute(
                update(OutboxRow).where(OutboxRow.id.in_(list(ids))).values(sent_at=_utc_now())
            )

    @contextmanager
    def publishing(self) -> Iterator[None]:
        if self._engine.dialect.name == "postgresql":
            # A session lock on a connection of its own: the server drops it if we die.
            with self._engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": OUTBOX_LOCK})
                try:
                    yield
                finally:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": OUTBOX_LOCK}
                    )
            return
        database = _sqlite_file(self.url)
        if database is None:  # an in-memory database has no other publisher
            yield
            return
        # SQLite's own lock would stop every writer while a flush waits on the broker; a lock
        # file beside the database holds back only other publishers (any process; freed on exit).
        with open(database.with_name(database.name + ".outbox-lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def event_count(self) -> int:
        with self._reads() as session:
            events = OutboxRow.topic == TopicName.REGISTRY_EVENTS.value
            return int(
                session.scalar(select(func.count()).select_from(OutboxRow).where(events)) or 0
            )

    def ping(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self._engine.dispose()
