"""Tables of the jobs API: uploaded files, jobs, and each job's event log.

Why events live in the database (and not only in the run directory's events file): every server
sharing the database can then answer `GET .../events` and stream it, whichever server runs the job;
the executor that owns the job copies the loop's lines in as it tails the file.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nlp_transfer.service.db import Base

STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class File(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1024))
    bytes: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_jobs_idempotency_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # validated TrainConfig keys (no output_dir)
    training_file: Mapped[str | None] = mapped_column(String(40), ForeignKey("files.id"), default=None)
    accelerate_config: Mapped[str] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # who runs it, and how to find its processes again after a server restart
    worker_id: Mapped[str | None] = mapped_column(String(255), default=None)
    job_dir: Mapped[str | None] = mapped_column(String(1024), default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)  # process-group leader = pgid
    pid_start: Mapped[str | None] = mapped_column(String(32), default=None)  # /proc start time
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # launches, including resumes
    resume: Mapped[bool] = mapped_column(default=False)  # next launch continues from a checkpoint
    interrupted: Mapped[bool] = mapped_column(default=False)  # drained by a server shutdown
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    events_offset: Mapped[int] = mapped_column(Integer, default=0)  # bytes of the events file copied
    # what the API reports
    progress_step: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer, default=None)
    resumed_from_step: Mapped[int | None] = mapped_column(Integer, default=None)
    step_rate: Mapped[float | None] = mapped_column(Float, default=None)  # steps/s of this attempt
    latest_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    test_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    model_id: Mapped[str | None] = mapped_column(String(40), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
