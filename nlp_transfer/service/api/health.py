"""GET /healthz: the database answers and the executor's state."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from nlp_transfer.service.deps import SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request, session: SessionDep) -> dict:
    session.execute(text("SELECT 1"))
    executor = getattr(request.app.state, "executor", None)
    return {
        "status": "draining" if executor is not None and executor.draining else "ok",
        "worker_id": request.app.state.settings.worker_id,
        "running_jobs": len(executor.running) if executor is not None else 0,
    }
