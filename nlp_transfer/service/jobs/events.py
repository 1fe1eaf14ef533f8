"""Job events: rows in `job_events` (what the API lists and streams) and the loop's events file.

The training process appends one JSON object per line to the run directory's events file
(nlp_transfer/training/events.py); the executor tails it from a byte offset kept in the job row, so
a restarted server continues where the last one stopped and never copies a line twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nlp_transfer.service.jobs.orm import JobEvent, utcnow


def add_event(session: Session, job_id: str, type_: str, data: dict[str, Any]) -> JobEvent:
    """Append an event (caller commits). seq is per job, so a stream can resume after the last seq it
    saw; two writers racing for one seq (the executor and a cancel request) retry in a savepoint."""
    session.flush()
    for _ in range(10):
        last = session.scalar(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id))
        event = JobEvent(job_id=job_id, seq=(last or 0) + 1, created_at=utcnow(), type=type_, data=data)
        try:
            with session.begin_nested():
                session.add(event)
        except IntegrityError:
            continue
        return event
    raise RuntimeError(f"could not append an event to job {job_id}")


def read_new_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines after `offset`, and the new offset (a half-written last line waits)."""
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    out = []
    for line in chunk[: end + 1].splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a torn line from a killed writer: skip it, the next ones are whole
        if isinstance(item, dict):
            out.append(item)
    return out, offset + end + 1


def list_events(session: Session, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq).order_by(JobEvent.seq)
    return list(session.scalars(query.limit(limit)))
