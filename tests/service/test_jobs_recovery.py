"""Nothing lost, nothing run twice: the server killed with SIGKILL (job dead or alive), and SIGTERM drain.

Each test runs its own server (SQLite, the embedded default) so that killing it cannot disturb
the session's server. Results are compared with the same job run without interruption.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.service.conftest import Server, finished, tiny_job, wait_for

LONG = dict(max_steps=60, save_every=10, eval_every=30, log_every=2)

# each test starts servers and runs real (tiny) jobs; the default 300 s is too short on a busy 2-core machine
pytestmark = pytest.mark.timeout(1200)


def _row(server: Server, job_id: str) -> dict:
    conn = sqlite3.connect(server.state_dir / "service.db")
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
    conn.close()
    return row


def _started_events(client, job_id: str) -> list[dict]:
    return [
        e
        for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events").json()["data"]
        if e["type"] == "started"
    ]


def _group_gone(pgid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def reference_metrics(server, service_assets) -> dict:
    """Test metrics of the LONG job run without interruption (on the session server)."""
    with server.client() as client:
        job_id = client.post(
            "/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets, **LONG)}
        ).json()["id"]
        job = wait_for(client, job_id, finished, timeout=600)
        assert job["status"] == "succeeded", job
        return job["test_metrics"]


def _start_mid_run(tmp_path, service_assets) -> tuple[Server, str]:
    srv = Server(
        tmp_path / "state", None, "--data-root", str(service_assets["root"]), "--cancel-grace-s", "30"
    ).start()
    with srv.client() as client:
        job_id = client.post(
            "/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets, **LONG)}
        ).json()["id"]
        job = wait_for(
            client, job_id, lambda j: j["progress"]["step"] >= 22 or finished(j), timeout=300, interval=0.1
        )
        assert job["status"] == "running", f"the job ended before the kill; make LONG longer: {job}"
    return srv, job_id


def test_server_sigkill_with_job_dead_resumes_from_checkpoint(
    tmp_path, service_assets, reference_metrics
) -> None:
    srv, job_id = _start_mid_run(tmp_path, service_assets)
    pgid = _row(srv, job_id)["pid"]
    srv.stop(signal.SIGKILL)
    os.killpg(pgid, signal.SIGKILL)  # the job's processes die too (say the machine rebooted)
    assert _group_gone(pgid)
    srv.start()  # same state dir and database: recovery requeues the job with resume
    try:
        with srv.client() as client:
            job = wait_for(client, job_id, finished, timeout=600)
            print(f"\nresumed at step {job['resumed_from_step']}")
            assert job["status"] == "succeeded", job
            assert job["resumed_from_step"] is not None and job["resumed_from_step"] >= 10
            assert job["attempts"] == 2 and len(_started_events(client, job_id)) == 2
            assert job["test_metrics"]["accuracy"] == reference_metrics["accuracy"]
            assert job["test_metrics"]["macro_f1"] == reference_metrics["macro_f1"]
            assert job["test_metrics"]["loss"] == pytest.approx(reference_metrics["loss"], rel=1e-5)
    finally:
        srv.stop()


def test_server_sigkill_with_job_alive_adopts_it(tmp_path, service_assets, reference_metrics) -> None:
    srv, job_id = _start_mid_run(tmp_path, service_assets)
    pgid = _row(srv, job_id)["pid"]
    srv.stop(signal.SIGKILL)
    os.killpg(pgid, 0)  # the job's process group outlived the server
    srv.start()
    try:
        with srv.client() as client:
            job = wait_for(client, job_id, finished, timeout=600)
            assert job["status"] == "succeeded", job
            events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events").json()["data"]
            assert "adopted" in [e["type"] for e in events]
            assert (
                job["attempts"] == 1 and len(_started_events(client, job_id)) == 1
            )  # one process, never two
            assert job["resumed_from_step"] is None
            assert job["test_metrics"]["accuracy"] == reference_metrics["accuracy"]
            steps = [e["data"]["step"] for e in events if e["type"] == "step"]
            assert steps == sorted(set(steps)) and steps[-1] == LONG["max_steps"]  # no event copied twice
    finally:
        srv.stop()
    assert _group_gone(pgid)


def test_sigterm_drains_running_job_and_next_start_resumes_it(
    tmp_path, service_assets, reference_metrics
) -> None:
    srv, job_id = _start_mid_run(tmp_path, service_assets)
    pgid = _row(srv, job_id)["pid"]
    # uvicorn re-raises the SIGTERM after its shutdown (the drain) completes: -15 is a clean exit here
    assert srv.stop(signal.SIGTERM, timeout=120) in (0, -signal.SIGTERM)
    assert "draining: 1 running job(s)" in srv.log() and "Application shutdown complete" in srv.log()
    assert _group_gone(pgid, timeout=5)  # the drain waited for the job to checkpoint and exit
    row = _row(srv, job_id)
    assert row["status"] == "queued" and row["interrupted"] and row["resume"]
    srv.start()
    try:
        with srv.client() as client:
            job = wait_for(client, job_id, finished, timeout=600)
            assert job["status"] == "succeeded", job
            assert job["resumed_from_step"] >= 22  # the SIGTERM checkpoint, not only the periodic one
            assert job["test_metrics"]["accuracy"] == reference_metrics["accuracy"]
    finally:
        srv.stop()
