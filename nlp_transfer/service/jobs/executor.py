"""The local executor: runs queued jobs as subprocesses, watches them, and never loses one.

One thread per server. Each tick it (1) copies new lines of every running job's events file into
the database, (2) acts on cancel requests (SIGTERM to the job's training processes, SIGKILL to its
whole process group after the grace period), (3) settles jobs whose processes are gone, from what the run directory holds, and
(4) claims queued jobs up to `max_concurrent_jobs`. A job is `nlp-transfer launch` (the accelerate
config of the job) running the task's recipe, in a session of its own so that it outlives a killed
server and one `killpg` reaches every rank.

How a job ends is read from the run directory, not from exit codes (which `accelerate launch`
rewrites): a finished run is `succeeded`; a process group the server stopped for a drain goes back
to the queue with `resume`; one it stopped for a cancel is `cancelled`; anything else is `failed`
with the last error line of its log. On start, the server adopts its live jobs (pid + start time)
and requeues the dead ones to resume from their last checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from nlp_transfer.rundir import RunDir, RunLockedError
from nlp_transfer.service.jobs import processes, store
from nlp_transfer.service.jobs.events import add_event, read_new_lines
from nlp_transfer.service.jobs.orm import Job
from nlp_transfer.service.settings import ServiceSettings
from nlp_transfer.training.events import ENV as EVENTS_ENV

logger = logging.getLogger(__name__)
RECIPES = {"classification": "classify.py", "summarisation": "summarize.py"}
LOG_NAME = "job.log"


@dataclass
class Running:
    pid: int
    pid_start: str | None
    popen: subprocess.Popen | None = None  # None for a job adopted after a restart
    stop_reason: str | None = None  # "cancel" | "drain"
    kill_at: float | None = None
    rate_anchor: tuple[float, int] | None = None  # (time, step) of this attempt's start event
    extra: dict = field(default_factory=dict)

    def ended(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is not None and not processes.group_alive(self.pid)
        return not processes.our_group(self.pid, self.pid_start)


def run_dir_of(job: Job) -> RunDir:
    return RunDir(Path(job.job_dir or ".") / "run")


class LocalExecutor:
    def __init__(self, settings: ServiceSettings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.running: dict[str, Running] = {}
        self.draining = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-executor", daemon=True)

    # ------------------------------------------------------------------------------ life cycle
    def start(self) -> None:
        with self.sessions() as session:
            self.recover(session)
        self._thread.start()

    def recover(self, session: Session) -> None:
        """Jobs this worker was running when it died: adopt the live, requeue the dead (to resume)."""
        mine = session.scalars(
            select(Job).where(Job.status == "running", Job.worker_id == self.settings.worker_id)
        )
        for job in list(mine):
            if job.pid and processes.leader_alive(job.pid, job.pid_start):
                self.running[job.id] = Running(job.pid, job.pid_start)
                add_event(session, job.id, "adopted", {"pid": job.pid})
                session.commit()
                logger.info("job %s: adopted its live process group %d", job.id, job.pid)
                continue
            if job.pid and processes.our_group(job.pid, job.pid_start):  # leader gone, ranks left
                processes.signal_group(job.pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while processes.group_alive(job.pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
            self._copy_events(session, job, None)
            if job.cancel_requested:
                store.finish(session, job, "cancelled")
            elif run_dir_of(job).is_finished():
                self._succeed(session, job)
            else:
                store.requeue(
                    session, job, interrupted=False, reason="its processes were gone after a server restart"
                )
                logger.info("job %s: processes gone; requeued to resume from its last checkpoint", job.id)

    def drain(self, timeout: float | None = None) -> None:
        """Stop claiming, SIGTERM running jobs (they checkpoint and exit), requeue them, stop."""
        self.draining = True
        for r in list(self.running.values()):
            self._stop_group(r, "drain")
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.cancel_grace_s + 10)
        while self.running and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.1)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self.sessions() as session:
                    self.tick(session)
            except Exception:  # a database hiccup must not kill the executor thread
                logger.exception("executor tick failed; retrying")
            self._stop.wait(self.settings.poll_interval_s)

    # ----------------------------------------------------------------------------------- ticks
    def tick(self, session: Session) -> None:
        for job_id, r in list(self.running.items()):
            job = session.get(Job, job_id)
            session.refresh(job)
            self._copy_events(session, job, r)
            if job.cancel_requested and r.stop_reason is None:
                self._stop_group(r, "cancel")
            if r.kill_at is not None and time.monotonic() > r.kill_at:
                processes.signal_group(r.pid, signal.SIGKILL)
                r.kill_at = None
            if r.ended():
                self._settle(session, job, r)
        store.touch(session, list(self.running), self.settings.worker_id or "")
        while not self.draining and len(self.running) < self.settings.max_concurrent_jobs:
            job = store.claim_next(session, self.settings.worker_id or "")
            if job is None:
                break
            self._launch(session, job)

    def _stop_group(self, r: Running, reason: str) -> None:
        r.stop_reason = r.stop_reason or reason
        if not processes.signal_workers(r.pid, signal.SIGTERM):
            processes.signal_group(r.pid, signal.SIGTERM)
        r.kill_at = time.monotonic() + self.settings.cancel_grace_s

    def _launch(self, session: Session, job: Job) -> None:
        job_dir = Path(job.job_dir) if job.job_dir else self.settings.jobs_dir / job.id
        job.job_dir = str(job_dir)
        run = run_dir_of(job)
        try:
            with run.lock():  # a writer left from a previous attempt: never start a second one
                pass
        except RunLockedError as e:
            store.finish(session, job, "failed", error=str(e))
            return
        job_dir.mkdir(parents=True, exist_ok=True)
        config = {
            **job.config,
            "output_dir": str(run.path),
            "resume": bool(job.resume),
            "overwrite_output_dir": False,
        }
        config_path = job_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        accelerate_config = self.settings.accelerate_configs_dir / job.accelerate_config
        recipe = self.settings.recipes_dir / RECIPES[config.get("task", "classification")]
        cmd = [sys.executable, "-m", "nlp_transfer.launch", "--config_file", str(accelerate_config),
               str(recipe), "--config", str(config_path)]  # fmt: skip
        env = {**os.environ, EVENTS_ENV: str(run.events_path), "NLP_TRANSFER_JOB_ID": job.id}
        # The Hub settings are the server's own (offline here, online on a GPU box that names Hub ids
        # or pushes), so a job resolves models exactly as the validation that admitted it did.
        env["TOKENIZERS_PARALLELISM"] = "false"
        env.pop(self.settings.api_key_env, None)  # the job never needs the server's secret
        with (job_dir / LOG_NAME).open("ab") as log:
            log.write(f"--- attempt {job.attempts}: {' '.join(cmd)}\n".encode())
            log.flush()
            popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=job_dir, env=env, start_new_session=True)  # fmt: skip
        started = processes.start_time(popen.pid)
        job.pid, job.pid_start = popen.pid, started
        add_event(
            session,
            job.id,
            "started",
            {"attempt": job.attempts, "resume": bool(job.resume), "worker": job.worker_id},
        )
        session.commit()
        self.running[job.id] = Running(popen.pid, started, popen)
        logger.info("job %s: started (attempt %d, pid %d)", job.id, job.attempts, popen.pid)

    def _copy_events(self, session: Session, job: Job, r: Running | None) -> None:
        """New lines of the loop's events file -> job_events rows and the job's progress fields."""
        if not job.job_dir:
            return
        lines, offset = read_new_lines(run_dir_of(job).events_path, job.events_offset)
        if not lines:
            return
        for item in lines:
            kind, at = str(item.pop("type", "event")), item.pop("time", None)
            step = item.get("step")
            if isinstance(step, int):
                job.progress_step = step
            if item.get("total_steps"):
                job.progress_total = int(item["total_steps"])
            if kind == "start":
                if item.get("resumed_from_step"):
                    job.resumed_from_step = int(item["resumed_from_step"])
                if r is not None and isinstance(at, (int, float)):
                    r.rate_anchor = (float(at), int(step or 0))
            elif kind == "eval":
                job.latest_metrics = dict(item.get("metrics") or {})
            if r is not None and r.rate_anchor and isinstance(at, (int, float)) and isinstance(step, int):
                t0, s0 = r.rate_anchor
                if at > t0 and step > s0:
                    job.step_rate = (step - s0) / (at - t0)
            add_event(session, job.id, kind, item)
        job.events_offset = offset
        session.commit()

    def _settle(self, session: Session, job: Job, r: Running) -> None:
        self.running.pop(job.id, None)
        self._copy_events(session, job, r)
        returncode = r.popen.returncode if r.popen is not None else None
        run = run_dir_of(job)
        if run.is_finished() and r.stop_reason != "cancel":
            self._succeed(session, job)
        elif r.stop_reason == "cancel" or job.cancel_requested:
            store.finish(session, job, "cancelled")
        elif r.stop_reason == "drain":
            store.requeue(session, job, interrupted=True, reason="server shutdown (drain)")
        else:
            error = processes.last_error_line(Path(job.job_dir or ".") / LOG_NAME, returncode)
            store.finish(session, job, "failed", error=error)
        logger.info("job %s: %s", job.id, job.status)

    def _succeed(self, session: Session, job: Job) -> None:
        run = run_dir_of(job)
        metrics = run.metrics()
        model_id = None
        try:
            from nlp_transfer.service.registry.store import register_run

            model_id = register_run(session, run.path, source="job", job_id=job.id)
        except Exception as e:  # the run is done either way; say why it has no model id
            session.rollback()
            logger.exception("job %s: registering its run failed", job.id)
            job.error = f"registering the finished run failed: {type(e).__name__}: {e}".splitlines()[0]
        final = metrics.get("train", {}).get("steps")
        store.finish(session, job, "succeeded", test_metrics=metrics.get("test"), model_id=model_id,
                     progress_step=final if isinstance(final, int) else job.progress_step)  # fmt: skip
        from nlp_transfer.service.registry.retention import apply_retention

        try:  # the retention setting holds after every job, not only at start
            apply_retention(session, self.settings)
        except Exception:  # a job's result never depends on cleaning up older ones
            session.rollback()
            logger.exception("retention after job %s failed; it runs again after the next job", job.id)
