"""/v1/fine_tuning/jobs: create (validated, idempotent), list, get, cancel, resume, events, checkpoints, logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session
from sse_starlette.sse import EventSourceResponse

from nlp_transfer.service.deps import SessionDep, SettingsDep
from nlp_transfer.service.jobs import orm, store
from nlp_transfer.service.jobs.events import list_events
from nlp_transfer.service.jobs.executor import LOG_NAME, run_dir_of
from nlp_transfer.service.jobs.validation import Rejected, validate_job
from nlp_transfer.service.schemas.jobs import (
    Checkpoint,
    CheckpointList,
    EventList,
    EventObject,
    JobCreate,
    JobCreated,
    JobList,
    JobObject,
)  # fmt: skip

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["jobs"])


def _job(session: Session, job_id: str) -> orm.Job:
    job = session.get(orm.Job, job_id)
    if job is None:
        raise HTTPException(404, f"no fine-tuning job {job_id!r}")
    return job


@router.post("", status_code=201, response_model=JobCreated)
def create_job(
    body: JobCreate,
    response: Response,
    settings: SettingsDep,
    session: SessionDep,
    idempotency_key: str | None = Header(None, max_length=255),
) -> JobCreated:
    """Validate everything (config, model, method, data) first; queue only a job that can run."""
    raw = body.model_dump()
    accelerate_config = body.accelerate_config or settings.default_accelerate_config
    if idempotency_key is not None:
        found = session.query(orm.Job).filter(orm.Job.idempotency_key == idempotency_key).first()
        if found is not None:
            if found.request_hash != store.request_hash(raw):
                raise HTTPException(
                    409,
                    f"idempotency key {idempotency_key!r} was used for a different request (job {found.id})",
                )
            response.status_code = 200
            return JobCreated(id=found.id, status=found.status)
    dataset_file = None
    if body.training_file is not None:
        file = session.get(orm.File, body.training_file)
        if file is None:
            raise HTTPException(404, f"no file {body.training_file!r}; upload it with POST /v1/files")
        dataset_file = file.path
    try:
        config = validate_job(settings, body.config, dataset_file, accelerate_config)
    except Rejected as e:
        raise HTTPException(e.status, e.message) from e
    try:
        job, created = store.create_job(session, config=config, training_file=body.training_file, accelerate_config=accelerate_config,
                                        idempotency_key=idempotency_key, body=raw)  # fmt: skip
    except store.IdempotencyConflict as e:
        raise HTTPException(
            409, f"idempotency key {idempotency_key!r} was used for a different request"
        ) from e
    if not created:
        response.status_code = 200
    return JobCreated(id=job.id, status=job.status)


@router.get("", response_model=JobList)
def list_jobs(
    session: SessionDep,
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None, description="last id of the previous page"),
) -> JobList:
    rows, more = store.page(session, limit, after)
    return JobList(data=[JobObject.of(j) for j in rows], has_more=more)


@router.get("/{job_id}", response_model=JobObject)
def get_job(job_id: str, session: SessionDep) -> JobObject:
    return JobObject.of(_job(session, job_id))


@router.post("/{job_id}/cancel", response_model=JobObject)
def cancel_job(job_id: str, session: SessionDep) -> JobObject:
    """A queued job is cancelled at once; a running one gets SIGTERM from its executor (SIGKILL after the grace)."""
    job = _job(session, job_id)
    updated = store.request_cancel(session, job_id)
    if updated is None:
        session.refresh(job)
        raise HTTPException(
            409, f"job {job_id} is {job.status}; only queued or running jobs can be cancelled"
        )
    return JobObject.of(updated)


@router.post("/{job_id}/resume", response_model=JobObject)
def resume_job(job_id: str, session: SessionDep) -> JobObject:
    """Queue a failed or cancelled job again; it continues from its last checkpoint."""
    job = _job(session, job_id)
    if job.status == "queued" and job.interrupted:
        return JobObject.of(job)  # interrupted by a shutdown: already waiting to resume
    updated = store.request_resume(session, job_id)
    if updated is None:
        session.refresh(job)
        raise HTTPException(
            409, f"job {job_id} is {job.status}; only failed, cancelled or interrupted jobs can be resumed"
        )
    return JobObject.of(updated)


@router.get("/{job_id}/events", response_model=EventList)
def job_events(
    job_id: str,
    request: Request,
    session: SessionDep,
    stream: bool = False,
    after: int = Query(0, ge=0, description="last seq already seen"),
    limit: int = Query(1000, ge=1, le=10000),
):
    """The job's events (created, started, start, step, eval, checkpoint, ..., succeeded); `stream=true` for SSE."""
    _job(session, job_id)
    if not stream:
        return EventList(data=[EventObject.of(e) for e in list_events(session, job_id, after, limit)])
    sessions = request.app.state.sessions
    poll = request.app.state.settings.poll_interval_s

    def fetch(last: int) -> tuple[list[EventObject], bool]:
        with sessions() as s:
            events = [EventObject.of(e) for e in list_events(s, job_id, last)]
            job = s.get(orm.Job, job_id)
            return events, job is None or job.status in orm.FINISHED

    async def generate() -> AsyncIterator[dict]:
        last = after
        while True:
            events, finished = await run_in_threadpool(fetch, last)
            for event in events:
                last = event.seq
                yield {
                    "event": event.type,
                    "id": str(event.seq),
                    "data": json.dumps(event.model_dump(mode="json")),
                }
            if finished and not events:
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll)

    return EventSourceResponse(generate())


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def job_checkpoints(job_id: str, session: SessionDep) -> CheckpointList:
    job = _job(session, job_id)
    if not job.job_dir:
        return CheckpointList(data=[])
    from nlp_transfer.training.checkpoint import checkpoint_dirs

    found = checkpoint_dirs(run_dir_of(job).checkpoints_dir)
    return CheckpointList(data=[Checkpoint(step=int(p.name.rsplit("-", 1)[1]), name=p.name) for p in found])


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
def job_logs(job_id: str, session: SessionDep, tail: int = Query(200, ge=1, le=100000)) -> str:
    """The last `tail` lines of the job's stdout/stderr."""
    job = _job(session, job_id)
    if not job.job_dir:
        return ""
    from pathlib import Path

    path = Path(job.job_dir) / LOG_NAME
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) + "\n"
