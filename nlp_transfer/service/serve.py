"""`nlp-transfer serve`: flags -> ServiceSettings -> uvicorn.

    nlp-transfer serve [--host 127.0.0.1] [--port 8000] [--state-dir service_state]
                       [--database-url postgresql+psycopg://user@host/db] [--adapters DIR ...]
                       [--max-concurrent-jobs 1] [--data-root DIR ...] [--max-upload-mb 100]

Any --host other than a loopback address needs the API key in the environment variable named by
--api-key-env (default NLP_TRANSFER_API_KEY), and every request must then carry it as a bearer token.
"""

from __future__ import annotations

import argparse
import logging

from nlp_transfer.service.settings import ServiceSettings


def parse(argv: list[str]) -> ServiceSettings:
    p = argparse.ArgumentParser(
        prog="nlp-transfer serve", description="The fine-tuning service (jobs API, registry)."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--state-dir", default="service_state", help="database (SQLite), uploads and job directories"
    )
    p.add_argument(
        "--database-url",
        help="e.g. postgresql+psycopg://user@127.0.0.1:5432/db (default: SQLite in --state-dir)",
    )
    p.add_argument(
        "--api-key-env", default="NLP_TRANSFER_API_KEY", help="environment variable holding the bearer key"
    )
    p.add_argument("--require-api-key", action="store_true", help="require the key on a loopback bind too")
    p.add_argument(
        "--adapters", nargs="*", default=[], help="directories of finished runs to register at start"
    )
    p.add_argument("--max-concurrent-jobs", type=int, default=1)
    p.add_argument(
        "--data-root",
        action="append",
        default=[],
        dest="data_roots",
        help="a directory jobs may read datasets from (repeatable)",
    )
    p.add_argument("--max-upload-mb", type=float, default=100.0)
    p.add_argument(
        "--cancel-grace-s", type=float, default=30.0, help="SIGTERM -> SIGKILL delay for cancel and drain"
    )
    p.add_argument("--poll-interval-s", type=float, default=0.5)
    p.add_argument("--job-retention-days", type=float, help="remove finished job directories older than this")
    p.add_argument(
        "--job-retention-keep", type=int, help="keep only the N most recent finished job directories"
    )
    p.add_argument(
        "--worker-id", help="name of this server in the jobs table (default: host name + state dir)"
    )
    a = p.parse_args(argv)
    return ServiceSettings(
        host=a.host, port=a.port, state_dir=a.state_dir, database_url=a.database_url, api_key_env=a.api_key_env,
        require_api_key=a.require_api_key, adapters=a.adapters, max_concurrent_jobs=a.max_concurrent_jobs,
        data_roots=a.data_roots, max_upload_mb=a.max_upload_mb, cancel_grace_s=a.cancel_grace_s,
        poll_interval_s=a.poll_interval_s, job_retention_days=a.job_retention_days, job_retention_keep=a.job_retention_keep, worker_id=a.worker_id,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    import uvicorn

    from nlp_transfer.service.app import create_app

    settings = parse(argv)
    app = create_app(settings)  # refuses a non-local bind without a key (ConfigError -> one line, exit 2)
    logging.getLogger("nlp_transfer").setLevel(logging.INFO)
    # SSE streams stay open; without a bound the drain would wait for every client to hang up
    uvicorn.run(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=5, log_level="info")
    return 0
