"""The registry's rules on real runs and real databases: scanning --adapters, aliases under concurrent
moves, deletion that never touches a user's files, and retention of finished job directories."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from nlp_transfer.errors import CheckpointError
from nlp_transfer.rundir import RunDir
from nlp_transfer.service.jobs.orm import Job, JobEvent
from nlp_transfer.service.registry import store
from nlp_transfer.service.registry.orm import Alias, RegisteredModel
from nlp_transfer.service.registry.retention import apply_retention
from nlp_transfer.service.settings import ServiceSettings
from tests.service.registry_helpers import copy_run, migrated_sessions, shared_tiny_run


@pytest.fixture(scope="module")
def tiny_run(tiny_models: dict, review_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tiny_run(tiny_models["bert"], review_csv, tmp_path_factory.mktemp("registry"))


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A freshly migrated database: an SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    factory = migrated_sessions(url)
    yield factory
    factory.kw["bind"].dispose()


def _adapters_dir(tiny_run: Path, root: Path) -> Path:
    """Two good runs (one nested), a run left unfinished, and one from a newer nlp-transfer."""
    copy_run(tiny_run, root / "sentiment")
    copy_run(tiny_run, root / "team" / "v2")
    (root / "half" / "checkpoints" / "step-3").mkdir(parents=True)  # training, not exported
    newer = copy_run(tiny_run, root / "future")
    meta = json.loads((newer / "nlp_transfer.json").read_text())
    (newer / "nlp_transfer.json").write_text(json.dumps({**meta, "format_version": 99}))
    return root


def test_scan_registers_finished_runs_once_and_refuses_bad_ones(
    sessions, tiny_run: Path, tmp_path: Path
) -> None:
    adapters = _adapters_dir(tiny_run, tmp_path / "adapters")
    with sessions() as session:
        first = store.scan_adapters(session, [str(adapters), str(tmp_path / "missing")])
        again = store.scan_adapters(session, [str(adapters)])  # a restart: same ids, no duplicates
        rows = session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)).all()
    assert sorted(first.registered) == sorted(again.registered)
    assert [r.name for r in rows] == ["sentiment", "team/v2"]
    refused = dict(first.refused)
    assert "newer nlp-transfer" in refused[str((adapters / "future").resolve())]
    assert "not a directory" in refused[str(tmp_path / "missing")]
    run = RunDir(tiny_run)
    model = rows[0]
    assert (model.task, model.method, model.source) == ("classification", run.method, "adapters")
    assert model.base_model == run.base_model and model.primary_metric == "accuracy"
    assert model.metrics["test"]["accuracy"] == run.test_metrics["accuracy"]
    assert model.card == run.card_text() and model.card.strip()


def test_two_servers_scanning_the_same_adapters_register_each_run_once(sessions, tiny_run, tmp_path) -> None:
    """Two servers starting together on one database: the loser of each insert race gets the winner's id."""
    adapters = tmp_path / "adapters"
    for i in range(4):
        copy_run(tiny_run, adapters / f"run{i}")
    results: list[set[str]] = []
    errors: list[BaseException] = []

    def scan() -> None:
        try:
            with sessions() as session:
                results.append({m for m, _ in store.scan_adapters(session, [str(adapters)]).registered})
        except BaseException as e:  # collected: a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=scan) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 3
    with sessions() as session:
        ids = set(session.scalars(select(RegisteredModel.id)).all())
    assert len(ids) == 4 and all(found == ids for found in results)


def test_register_run_refuses_unfinished_and_pickle_runs(sessions, tiny_run: Path, tmp_path: Path) -> None:
    pickled = copy_run(tiny_run, tmp_path / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with sessions() as session:
        with pytest.raises(CheckpointError, match="not a finished run"):
            store.register_run(session, tmp_path, source="job", job_id="ftjob-x")
        with pytest.raises(CheckpointError, match="pytorch_model.bin"):
            store.register_run(session, pickled, source="job", job_id="ftjob-y")
        assert session.scalars(select(RegisteredModel)).all() == []
        # registering the same run twice (an executor retrying after a crash) gives the same id
        run = copy_run(tiny_run, tmp_path / "job-run")
        assert store.register_run(session, run, source="job", job_id="j1") == store.register_run(
            session, run, source="job", job_id="j1"
        )


def _three_models(sessions, tiny_run: Path, root: Path) -> list[str]:
    with sessions() as session:
        return [
            store.register_run(session, copy_run(tiny_run, root / f"m{i}"), source="adapters")
            for i in range(3)
        ]


def test_concurrent_alias_moves_keep_one_holder_and_a_consistent_history(
    sessions, tiny_run, tmp_path
) -> None:
    """Threads move the same aliases at once, including each alias's racy first move (no row yet)."""
    ids = _three_models(sessions, tiny_run, tmp_path)
    aliases = [f"alias-{i}" for i in range(6)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def mover(k: int) -> None:
        try:
            with sessions() as session:
                start.wait()
                for name in aliases:
                    for j in range(4):
                        store.move_alias(session, name, ids[(k + j) % 3])
        except BaseException as e:  # collected: a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=mover, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as session:
        for name in aliases:
            holders = session.scalars(select(Alias).where(Alias.name == name)).all()
            history = list(reversed(store.alias_history(session, name, limit=1000)))
            assert len(holders) == 1 and len(history) == 16
            assert history[0].previous_model_id is None
            # serialised moves: every entry replaced exactly the model the previous entry installed
            chain = [(h.previous_model_id, h.model_id) for h in history]
            assert all(cur[0] == prev[1] for prev, cur in zip(chain[:-1], chain[1:], strict=True)), (
                name,
                chain,
            )
            assert holders[0].model_id == history[-1].model_id


def test_alias_errors(sessions, tiny_run: Path, tmp_path: Path) -> None:
    ids = _three_models(sessions, tiny_run, tmp_path)
    with sessions() as session:
        with pytest.raises(store.BadAliasName, match="bad alias name 'Prod!'"):
            store.move_alias(session, "Prod!", ids[0])
        with pytest.raises(store.ModelNotFound, match="unknown model 'mdl-nope'"):
            store.move_alias(session, "candidate", "mdl-nope")
        with pytest.raises(store.AliasNotFound, match="unknown alias 'candidate'"):
            store.get_alias(session, "candidate")
        assert session.scalars(select(Alias)).all() == []  # nothing half-created
        store.move_alias(session, "candidate", ids[1])
        store.remove_alias(session, "candidate")
        assert [(h.model_id, h.previous_model_id) for h in store.alias_history(session, "candidate")] == [
            (None, ids[1]),
            (ids[1], None),
        ]


def test_delete_keeps_user_files_removes_job_runs_and_refuses_aliased(sessions, tiny_run, tmp_path) -> None:
    adapters = tmp_path / "adapters"
    user_run = copy_run(tiny_run, adapters / "mine")
    state = tmp_path / "state"
    job_run = copy_run(tiny_run, state / "jobs" / "ftjob-1" / "run")
    with sessions() as session:
        (user_id,) = [m for m, _ in store.scan_adapters(session, [str(adapters)]).registered]
        job_id = store.register_run(session, job_run, source="job", job_id="ftjob-1")
        store.move_alias(session, "production", user_id)
        with pytest.raises(store.ModelInUse, match="held by alias production"):
            store.delete_model(session, user_id, state_dir=state, adapters=[str(adapters)])
        store.get_model(session, user_id)  # the refused delete changed nothing
        store.move_alias(session, "production", job_id)
        assert store.delete_model(session, user_id, state_dir=state, adapters=[str(adapters)]) is None
        assert RunDir(user_run).is_finished()  # a user's --adapters files are never deleted
        with pytest.raises(store.ModelNotFound, match="was deleted"):
            store.get_model(session, user_id)
        assert store.scan_adapters(session, [str(adapters)]).registered == []  # the tombstone holds
        store.remove_alias(session, "production")
        assert (
            store.delete_model(session, job_id, state_dir=state, adapters=[str(adapters)])
            == job_run.resolve()
        )
        assert not job_run.exists() and store.list_models(session) == ([], False)


def _job(session, job_id: str, job_dir: Path, status: str, finished: datetime) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "train.log").write_text("log\n")
    session.add(
        Job(
            id=job_id,
            status=status,
            config={},
            accelerate_config="cpu.yaml",
            request_hash="h",
            created_at=finished - timedelta(minutes=5),
            finished_at=finished if status != "running" else None,
            job_dir=str(job_dir),
            attempts=1,
            resume=False,
            interrupted=False,
            cancel_requested=False,
            events_offset=0,
            progress_step=0,
            latest_metrics={},
        )  # fmt: skip
    )
    session.commit()


def test_retention_keeps_recent_running_and_registered_job_dirs(
    sessions, tiny_run: Path, tmp_path: Path
) -> None:
    settings = ServiceSettings(state_dir=tmp_path / "state", job_retention_keep=2, job_retention_days=3)
    jobs = settings.jobs_dir
    now = datetime.now(timezone.utc)
    with sessions() as session:
        _job(session, "j-new", jobs / "j-new", "failed", now - timedelta(hours=1))
        _job(session, "j-mid", jobs / "j-mid", "cancelled", now - timedelta(hours=2))
        _job(session, "j-old", jobs / "j-old", "succeeded", now - timedelta(hours=3))  # beyond keep=2
        _job(session, "j-model", jobs / "j-model", "succeeded", now - timedelta(days=9))  # old but registered
        _job(session, "j-run", jobs / "j-run", "running", now - timedelta(days=9))  # never a live job
        _job(session, "j-away", tmp_path / "elsewhere", "failed", now - timedelta(days=9))  # not our disk
        copy_run(tiny_run, jobs / "j-model" / "run")
        store.register_run(session, jobs / "j-model" / "run", source="job", job_id="j-model")
        assert apply_retention(session, ServiceSettings(state_dir=settings.state_dir)) == []  # no policy
        removed = apply_retention(session, settings)
        assert removed == [(jobs / "j-old").resolve()]
        assert all((jobs / j).is_dir() for j in ("j-new", "j-mid", "j-model", "j-run"))
        assert (tmp_path / "elsewhere").is_dir()
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == "j-old")).all()
        assert [e.type for e in events] == ["retention"]
        # days only: everything finished more than 3 days ago that no live model uses
        later = apply_retention(
            session, ServiceSettings(state_dir=settings.state_dir, job_retention_days=0.5 / 24), now=now
        )
        assert sorted(p.name for p in later) == ["j-mid", "j-new"]
