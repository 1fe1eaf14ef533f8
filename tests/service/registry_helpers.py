"""Helpers shared by the registry tests: a real tiny finished run, copies of it, fresh databases."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from nlp_transfer.service import db


def train_tiny_run(model_dir: Path, data_dir: Path, out: Path) -> Path:
    """A real finished LoRA run of the tiny BERT on the synthetic reviews (a few seconds)."""
    from nlp_transfer.pipeline import run
    from nlp_transfer.train_config import TrainConfig

    cfg = TrainConfig(
        model=str(model_dir), dataset=str(data_dir), method="lora", method_args={"r": 4}, lr=2e-2, epochs=1,
        batch_size=32, eval_batch_size=48, precision="fp32", report_to="none", output_dir=str(out),
        log_every=5, max_length=32,
    )  # fmt: skip
    cfg.validate()
    run(cfg)
    return out


_CACHE: dict[str, Path] = {}


def shared_tiny_run(model_dir: Path, data_dir: Path, root: Path) -> Path:
    """`train_tiny_run` once per test session (modules share it; tests copy it, never change it)."""
    if "run" not in _CACHE:
        _CACHE["run"] = train_tiny_run(model_dir, data_dir, root / "tiny_run")
    return _CACHE["run"]


def copy_run(run: Path, dest: Path) -> Path:
    """A second registrable run (the registry keys runs by directory), without checkpoints."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "logs", ".*"))
    return dest


def migrated_sessions(url: str) -> sessionmaker[Session]:
    db.upgrade(url)
    return db.session_factory(db.make_engine(url))
