"""The registry's tables (SQLAlchemy 2 declarative); the Alembic migrations create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.serving import Status
from contracts.topics import TopicName
from registry.domain import ModelVersion


class Base(DeclarativeBase):
    pass


class ModelTypeRow(Base):
    """One row per model type; `revision` is bumped by every change (optimistic concurrency)."""

    __tablename__ = "model_types"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_type", "version", name="uq_model_versions_type_version"),
        UniqueConstraint("deployment_id", name="uq_model_versions_deployment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_type: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    version: Mapped[str] = mapped_column(String(16), nullable=False)
    major: Mapped[int] = mapped_column(Integer, nullable=False)
    minor: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    weight: Mapped[float] = mapped_column(Float, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    artifact_uri: Mapped[str] = mapped_column(Text, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    baseline_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deployment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    command_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    was_production: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    def to_domain(self) -> ModelVersion:
        created = self.created_at
        if created.tzinfo is None:  # SQLite keeps no zone; we only ever write UTC
            created = created.replace(tzinfo=UTC)
        return ModelVersion(
            model_type=self.model_type,
            version=self.version,
            status=Status(self.status),
            weight=self.weight,
            sha256=self.sha256,
            artifact_uri=self.artifact_uri,
            size_bytes=self.size_bytes,
            created_at=created,
            metrics=self.metrics,
            baseline_metrics=self.baseline_metrics,
            lineage=self.lineage,
            deployment_id=self.deployment_id,
            command_id=self.command_id,
            was_production=self.was_production,
        )


class ProcessedRow(Base):
    """Message ids (deployment_id, command_id) already handled, written with their effect."""

    __tablename__ = "processed_messages"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_type: Mapped[str] = mapped_column(String(64), nullable=False)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class OutboxRow(Base):
    """Records committed with their change (registry events, manual retrain commands);
    published after commit, then marked sent."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_type: Mapped[str] = mapped_column(String(64), nullable=False)
    topic: Mapped[str] = mapped_column(
        String(64), nullable=False, default=TopicName.REGISTRY_EVENTS.value
    )
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
