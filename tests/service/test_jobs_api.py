"""The jobs API against a live server on PostgreSQL: a tiny job end to end, events, cancel, a dying job."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.service.conftest import finished, tiny_job, wait_for

# each test starts servers and runs real (tiny) jobs; the default 300 s is too short on a busy 2-core machine
pytestmark = pytest.mark.timeout(900)


def test_tiny_job_succeeds_with_events_metrics_logs_and_model(server, service_assets) -> None:
    with server.client() as client:
        start = time.monotonic()
        r = client.post("/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets)})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        assert r.json()["status"] == "queued"
        streamed = []
        with client.stream(
            "GET", f"/v1/fine_tuning/jobs/{job_id}/events", params={"stream": "true"}, timeout=300
        ) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    streamed.append(json.loads(line[5:]))
        job = wait_for(client, job_id, finished)
        elapsed = time.monotonic() - start
        print(f"\nsubmit -> {job['status']}: {elapsed:.1f} s")
        assert job["status"] == "succeeded", job
        types = [e["type"] for e in streamed]
        # the stream carried the loop's own events, in order, and ended with the job
        for kind in ("created", "started", "start", "step", "eval", "checkpoint", "succeeded"):
            assert kind in types, types
        assert types[-1] == "succeeded"
        assert [e["seq"] for e in streamed] == sorted(e["seq"] for e in streamed)
        steps = [e["data"]["step"] for e in streamed if e["type"] == "step"]
        assert steps == sorted(steps) and steps[-1] == 12
        listed = client.get(f"/v1/fine_tuning/jobs/{job_id}/events").json()["data"]
        assert [e["seq"] for e in listed] == [e["seq"] for e in streamed]
        assert job["progress"]["step"] == job["progress"]["total"] == 12
        assert 0 <= job["test_metrics"]["accuracy"] <= 1 and job["test_metrics"]["examples"] == 48
        assert "accuracy" in job["latest_metrics"]
        assert job["model_id"], job  # registered in the model registry
        assert job["attempts"] == 1 and job["error"] is None
        checkpoints = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
        assert checkpoints and all(c["step"] in (6, 12) for c in checkpoints)
        logs = client.get(f"/v1/fine_tuning/jobs/{job_id}/logs").text
        assert "attempt 1" in logs and "nlp_transfer.launch" in logs


def test_list_is_paginated_newest_first(server, service_assets) -> None:
    with server.client() as client:
        ids = []
        for seed in (1, 2, 3):
            r = client.post(
                "/v1/fine_tuning/jobs",
                json={"config": tiny_job(service_assets, seed=seed, max_steps=2, eval_every=0, save_every=0)},
            )
            ids.append(r.json()["id"])
        first = client.get("/v1/fine_tuning/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in first["data"]] == ids[::-1][:2] and first["has_more"]
        second = client.get(
            "/v1/fine_tuning/jobs", params={"limit": 2, "after": first["data"][-1]["id"]}
        ).json()
        assert second["data"][0]["id"] == ids[0]
        for job_id in ids:
            assert wait_for(client, job_id, finished)["status"] == "succeeded"


def test_cancel_running_job_stops_its_process_group(server, service_assets) -> None:
    with server.client() as client:
        cfg = tiny_job(service_assets, max_steps=100000, eval_every=0, save_every=0, log_every=5)
        job_id = client.post("/v1/fine_tuning/jobs", json={"config": cfg}).json()["id"]
        wait_for(client, job_id, lambda j: j["progress"]["step"] >= 10 or finished(j))
        r = client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
        assert r.status_code == 200, r.text
        job = wait_for(client, job_id, finished, timeout=60)
        assert job["status"] == "cancelled"
        types = [e["type"] for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events").json()["data"]]
        assert "cancel_requested" in types and "interrupted" in types  # the loop saw SIGTERM and checkpointed
        steps = [c["step"] for c in client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]]
        assert steps and steps[-1] >= 10
        assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").status_code == 409


def _job_pid(server, job_id: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.database_url)
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pid FROM jobs WHERE id = :id"), {"id": job_id}).scalar()
    engine.dispose()
    return int(pid)


def test_job_whose_processes_die_is_failed_with_its_last_error_line(server, service_assets) -> None:
    with server.client() as client:
        cfg = tiny_job(service_assets, max_steps=100000, eval_every=0, save_every=0, log_every=5)
        job_id = client.post("/v1/fine_tuning/jobs", json={"config": cfg}).json()["id"]
        wait_for(client, job_id, lambda j: j["progress"]["step"] >= 5 or finished(j))
        os.killpg(_job_pid(server, job_id), signal.SIGKILL)  # the machine's OOM killer, say
        job = wait_for(client, job_id, finished, timeout=60)
        assert job["status"] == "failed"
        assert "SIGKILL" in job["error"], job["error"]


def test_job_failing_inside_the_recipe_is_failed_with_the_recipe_error(server, service_assets) -> None:
    with server.client() as client:
        cfg = tiny_job(service_assets, method="lora", method_args={"r": 4, "no_such_option": 1})
        job_id = client.post("/v1/fine_tuning/jobs", json={"config": cfg}).json()["id"]
        job = wait_for(client, job_id, finished, timeout=120)
        assert job["status"] == "failed"
        assert job["error"].startswith("error:") and "no_such_option" in job["error"], job["error"]


@pytest.mark.parametrize("status", ["succeeded"])
def test_resume_of_a_succeeded_job_is_409(server, service_assets, status) -> None:
    with server.client() as client:
        job_id = client.post(
            "/v1/fine_tuning/jobs",
            json={"config": tiny_job(service_assets, max_steps=2, eval_every=0, save_every=0)},
        ).json()["id"]
        assert wait_for(client, job_id, finished)["status"] == status
        assert client.post(f"/v1/fine_tuning/jobs/{job_id}/resume").status_code == 409
        assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").status_code == 409


def test_live_server_with_required_key_rejects_and_never_logs_it(tmp_path) -> None:
    """`serve --require-api-key` on 127.0.0.1: the same check a non-local bind forces on."""
    from tests.service.conftest import Server

    key = "sk-live-test-5a1b2c3d4e"
    srv = Server(tmp_path / "state", None, "--require-api-key", env={"NLP_TRANSFER_API_KEY": key})
    good = {"Authorization": f"Bearer {key}"}
    srv.start(headers=good)
    try:
        with srv.client() as client:
            assert client.get("/healthz").status_code == 401
            assert (
                client.get("/v1/fine_tuning/jobs", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )
            assert client.get("/v1/fine_tuning/jobs", headers=good).status_code == 200
    finally:
        srv.stop()
    log = srv.log()
    assert "GET /v1/fine_tuning/jobs" in log and key not in log
