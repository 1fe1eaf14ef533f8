"""The run directory: the one module that knows its file names, its format version and how to write it.

A finished run is a directory that export wrote; predict, evaluation, merge, the card, the Hub upload,
the demo and the service read it only through `RunDir`. Keeping the names here means a layout change
is one edit, and every reader applies the same checks: a run is finished only when `nlp_transfer.json`
exists (written last), pickle weights are never loaded or uploaded, and a newer format is refused
with one line instead of being half-understood.

Layout (format_version 1; runs written before format_version existed load the same way):
  nlp_transfer.json   task, method, base model and fingerprint, labels (the "finished" marker)
  run_config.yaml     the resolved config       metrics.json   what the run measured
  README.md           the model card            weights        adapter_model.safetensors or model*.safetensors
  checkpoints/, logs/ local only                events.jsonl   progress events (local only)
  .export-tmp/        export's staging dir      .nlp_transfer.lock   one writer at a time
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from nlp_transfer.errors import CheckpointError, NLPTransferError

FORMAT_VERSION = 1
META_FILE = "nlp_transfer.json"
CONFIG_FILE = "run_config.yaml"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
EVENTS_FILE = "events.jsonl"
SAMPLES_FILE = "samples.jsonl"  # example outputs a generating task saves beside its metrics
LOCK_FILE = ".nlp_transfer.lock"
EXPORT_TMP = ".export-tmp"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# torch.save / pickle formats: loading one can run arbitrary code, uploading one spreads that risk.
PICKLE_SUFFIXES = (".bin", ".pt", ".pkl", ".pth", ".ckpt")
# Never part of a published run (nor are dot-files: the lock, the staging dir, temp files).
LOCAL_ONLY = frozenset({CHECKPOINTS_DIR, LOGS_DIR, EVENTS_FILE})


class RunLockedError(NLPTransferError, RuntimeError):
    """Another process is writing this run directory."""


def is_pickle(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def atomic_write_text(path: Path, text: str) -> None:
    """Temp file in the same directory + os.replace: a reader sees the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a run directory is meant to be shared and published
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """One run directory: reads are validated and cached, writes are atomic.

    `name` is what a user picks the run by (the demo, the registry); it defaults to the directory name.
    """

    def __init__(self, path: Path | str, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def export_tmp(self) -> Path:
        return self.path / EXPORT_TMP

    def is_finished(self) -> bool:
        """Export writes the meta file last, so its presence means every other file is in place."""
        return self.meta_path.is_file()

    def _json(self, name: str, *, required: bool) -> dict[str, Any]:
        path = self.path / name
        if not path.is_file():
            if required:
                raise CheckpointError(f"{self.path} is not a finished nlp-transfer run: {name} is missing")
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path} is corrupt ({e}); re-export the run") from e
        if not isinstance(data, dict):
            raise CheckpointError(f"{path} should hold a JSON object, found {type(data).__name__}")
        return data

    def _cached(self, key: str, load: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def meta(self) -> dict[str, Any]:
        """The run's description; CheckpointError when missing, corrupt or of an unknown format."""
        return self._cached("meta", self._load_meta)

    def _load_meta(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise CheckpointError(f"no run directory at {self.path}")
        meta = self._json(META_FILE, required=True)
        version = meta.get("format_version", 1)  # runs from before the field existed are version 1
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise CheckpointError(
                f"{self.meta_path} has an unknown format_version {version!r}; re-export the run"
            )
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{self.path} was written by a newer nlp-transfer (format {version}, this one reads up to "
                f"{FORMAT_VERSION}); upgrade nlp-transfer"
            )
        if not isinstance(meta.get("task"), str):
            raise CheckpointError(f"{self.meta_path} names no task; re-export the run")
        return meta

    def metrics(self) -> dict[str, Any]:
        return self._cached("metrics", lambda: self._json(METRICS_FILE, required=False))

    def config(self) -> dict[str, Any]:
        """The resolved run config; {} if absent."""
        return self._cached("config", self._load_config)

    def _load_config(self) -> dict[str, Any]:
        path = self.path / CONFIG_FILE
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise CheckpointError(f"{path} is corrupt ({type(e).__name__}); re-export the run") from e
        return data if isinstance(data, dict) else {}

    def weight_config(self) -> dict[str, Any]:
        """adapter_config.json for an adapter run, config.json for a full model ({} if unreadable)."""
        try:
            return self._json(ADAPTER_CONFIG if self.is_peft else MODEL_CONFIG, required=False)
        except CheckpointError:
            return {}

    def card_text(self) -> str | None:
        path = self.path / CARD_FILE
        try:
            return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
        except OSError:
            return None

    @property
    def task(self) -> str:
        return str(self.meta()["task"])

    @property
    def method(self) -> str:
        return str(self.meta().get("method") or "unknown")

    @property
    def is_peft(self) -> bool:
        return bool(self.meta().get("is_peft"))

    @property
    def base_model(self) -> str:
        return str(self.meta().get("base_model") or "?")

    @property
    def hub_base(self) -> str | None:
        return self.meta().get("base_model_hub_id") or None

    @property
    def dataset(self) -> str | None:
        return self.meta().get("dataset") or None

    @property
    def labels(self) -> list[str]:
        return [str(x) for x in self.meta().get("labels") or []]

    def split(self, name: str) -> dict[str, Any]:
        """Metrics of one split ("test", "validation", "train"); {} when absent."""
        part = self.metrics().get(name)
        return part if isinstance(part, dict) else {}

    @property
    def test_metrics(self) -> dict[str, Any]:
        return self.split("test")

    @property
    def max_length(self) -> int:
        try:
            return int(self.config().get("max_length", 512))
        except (TypeError, ValueError):
            return 512

    def weight_files(self) -> list[str]:
        """Top-level weight files: safetensors and any pickle format (which is never loaded)."""
        if not self.path.is_dir():
            return []
        return sorted(
            p.name
            for p in self.path.iterdir()
            if p.is_file() and (p.suffix == ".safetensors" or is_pickle(p.name))
        )

    def require_safetensors(self) -> None:
        """Refuse a run holding pickle weights, or no safetensors weights: neither is ever loaded or uploaded.

        PEFT and transformers fall back to torch.load when safetensors are missing, and torch.load can
        run code; a stray pickle beside good weights is refused too, so it is never published.
        """
        files = self.weight_files()
        pickles = [f for f in files if is_pickle(f)]
        if pickles:
            raise CheckpointError(
                f"only safetensors weights are loaded or uploaded and {self.path} holds {', '.join(pickles)} "
                "(pickle files are never loaded): remove them or re-export the run"
            )
        if not any(f.endswith(".safetensors") for f in files):
            raise CheckpointError(f"only safetensors weights are loaded and {self.path} has none")

    def published_files(self) -> list[str]:
        """Files that belong to the run as published (relative posix paths), chosen by exclusion.

        Left out: checkpoints/, logs/, the events file, dot-files (the lock, staging and temp files) and
        symlinks (they could point outside the run). Everything else export or the user put there goes.
        """
        out = []
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path)
            if rel.parts[0] in LOCAL_ONLY or any(part.startswith(".") for part in rel.parts):
                continue
            inside = [self.path.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts) + 1)]
            if p.is_file() and not any(q.is_symlink() for q in inside):
                out.append(rel.as_posix())
        return out

    def _invalidate(self, name: str) -> None:
        key = {META_FILE: "meta", METRICS_FILE: "metrics", CONFIG_FILE: "config"}.get(name)
        self._cache.pop(key or "", None)

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        self._invalidate(name)
        return path

    def write_json(self, name: str, data: Any) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, default=float) + "\n")

    def write_config(self, config: dict[str, Any]) -> Path:
        return self.write_text(CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        return self.write_json(METRICS_FILE, metrics)

    def write_meta(self, meta: dict[str, Any]) -> Path:
        """Stamp the format version; call last (the meta file marks the run finished)."""
        rest = {k: v for k, v in meta.items() if k != "format_version"}  # merge copies an older run's meta
        return self.write_json(META_FILE, {"format_version": FORMAT_VERSION, **rest})

    def append_event(self, event: dict[str, Any]) -> None:
        """One JSON line per event; a line is written in one call so readers never see half of one."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self.events_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, default=str) + "\n")

    def staging(self) -> RunDir:
        """A fresh staging directory inside the run (export writes there, then `publish` moves it in)."""
        shutil.rmtree(self.export_tmp, ignore_errors=True)
        self.export_tmp.mkdir(parents=True)
        return RunDir(self.export_tmp)

    def publish(self, staged: RunDir) -> None:
        """Move every staged file into the run, the meta file last, and drop the staging directory.

        A reader never sees a meta file beside weights of another export: until the last rename the
        directory is not a finished run (`is_finished` is False).
        """
        self.meta_path.unlink(missing_ok=True)
        for path in sorted(staged.path.iterdir(), key=lambda p: p.name == META_FILE):
            target = self.path / path.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(path, target)
        staged.path.rmdir()
        self._cache.clear()

    def clear(self) -> None:
        """Delete the run's contents but not its lock file (the lock holder is the one clearing it)."""
        if not self.path.is_dir():
            return
        for p in self.path.iterdir():
            if p.name == LOCK_FILE:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        self._cache.clear()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's write lock; a second writer gets RunLockedError at once (it does not wait).

        The lock is an OS file lock on a file inside the directory, so it is released when the holder
        dies, even by SIGKILL. If nothing was written while it was held, the lock file (and a directory
        this call created) is removed again, so a run refused early leaves the directory as it found it.
        """
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_existed = self.lock_path.exists()
        before = {p.name for p in self.path.iterdir()} - {LOCK_FILE}
        lock = FileLock(str(self.lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout as e:
            raise RunLockedError(
                f"{self.path} is being written by another process; wait for it or pick another output_dir"
            ) from e
        try:
            yield
        finally:
            lock.release()
            after = {p.name for p in self.path.iterdir()} - {LOCK_FILE} if self.path.is_dir() else set()
            if not lock_existed and after == before:  # nothing written: leave the directory as it was
                self.lock_path.unlink(missing_ok=True)
                if created and not after and self.path.is_dir():
                    self.path.rmdir()

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """`lock()` in the process that writes: rank 0 of a multi-process launch, or a lone process.

        The other ranks of one launch write nothing here; letting them lock would refuse the run itself.
        """
        if int(os.environ.get("RANK", "0") or 0) != 0:
            yield
            return
        with self.lock():
            yield


def find_runs(root: Path | str) -> list[RunDir]:
    """Every finished run at or under `root` (checkpoints, logs and staging directories are skipped)."""
    root = Path(root)
    if (root / META_FILE).is_file():
        return [RunDir(root)]
    found = []
    for meta in sorted(root.rglob(META_FILE)):
        parts = meta.relative_to(root).parts[:-1]
        if not any(p in LOCAL_ONLY or p.startswith(".") for p in parts):
            found.append(RunDir(meta.parent))
    return found
