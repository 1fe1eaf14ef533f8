"""Registering finished runs, moving aliases, deleting models: the registry's rules, without HTTP.

Runs are read only through `nlp_transfer.rundir.RunDir`, once, at registration: the row keeps the
task, method, base model, metrics and card, so listing models never touches the disk and a model
whose files went away still says what it was. Every function here commits its own transaction, so
the API and the executor share one behaviour; `register_run` is idempotent per run directory, which
lets an executor that crashed between "run finished" and "job updated" register again safely.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from nlp_transfer.config import closest
from nlp_transfer.errors import CheckpointError, ConfigError, NLPTransferError
from nlp_transfer.rundir import RunDir, find_runs
from nlp_transfer.service.registry.orm import Alias, AliasHistory, RegisteredModel, utcnow
from nlp_transfer.tasks.spec import task_spec

logger = logging.getLogger("nlp_transfer.service.registry")

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
_ALIAS_RE = re.compile(ALIAS_PATTERN)
SOURCES = ("adapters", "job")
_ATTEMPTS = 6  # retries of a transaction that lost a race (unique insert, lock timeout, deadlock)


class RegistryError(NLPTransferError):
    """Base of the registry's errors; the API maps each subclass to one status code."""


class ModelNotFound(RegistryError, LookupError):
    """404: no live model with that id."""


class AliasNotFound(RegistryError, LookupError):
    """404: no alias with that name."""


class BadAliasName(RegistryError, ValueError):
    """422: an alias name outside ALIAS_PATTERN."""


class ModelInUse(RegistryError):
    """409: the model is what an alias points at."""


class RegistryBusy(RegistryError):
    """503: a transaction kept losing races with concurrent writers."""


def new_model_id() -> str:
    return "mdl-" + uuid.uuid4().hex[:16]


# --- registering runs ----------------------------------------------------------------------------------


def register_run(session: Session, run_dir: Path, *, source: str, job_id: str | None = None) -> str:
    """Register the finished run in `run_dir` and return its model id (the existing id if already there).

    Raises CheckpointError for a run that is unfinished, corrupt or of a newer format. Re-registering a
    soft-deleted run revives it: an explicit registration (a job finishing) wins over an old delete.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    path = Path(run_dir).expanduser().resolve()
    run = RunDir(path)
    if not run.is_finished():
        raise CheckpointError(f"{path} is not a finished run: nothing to register")
    run.meta()  # CheckpointError for a corrupt run or one from a newer nlp-transfer
    run.require_safetensors()  # a run holding pickle weights is never served, so never registered
    fields = dict(
        task=run.task,
        method=run.method,
        base_model=run.base_model,
        primary_metric=_primary_metric(run.task),
        metrics=run.metrics() or {},
        card=run.card_text() or "",
    )
    name = job_id or path.name
    for attempt in range(_ATTEMPTS):
        try:
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.run_dir == str(path)))
            if model is None:
                model = RegisteredModel(
                    id=new_model_id(), name=name, run_dir=str(path), source=source, job_id=job_id, **fields
                )
                session.add(model)
            else:
                for key, value in fields.items():
                    setattr(model, key, value)
                model.deleted_at = None
                if job_id:
                    model.job_id = job_id
            session.commit()
            logger.info(
                "registered %s (%s %s on %s) from %s",
                model.id,
                model.task,
                model.method,
                model.base_model,
                path,
            )
            return model.id
        except (IntegrityError, OperationalError):  # another server registered the same run just now
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _primary_metric(task: str) -> str | None:
    try:
        return task_spec(task).primary_metric
    except ConfigError:
        return None


@dataclass
class ScanResult:
    registered: list[tuple[str, str]]  # (model id, run dir)
    refused: list[tuple[str, str]]  # (path, one-line reason)


def scan_adapters(session: Session, dirs: list[str]) -> ScanResult:
    """Register every finished run under the --adapters directories (called once at start).

    A run that cannot be read is refused with its reason (logged), never stopping the server; a run
    deleted through the API earlier stays deleted (its tombstone is kept); a missing directory is refused.
    """
    result = ScanResult([], [])
    for source in dirs:
        root = Path(source).expanduser().resolve()
        if not root.is_dir():
            result.refused.append((source, f"--adapters {source}: not a directory"))
            continue
        for run_dir in (run.path.resolve() for run in find_runs(root)):
            tomb = session.scalar(
                select(RegisteredModel.id).where(
                    RegisteredModel.run_dir == str(run_dir), RegisteredModel.deleted_at.is_not(None)
                )
            )
            if tomb is not None:
                continue
            try:
                model_id = register_run(session, run_dir, source="adapters")
            except NLPTransferError as e:
                result.refused.append((str(run_dir), str(e)))
                continue
            if run_dir != root:
                _rename(session, model_id, run_dir.relative_to(root).as_posix())
            result.registered.append((model_id, str(run_dir)))
    for path, reason in result.refused:
        logger.warning("registry: refused %s: %s", path, reason)
    return result


def _rename(session: Session, model_id: str, name: str) -> None:
    session.execute(update(RegisteredModel).where(RegisteredModel.id == model_id).values(name=name))
    session.commit()


# --- reading ----------------------------------------------------------------------------------------------


def get_model(session: Session, model_id: str) -> RegisteredModel:
    """The live model `model_id`, or ModelNotFound naming the closest known id."""
    model = session.get(RegisteredModel, model_id, populate_existing=True)
    if model is not None and model.deleted_at is not None:
        raise ModelNotFound(f"model {model_id!r} was deleted at {model.deleted_at:%Y-%m-%d %H:%M:%S} UTC")
    if model is None:
        known = session.scalars(
            select(RegisteredModel.id).where(RegisteredModel.deleted_at.is_(None)).limit(1000)
        ).all()
        raise ModelNotFound(
            f"unknown model {model_id!r}{closest(model_id, list(known))} (GET /v1/models lists them)"
        )
    return model


def list_models(
    session: Session, *, limit: int = 50, after: str | None = None, task: str | None = None
) -> tuple[list[RegisteredModel], bool]:
    """Live models, newest first, `limit` per page after the model id `after`; returns (page, has_more)."""
    query = select(RegisteredModel).where(RegisteredModel.deleted_at.is_(None))
    if task:
        query = query.where(RegisteredModel.task == task)
    if after:
        cursor = get_model(session, after)
        query = query.where(
            or_(
                RegisteredModel.created_at < cursor.created_at,
                and_(RegisteredModel.created_at == cursor.created_at, RegisteredModel.id < cursor.id),
            )
        )
    rows = session.scalars(
        query.order_by(RegisteredModel.created_at.desc(), RegisteredModel.id.desc()).limit(limit + 1)
    ).all()
    return list(rows[:limit]), len(rows) > limit


def aliases_of(session: Session, model_id: str) -> list[str]:
    return sorted(session.scalars(select(Alias.name).where(Alias.model_id == model_id)).all())


def list_aliases(session: Session) -> list[Alias]:
    return list(session.scalars(select(Alias).order_by(Alias.name)).all())


def get_alias(session: Session, name: str) -> Alias:
    check_alias_name(name)
    alias = session.get(Alias, name)
    if alias is None:
        known = list(session.scalars(select(Alias.name)).all())
        raise AliasNotFound(f"unknown alias {name!r}{closest(name, known)} (GET /v1/aliases lists them)")
    return alias


def alias_history(session: Session, name: str, *, limit: int = 100) -> list[AliasHistory]:
    """The alias's moves, newest first (empty for a name never used)."""
    check_alias_name(name)
    query = select(AliasHistory).where(AliasHistory.alias == name).order_by(AliasHistory.id.desc())
    return list(session.scalars(query.limit(limit)).all())


# --- writing ----------------------------------------------------------------------------------------------


def check_alias_name(name: str) -> None:
    if not _ALIAS_RE.match(name or ""):
        raise BadAliasName(
            f"bad alias name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter"
            " (e.g. production, candidate)"
        )


def _retrying(session: Session, what: str, attempt_fn):  # type: ignore[no-untyped-def]
    """Run one transaction, retrying when a concurrent writer won a race (unique key, lock, deadlock)."""
    for attempt in range(_ATTEMPTS):
        try:
            result = attempt_fn()
            session.commit()
            return result
        except RegistryError:
            session.rollback()
            raise
        except (IntegrityError, OperationalError) as e:
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise RegistryBusy(f"{what} kept colliding with concurrent writers; try again") from e
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _lock_live_model(session: Session, model_id: str) -> None:
    """Write-lock the model's row (PostgreSQL row lock; SQLite takes its database write lock here),
    so a concurrent delete of the same model waits for this transaction or makes it see a 404."""
    touched = session.execute(
        update(RegisteredModel)
        .where(RegisteredModel.id == model_id, RegisteredModel.deleted_at.is_(None))
        .values(name=RegisteredModel.name)
    )
    if touched.rowcount == 0:
        session.rollback()
        get_model(session, model_id)  # raises ModelNotFound with a did-you-mean


def move_alias(session: Session, name: str, model_id: str) -> Alias:
    """Point alias `name` at `model_id` (creating it if new) and record the move, in one transaction.

    The alias row is read with SELECT ... FOR UPDATE (PostgreSQL: a row lock, and the newest version
    after waiting; SQLite: the model-row write above already holds the database's write lock), so
    concurrent moves are serialised and each history entry's previous model is the one the alias
    really held. Two first moves of a new alias both insert; the loser's unique-key error retries.
    """
    check_alias_name(name)

    def attempt() -> Alias:
        _lock_live_model(session, model_id)
        alias = session.get(Alias, name, populate_existing=True, with_for_update=True)
        previous = alias.model_id if alias is not None else None
        now = utcnow()
        if alias is None:
            alias = Alias(name=name, model_id=model_id, updated_at=now)
            session.add(alias)
        else:
            alias.model_id, alias.updated_at = model_id, now
        session.add(AliasHistory(alias=name, model_id=model_id, previous_model_id=previous, moved_at=now))
        session.flush()
        return alias

    alias = _retrying(session, f"moving alias {name!r}", attempt)
    logger.info("alias %s -> %s", name, model_id)
    return alias


def remove_alias(session: Session, name: str) -> None:
    """Drop alias `name` (AliasNotFound if absent), recording the removal in its history."""
    check_alias_name(name)

    def attempt() -> None:
        alias = session.get(Alias, name, populate_existing=True, with_for_update=True)
        if alias is None:
            get_alias(session, name)  # raises AliasNotFound
            return
        session.add(
            AliasHistory(alias=name, model_id=None, previous_model_id=alias.model_id, moved_at=utcnow())
        )
        session.delete(alias)
        session.flush()

    _retrying(session, f"removing alias {name!r}", attempt)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def delete_model(
    session: Session, model_id: str, *, state_dir: Path | str | None, adapters: list[str]
) -> Path | None:
    """Unregister a model (409 ModelInUse while an alias points at it); returns the directory removed.

    Files are removed only for a job's run directory inside the state dir; nothing under a user's
    --adapters directory is ever deleted (the row is tombstoned so the next start skips the run).
    """

    def attempt() -> RegisteredModel:
        now = utcnow()
        gone = session.execute(
            update(RegisteredModel)
            .where(RegisteredModel.id == model_id, RegisteredModel.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        if gone.rowcount == 0:
            session.rollback()
            get_model(session, model_id)
        holders = aliases_of(session, model_id)
        if holders:
            raise ModelInUse(
                f"model {model_id} is held by alias {', '.join(holders)}: move or remove the alias first"
            )
        return session.get(RegisteredModel, model_id, populate_existing=True)

    model = _retrying(session, f"deleting model {model_id}", attempt)
    run_dir = Path(model.run_dir)
    user_dirs = [Path(a).expanduser().resolve() for a in adapters]
    if (
        model.source == "job"
        and state_dir is not None
        and _within(run_dir, Path(state_dir).expanduser().resolve())
        and not any(_within(run_dir, d) for d in user_dirs)
        and run_dir.is_dir()
    ):
        shutil.rmtree(run_dir, ignore_errors=True)
        logger.info("deleted model %s and its run directory %s", model_id, run_dir)
        return run_dir
    logger.info("deleted model %s (files kept: %s)", model_id, run_dir)
    return None
