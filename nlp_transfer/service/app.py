"""The FastAPI application: `create_app(settings)`.

Start-up (lifespan): migrate the database to head, register the finished runs under --adapters,
then start the executor, which first adopts or requeues the jobs this server was running when it
last stopped. Shutdown (uvicorn turns SIGTERM into it): the executor drains (no new claims; running
jobs get SIGTERM, checkpoint and go back to the queue marked interrupted), then the engine closes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from nlp_transfer.service import db
from nlp_transfer.service.api import files, health, jobs
from nlp_transfer.service.deps import key_ok
from nlp_transfer.service.settings import ServiceSettings

logger = logging.getLogger("nlp_transfer.service")


def _scan_adapters(settings: ServiceSettings, sessions: db.sessionmaker) -> None:
    if not settings.adapters:
        return
    try:
        from nlp_transfer.service.registry.store import scan_adapters
    except ImportError:
        logger.warning("the model registry is not available; --adapters ignored")
        return
    with sessions() as session:
        scan_adapters(session, settings.adapters)


def _retention(settings: ServiceSettings, sessions: db.sessionmaker) -> None:
    """Finished job directories the retention settings no longer keep (H8: registry/retention.py)."""
    from nlp_transfer.service.registry.retention import apply_retention

    with sessions() as session:
        apply_retention(session, settings)


def create_app(settings: ServiceSettings) -> FastAPI:
    settings.check_auth()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(db.upgrade, settings.database_url)
        engine = db.make_engine(settings.database_url)
        app.state.engine, app.state.sessions = engine, db.session_factory(engine)
        await run_in_threadpool(_scan_adapters, settings, app.state.sessions)
        await run_in_threadpool(_retention, settings, app.state.sessions)
        executor = None
        if settings.run_executor:
            from nlp_transfer.service.jobs.executor import LocalExecutor

            executor = LocalExecutor(settings, app.state.sessions)
            await run_in_threadpool(executor.start)
        app.state.executor = executor
        logger.info(
            "serving on %s:%d (worker %s, state %s)",
            settings.host,
            settings.port,
            settings.worker_id,
            settings.state_dir,
        )
        try:
            yield
        finally:
            if executor is not None:
                logger.info(
                    "draining: %d running job(s) get SIGTERM and will resume later", len(executor.running)
                )
                await run_in_threadpool(executor.drain)
            engine.dispose()

    app = FastAPI(title="nlp-transfer fine-tuning service", version="1", lifespan=lifespan)
    app.state.settings = settings

    @app.middleware("http")
    async def guard(request: Request, call_next):  # type: ignore[no-untyped-def]
        """Every path (the docs too) needs the bearer key when one is required; big uploads stop early."""
        if not key_ok(settings, request.headers.get("authorization")):
            return JSONResponse({"detail": "missing or wrong API key: send Authorization: Bearer <key>"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        length = request.headers.get("content-length")
        limit = settings.max_upload_mb * 2**20 + 64 * 1024  # multipart framing on top of the file
        if request.url.path.startswith("/v1/files") and length and length.isdigit() and int(length) > limit:
            return JSONResponse(
                {"detail": f"upload larger than the limit of {settings.max_upload_mb:g} MB"}, 413
            )
        return await call_next(request)

    app.include_router(health.router)
    app.include_router(files.router)
    app.include_router(jobs.router)
    try:  # H8's routers (registry); the service runs without them
        from nlp_transfer.service.api import models as models_api

        app.include_router(models_api.router)
    except ImportError:
        pass
    return app
