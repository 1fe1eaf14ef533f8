"""Claiming on PostgreSQL: SKIP LOCKED, two servers on one database, 20 jobs at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import func, select

from nlp_transfer.service import db
from nlp_transfer.service.jobs import store
from nlp_transfer.service.jobs.orm import Job, JobEvent
from tests.service.conftest import Server, finished, tiny_job, wait_for


def _fill(sessions, n: int) -> list[str]:
    ids = []
    with sessions() as s:
        for i in range(n):
            job, _ = store.create_job(
                s,
                config={"seed": i},
                training_file=None,
                accelerate_config="cpu.yaml",
                idempotency_key=None,
                body={"i": i},
            )
            ids.append(job.id)
    return ids


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_concurrent_claims_never_take_a_job_twice(postgres, tmp_path, backend) -> None:
    url = postgres.new_database() if backend == "postgresql" else f"sqlite:///{tmp_path / 'q.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    ids = _fill(sessions, 60)
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        with sessions() as s:
            while (job := store.claim_next(s, name)) is not None:
                with lock:
                    claimed.append((job.id, name))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(job_id for job_id, _ in claimed)
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}
    assert len({w for _, w in claimed}) > 1  # they really competed
    with sessions() as s:
        assert s.scalar(select(func.count()).where(Job.status == "running", Job.attempts == 1)) == 60
    engine.dispose()


def _runs_per_job(sessions, ids: list[str]) -> Counter:
    with sessions() as s:
        rows = s.execute(
            select(JobEvent.job_id).where(JobEvent.job_id.in_(ids), JobEvent.type == "start")
        ).all()
    return Counter(r[0] for r in rows)


@pytest.mark.timeout(1500)
def test_two_servers_on_one_database_never_run_a_job_twice(postgres, tmp_path, service_assets) -> None:
    url = postgres.new_database()
    servers = [Server(tmp_path / f"s{i}", url, "--data-root", str(service_assets["root"])) for i in range(2)]
    for srv in servers:
        srv.start()
    try:
        with servers[0].client() as a, servers[1].client() as b:
            ids = [(a if i % 2 else b).post("/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets, seed=i, max_steps=4, eval_every=0, save_every=0)}).json()["id"]
                   for i in range(6)]  # fmt: skip
            jobs = [wait_for(a, job_id, finished, timeout=900) for job_id in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 6
        assert all(j["attempts"] == 1 for j in jobs)
        engine = db.make_engine(url)
        sessions = db.session_factory(engine)
        runs = _runs_per_job(sessions, ids)  # one training start per job, from the loop's own events
        assert runs == Counter({job_id: 1 for job_id in ids})
        with sessions() as s:
            workers = Counter(s.scalars(select(Job.worker_id).where(Job.id.in_(ids))))
        engine.dispose()
        print(f"\njobs per server: {dict(workers)}")
        assert len(workers) == 2  # both servers took jobs
    finally:
        for srv in servers:
            srv.stop()


@pytest.mark.slow
@pytest.mark.timeout(2700)
def test_twenty_jobs_at_once_all_succeed_once_within_the_concurrency_limit(server, service_assets) -> None:
    start = time.monotonic()
    with server.client() as client:
        ids = [client.post("/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets, seed=100 + i, max_steps=2, eval_every=0, save_every=0)}).json()["id"]
               for i in range(20)]  # fmt: skip
        assert len(set(ids)) == 20
        jobs = [wait_for(client, job_id, finished, timeout=1800, interval=1) for job_id in ids]
        print(f"\n20 jobs: {time.monotonic() - start:.0f} s wall")
        assert [j["status"] for j in jobs] == ["succeeded"] * 20
        assert all(j["attempts"] == 1 and j["model_id"] for j in jobs)
        assert len({j["model_id"] for j in jobs}) == 20
        # concurrency: at no instant were more than 2 of these jobs between started and finished
        spans = []
        for job_id, job in zip(ids, jobs, strict=True):
            events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events").json()["data"]
            started = [e["created_at"] for e in events if e["type"] == "started"]
            assert len(started) == 1 and sum(e["type"] == "start" for e in events) == 1
            spans.append((datetime.fromisoformat(started[0]), datetime.fromisoformat(job["finished_at"])))
        edges = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans], key=lambda x: (x[0], x[1]))
        running = peak = 0
        for _, delta in edges:
            running += delta
            peak = max(peak, running)
        assert peak <= 2
