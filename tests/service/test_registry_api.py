"""The registry over HTTP: `--adapters` registration at start, model reads, alias moves and history,
and every bad input with its status and one-line message. The app runs in-process (FastAPI's
TestClient drives its real lifespan: migrations, the --adapters scan) on a fresh PostgreSQL database;
restarting it on the same database shows what persists."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nlp_transfer.rundir import RunDir
from nlp_transfer.service.app import create_app
from nlp_transfer.service.jobs.orm import Job
from nlp_transfer.service.settings import ServiceSettings
from tests.service.registry_helpers import copy_run, migrated_sessions, shared_tiny_run


@pytest.fixture(scope="module")
def tiny_run(tiny_models: dict, review_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tiny_run(tiny_models["bert"], review_csv, tmp_path_factory.mktemp("registry"))


def _app(tmp_path: Path, url: str, adapters: Path) -> TestClient:
    settings = ServiceSettings(
        state_dir=tmp_path / "state", database_url=url, adapters=[str(adapters)], run_executor=False
    )
    return TestClient(create_app(settings))


def test_models_and_aliases_over_http(postgres, tiny_run: Path, tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"
    copy_run(tiny_run, adapters / "sentiment-a")
    copy_run(tiny_run, adapters / "nested" / "sentiment-b")
    (adapters / "notes").mkdir()  # no run here: ignored
    url = postgres.new_database()
    with _app(tmp_path, url, adapters) as client:
        page = client.get("/v1/models").json()
        assert not page["has_more"]
        by_name = {m["name"]: m for m in page["data"]}
        assert sorted(by_name) == ["nested/sentiment-b", "sentiment-a"]
        a, b = by_name["sentiment-a"]["id"], by_name["nested/sentiment-b"]["id"]
        run = RunDir(tiny_run)
        assert by_name["sentiment-a"]["primary_metric"] == "accuracy"
        assert by_name["sentiment-a"]["primary_metric_value"] == run.test_metrics["accuracy"]
        # pagination: one per page, newest first, the cursor continues where the page ended
        first = client.get("/v1/models", params={"limit": 1}).json()
        second = client.get("/v1/models", params={"limit": 1, "after": first["data"][0]["id"]}).json()
        assert first["has_more"] and not second["has_more"]
        assert {first["data"][0]["id"], second["data"][0]["id"]} == {a, b}

        detail = client.get(f"/v1/models/{a}").json()
        assert (detail["task"], detail["method"], detail["base_model"]) == (
            run.task,
            run.method,
            run.base_model,
        )
        assert detail["metrics"]["test"] == run.test_metrics and detail["card"] == run.card_text()
        assert (
            detail["source"] == "adapters" and Path(detail["run_dir"]) == (adapters / "sentiment-a").resolve()
        )

        moved = client.put("/v1/aliases/production", json={"model_id": a})
        assert moved.status_code == 200 and moved.json()["model_id"] == a
        assert client.put("/v1/aliases/candidate", json={"model_id": b}).status_code == 200
        assert client.put("/v1/aliases/production", json={"model_id": b}).json()["model_id"] == b
        history = client.get("/v1/aliases/production/history").json()["data"]
        assert [(h["model_id"], h["previous_model_id"]) for h in history] == [(b, a), (a, None)]
        assert client.get(f"/v1/models/{b}").json()["aliases"] == ["candidate", "production"]

        # bad inputs: status and the one-line message
        r = client.get("/v1/models/mdl-unknown")
        assert r.status_code == 404 and "unknown model 'mdl-unknown'" in r.json()["detail"]
        r = client.put("/v1/aliases/production", json={"model_id": "mdl-unknown"})
        assert r.status_code == 404 and "unknown model" in r.json()["detail"]
        r = client.put("/v1/aliases/Prod%20Live", json={"model_id": a})
        assert r.status_code == 422 and "bad alias name 'Prod Live'" in r.json()["detail"]
        r = client.put("/v1/aliases/production", json={"model": a})  # wrong body key
        assert r.status_code == 422
        r = client.get("/v1/aliases/staging")
        assert r.status_code == 404 and "unknown alias 'staging'" in r.json()["detail"]
        r = client.delete(f"/v1/models/{b}")
        assert r.status_code == 409 and "candidate, production" in r.json()["detail"]
        assert client.get(f"/v1/models/{b}").status_code == 200  # the refused delete left it whole
        assert client.get("/v1/aliases/production/history").json()["data"] == history  # nothing moved

        r = client.delete(f"/v1/models/{a}")
        assert r.status_code == 200 and r.json() == {
            "id": a, "object": "model", "deleted": True, "files_removed": None,
        }  # fmt: skip
        assert RunDir(adapters / "sentiment-a").is_finished()  # the user's files are untouched
        assert client.get(f"/v1/models/{a}").status_code == 404
        assert client.delete(f"/v1/models/{a}").status_code == 404
        assert client.delete("/v1/aliases/candidate").status_code == 204
        assert client.delete("/v1/aliases/candidate").status_code == 404

    # a restart on the same database: the alias and its history persist, the deleted run stays deleted
    with _app(tmp_path, url, adapters) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [b]
        assert client.get("/v1/aliases").json()["data"][0]["name"] == "production"
        history = client.get("/v1/aliases/candidate/history").json()["data"]
        assert [(h["model_id"], h["previous_model_id"]) for h in history] == [(None, b), (b, None)]


def test_retention_runs_at_start(tmp_path: Path) -> None:
    """A server started with --job-retention-keep 0 removes finished job directories before serving."""
    url = f"sqlite:///{tmp_path / 'state' / 'service.db'}"
    sessions = migrated_sessions(url)
    settings = ServiceSettings(
        state_dir=tmp_path / "state", database_url=url, run_executor=False, job_retention_keep=0
    )
    done, queued = settings.jobs_dir / "ftjob-done", settings.jobs_dir / "ftjob-queued"
    with sessions() as session:
        for job_id, status, job_dir in (("ftjob-done", "failed", done), ("ftjob-queued", "queued", queued)):
            (job_dir / "run" / "checkpoints").mkdir(parents=True)
            session.add(
                Job(id=job_id, status=status, config={}, accelerate_config="cpu.yaml", request_hash="h",
                    created_at=datetime.now(timezone.utc), job_dir=str(job_dir), attempts=1, resume=False,
                    interrupted=False, cancel_requested=False, events_offset=0, progress_step=0, latest_metrics={})
            )  # fmt: skip
        session.commit()
    with TestClient(create_app(settings)) as client:
        assert not done.exists() and queued.is_dir()  # a queued job keeps its directory
        events = client.get("/v1/fine_tuning/jobs/ftjob-done/events").json()["data"]
        assert [e["type"] for e in events] == ["retention"]
