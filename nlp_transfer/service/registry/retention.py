"""Retention of finished job directories: keep the N most recent and/or those younger than D days.

Why a policy at all: every job leaves a run directory with checkpoints (for a full fine-tune, several
copies of the model), so a busy server fills its disk. What is never removed: a directory a live
registered model still uses (its run is inside it), anything outside this server's jobs directory
(another server's disk, a user's --adapters directory), and a job that is not finished. Each removal
holds the job's row locked, so a concurrent `resume` either runs first (the job is no longer finished
and is skipped) or waits and finds the directory gone (it starts afresh, and its events say why).
Run at start and after each job (`apply_retention(session, settings)`); with neither setting, no-op.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nlp_transfer.service.jobs.events import add_event
from nlp_transfer.service.jobs.orm import FINISHED, Job
from nlp_transfer.service.registry.orm import RegisteredModel
from nlp_transfer.service.settings import ServiceSettings

logger = logging.getLogger("nlp_transfer.service.retention")


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def expired_jobs(jobs: list[Job], *, keep: int | None, days: float | None, now: datetime) -> list[Job]:
    """Finished jobs (newest first in `jobs`) beyond the N most recent or older than D days."""
    out = []
    for rank, job in enumerate(jobs):
        finished = _aware(job.finished_at or job.created_at)
        too_many = keep is not None and rank >= keep
        too_old = days is not None and finished < now - timedelta(days=days)
        if too_many or too_old:
            out.append(job)
    return out


def apply_retention(
    session: Session, settings: ServiceSettings, *, now: datetime | None = None
) -> list[Path]:
    """Remove the job directories the policy no longer keeps; returns what was removed."""
    keep, days = settings.job_retention_keep, settings.job_retention_days
    if keep is None and days is None:
        return []
    now = now or datetime.now(timezone.utc)
    jobs_root = settings.jobs_dir.resolve()
    user_dirs = [Path(a).expanduser().resolve() for a in settings.adapters]
    finished = session.scalars(
        select(Job)
        .where(Job.status.in_(FINISHED), Job.job_dir.is_not(None))
        .order_by(func.coalesce(Job.finished_at, Job.created_at).desc(), Job.id.desc())
    ).all()
    live_runs = [
        Path(p)
        for p in session.scalars(select(RegisteredModel.run_dir).where(RegisteredModel.deleted_at.is_(None)))
    ]
    removed: list[Path] = []
    for job in expired_jobs(list(finished), keep=keep, days=days, now=now):
        job_dir = Path(job.job_dir or "").resolve()
        if (
            not job_dir.is_dir()
            or job_dir == jobs_root
            or not _within(job_dir, jobs_root)
            or any(_within(job_dir, d) for d in user_dirs)
            or any(_within(run, job_dir) or _within(job_dir, run) for run in live_runs)
        ):
            continue
        # lock the row (a write statement: PostgreSQL row lock, SQLite write lock) and re-check it is finished
        still = session.execute(
            update(Job).where(Job.id == job.id, Job.status.in_(FINISHED)).values(job_dir=Job.job_dir)
        ).rowcount
        if not still:
            session.rollback()
            continue
        shutil.rmtree(job_dir, ignore_errors=True)
        add_event(session, job.id, "retention", {"removed": str(job_dir), "keep": keep, "days": days})
        session.commit()
        removed.append(job_dir)
        logger.info("retention: removed %s (job %s, %s)", job_dir, job.id, job.status)
    return removed
