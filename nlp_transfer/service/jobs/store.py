"""The queue: create a job (idempotently), claim the next one, move it between statuses.

Claiming is the one place two servers could collide. On PostgreSQL the claim selects the oldest
queued row `FOR UPDATE SKIP LOCKED`, so a second server skips a row the first is taking instead of
waiting for it and then taking it too; on SQLite (one file, one writer at a time) a conditional
UPDATE ... WHERE status = 'queued' does the same: only one UPDATE can match the row.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nlp_transfer.service.jobs.events import add_event
from nlp_transfer.service.jobs.orm import FINISHED, Job, utcnow


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def create_job(
    session: Session,
    *,
    config: dict[str, Any],
    training_file: str | None,
    accelerate_config: str,
    idempotency_key: str | None,
    body: dict[str, Any],
) -> tuple[Job, bool]:
    """(job, created). A repeated idempotency key with the same body returns the first job."""
    digest = request_hash(body)
    if idempotency_key is not None:
        found = session.scalars(select(Job).where(Job.idempotency_key == idempotency_key)).first()
        if found is not None:
            if found.request_hash != digest:
                raise IdempotencyConflict(idempotency_key)
            return found, False
    job = Job(
        id=new_id("ftjob"), status="queued", config=config, training_file=training_file,
        accelerate_config=accelerate_config, idempotency_key=idempotency_key, request_hash=digest,
        created_at=utcnow(), attempts=0, resume=False, interrupted=False, cancel_requested=False,
        events_offset=0, progress_step=0, latest_metrics={},
    )  # fmt: skip
    session.add(job)
    try:
        session.flush()
    except IntegrityError:  # the same key raced in from another request: answer like a repeat
        session.rollback()
        if idempotency_key is None:
            raise
        return create_job(session, config=config, training_file=training_file, accelerate_config=accelerate_config,
                          idempotency_key=idempotency_key, body=body)  # fmt: skip
    add_event(session, job.id, "created", {"status": "queued"})
    session.commit()
    return job, True


def claim_next(session: Session, worker_id: str) -> Job | None:
    """Take the oldest queued job for `worker_id` (status running), or None; commits."""
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        job = session.scalars(
            select(Job).where(Job.status == "queued").order_by(Job.created_at, Job.id).limit(1)
            .with_for_update(skip_locked=True)
        ).first()  # fmt: skip
        if job is None:
            session.rollback()
            return None
        job.status, job.worker_id, job.heartbeat_at = "running", worker_id, now
        job.started_at = job.started_at or now
        job.attempts += 1
        session.commit()
        return job
    oldest = (
        select(Job.id)
        .where(Job.status == "queued")
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .scalar_subquery()
    )
    claimed = session.execute(
        update(Job).where(Job.id == oldest, Job.status == "queued")
        .values(status="running", worker_id=worker_id, heartbeat_at=now, attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, now))
        .returning(Job.id)
    ).scalar()  # fmt: skip
    session.commit()
    return session.get(Job, claimed) if claimed else None


def request_cancel(session: Session, job_id: str) -> Job | None:
    """Cancel a queued job at once; flag a running one for its executor. None if it is finished."""
    queued = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="cancelled", finished_at=utcnow(), cancel_requested=True).returning(Job.id)
    ).scalar()  # fmt: skip
    if queued:
        add_event(session, job_id, "cancelled", {"while": "queued"})
        session.commit()
        return session.get(Job, job_id)
    running = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running")
        .values(cancel_requested=True)
        .returning(Job.id)
    ).scalar()
    session.commit()
    if running:
        add_event(session, job_id, "cancel_requested", {})
        session.commit()
        return session.get(Job, job_id)
    return None


def request_resume(session: Session, job_id: str) -> Job | None:
    """Queue a failed or cancelled job again, to continue from its last checkpoint; None otherwise."""
    done = session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(("failed", "cancelled")))
        .values(status="queued", resume=True, cancel_requested=False, error=None, finished_at=None)
        .returning(Job.id)
    ).scalar()  # fmt: skip
    if done:
        add_event(session, job_id, "resume_requested", {})
    session.commit()
    return session.get(Job, job_id) if done else None


def finish(session: Session, job: Job, status: str, **fields: Any) -> None:
    assert status in FINISHED
    job.status, job.finished_at = status, utcnow()
    for key, value in fields.items():
        setattr(job, key, value)
    add_event(session, job.id, status, {k: v for k, v in fields.items() if k in ("error", "model_id")})
    session.commit()


def requeue(session: Session, job: Job, *, interrupted: bool, reason: str) -> None:
    """Back to the queue, to resume from the last checkpoint (drain, or a dead process after a crash)."""
    job.status, job.resume, job.interrupted = "queued", True, interrupted
    job.pid = job.pid_start = job.worker_id = None
    add_event(session, job.id, "requeued", {"reason": reason, "step": job.progress_step})
    session.commit()


def page(session: Session, limit: int, after: str | None) -> tuple[list[Job], bool]:
    """Newest first; `after` is the last id of the previous page."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if after is not None:
        anchor = session.get(Job, after)
        if anchor is not None:
            query = query.where(
                (Job.created_at < anchor.created_at)
                | ((Job.created_at == anchor.created_at) & (Job.id < anchor.id))
            )
    rows = list(session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def touch(session: Session, job_ids: list[str], worker_id: str, now: datetime | None = None) -> None:
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.worker_id == worker_id)
            .values(heartbeat_at=now or utcnow())
        )
        session.commit()
