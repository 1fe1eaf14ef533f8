"""Registry tables: one row per registered run, one row per alias, and an append-only alias history.

Why one row per alias (the alias name is the primary key): two models can then never hold the same
alias, whatever the interleaving of concurrent moves; the history table records every move with the
model it replaced, so a reader can tell who held `production` at any moment.
Models are soft-deleted (`deleted_at`): a run under a user's --adapters directory keeps its files, and
the tombstone stops the next start's scan from registering it again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nlp_transfer.service.db import Base


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RegisteredModel(Base):
    """A finished run the service can name: where it is, what it is, and how it scored."""

    __tablename__ = "registered_models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    run_dir: Mapped[str] = mapped_column(
        String(1024), unique=True
    )  # resolved absolute path (uq_registered_models_run_dir)
    source: Mapped[str] = mapped_column(String(16))  # "adapters" (a user's directory) | "job"
    job_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    task: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(128))
    base_model: Mapped[str] = mapped_column(String(512))
    primary_metric: Mapped[str | None] = mapped_column(String(64), default=None)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    card: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None, index=True)


class Alias(Base):
    """`production`, `candidate`, ...: a name pointing at exactly one live model."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("registered_models.id", ondelete="RESTRICT"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasHistory(Base):
    """Every move of an alias, oldest first by id; `model_id` None means the alias was removed."""

    __tablename__ = "model_alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alias: Mapped[str] = mapped_column(String(64), index=True)
    model_id: Mapped[str | None] = mapped_column(String(40), default=None)
    previous_model_id: Mapped[str | None] = mapped_column(String(40), default=None)
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
