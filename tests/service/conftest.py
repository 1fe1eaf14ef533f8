"""Service fixtures: one throwaway PostgreSQL and one live server per session, tiny jobs.

The PostgreSQL server is Debian's (initdb refuses root, so it runs as the `postgres` user) in a
temporary directory; each test that needs its own database creates one in that cluster. With
CI=true a PostgreSQL that cannot start fails the tests instead of skipping them.
A live server is `python -m nlp_transfer.cli serve ...` in a subprocess on a free port: the same
code path as a user's, SIGTERM and SIGKILL included.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
API_KEY_ENV = "NLP_TRANSFER_API_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL could not start: {reason}")
    pytest.skip(f"PostgreSQL could not start: {reason}")


class Postgres:
    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://test@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database in the cluster (its URL): tests that must not see each other's jobs."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"postgresql://test@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        _unavailable("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="nlp_transfer_pg_", dir="/tmp"))
    os.chmod(root, 0o755)
    data = root / "data"
    data.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "test"],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "pg.log"), "-w", "start"],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", b"") or b""
        _unavailable(f"{e} {detail.decode(errors='replace')[-300:]}")
    pg = Postgres(bindir, root, port)
    yield pg
    subprocess.run(
        [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True,
    )
    shutil.rmtree(root, ignore_errors=True)


class Server:
    """`nlp-transfer serve` in a subprocess; `client` talks to it."""

    def __init__(
        self, state_dir: Path, database_url: str | None, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.state_dir, self.database_url, self.args = Path(state_dir), database_url, list(args)
        self.env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.state_dir.parent / f"{self.state_dir.name}.server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60, headers: dict[str, str] | None = None) -> Server:
        cmd = [sys.executable, "-m", "nlp_transfer.cli", "serve", "--port", str(self.port), "--state-dir", str(self.state_dir),
               "--poll-interval-s", "0.2", *self.args]  # fmt: skip
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **self.env}
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2, headers=headers).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not answer in {timeout} s: {self.log_path.read_text()[-2000:]}")

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def service_assets(
    tiny_models: dict[str, Path], review_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tiny BERT, and the synthetic review CSVs in the one directory the servers allow as a data root."""
    root = tmp_path_factory.mktemp("data_root")
    shutil.copytree(review_csv, root / "reviews")
    return {"model": tiny_models["bert"], "data": root / "reviews", "root": root}


def tiny_job(assets: dict[str, Path], **overrides) -> dict:
    """Config of a seconds-long job: tiny BERT, full fine-tuning, synthetic reviews."""
    config = dict(
        model=str(assets["model"]), dataset=str(assets["data"]), method="full", lr=5e-3, max_steps=12,
        batch_size=16, eval_batch_size=32, precision="fp32", report_to="none", log_every=2, max_length=32,
        eval_every=6, save_every=6,
    )  # fmt: skip
    config.update(overrides)
    return config


def wait_for(
    client: httpx.Client, job_id: str, predicate, timeout: float = 300, interval: float = 0.3
) -> dict:
    deadline = time.monotonic() + timeout
    job = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(interval)
    raise AssertionError(f"timed out waiting on job {job_id}: {job}")


def finished(job: dict) -> bool:
    return job.get("status") in ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="session")
def server(
    postgres: Postgres, service_assets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Server:
    """The session's live server on PostgreSQL (two jobs at a time)."""
    state = tmp_path_factory.mktemp("service") / "state"
    srv = Server(state, postgres.new_database(), "--max-concurrent-jobs", "2", "--data-root", str(service_assets["root"]),
                 "--cancel-grace-s", "20")  # fmt: skip
    srv.start()
    yield srv
    srv.stop()
