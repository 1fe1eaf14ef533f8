"""Everything checked before a job is queued or a file is kept, with the library's own messages.

The config goes through `config.from_dict(TrainConfig, ...)`, the function behind the CLI's
parsing, so a typo gets the same one line (did-you-mean included) from the API as from the shell.
Then the model name, the method, the accelerate config and the data itself (loaded and checked by
the task, exactly as the recipe will) are checked. A failure raises `Rejected` with the HTTP status
and one line; nothing has been written at that point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlp_transfer.config import closest, from_dict
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.service.settings import ServiceSettings

MANAGED_KEYS = ("output_dir", "resume", "overwrite_output_dir")  # the service sets these per job


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def check_dataset_path(settings: ServiceSettings, dataset: str) -> None:
    """Built-in names pass; anything else must resolve (symlinks and `..` followed) under a data root."""
    from nlp_transfer.data.sources import BUILTIN

    if dataset in BUILTIN:
        return
    resolved = Path(dataset).expanduser().resolve()
    roots = settings.allowed_roots()
    if not inside(resolved, roots):
        raise Rejected(
            403,
            f"dataset {dataset!r} is outside the service's data roots ({', '.join(map(str, roots))}); "
            f"upload it with POST /v1/files or use a built-in ({', '.join(BUILTIN)})",
        )


def check_accelerate_config(settings: ServiceSettings, name: str) -> None:
    available = sorted(p.name for p in settings.accelerate_configs_dir.glob("*.yaml"))
    if name not in available:
        raise Rejected(
            422,
            f"unknown accelerate_config {name!r}{closest(name, available)} (available: {', '.join(available)})",
        )


def validate_job(
    settings: ServiceSettings, config: dict[str, Any], dataset_file: str | None, accelerate_config: str
) -> dict[str, Any]:
    """The config to store (dataset filled in from the uploaded file), or Rejected."""
    for key in MANAGED_KEYS:
        if key in config:
            raise Rejected(
                422,
                f"config key {key!r} is set by the service (each job writes to its own directory); leave it out",
            )
    config = dict(config)
    if dataset_file is not None:
        if "dataset" in config:
            raise Rejected(422, "give either training_file or config.dataset, not both")
        config["dataset"] = dataset_file
    check_accelerate_config(settings, accelerate_config)
    from nlp_transfer.train_config import TrainConfig

    try:
        cfg = from_dict(TrainConfig, config)
    except NLPTransferError as e:
        raise Rejected(422, str(e)) from e
    check_dataset_path(settings, cfg.dataset)
    if cfg.trust_remote_code:
        raise Rejected(422, "trust_remote_code is refused by the service: it would run code downloaded from the Hub on the server")
    from nlp_transfer.catalog import resolve_model
    from nlp_transfer.methods import get_method
    from nlp_transfer.tasks import get_task

    try:
        get_method(cfg.method)
        resolve_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
        get_task(cfg.task)(cfg).load_data()  # the recipe's own loading and validation
    except NLPTransferError as e:
        raise Rejected(422, str(e)) from e
    except (
        ValueError,
        TypeError,
        KeyError,
        OSError,
    ) as e:  # a check the library lacks: still the client's data
        raise Rejected(422, f"the dataset cannot be used: {type(e).__name__}: {e}".splitlines()[0]) from e
    return config


def validate_file(path: Path, task: str, columns: dict[str, str]) -> tuple[int, dict[str, str]]:
    """(rows of its train split, the columns checked) for an uploaded file, or Rejected (422)."""
    from nlp_transfer.data import sources, validate

    if path.suffix not in sources.FILE_TYPES:
        raise Rejected(
            422,
            f"unsupported file type {path.suffix or '(none)'!r}: upload one of {', '.join(sources.FILE_TYPES)}",
        )
    try:
        data = sources.load_source(str(path), seed=0)
        if task == "classification":
            checked, _labels = validate.classification(data, columns["text_column"], columns["label_column"])
        elif task == "summarisation":
            checked = validate.summarisation(data, columns["text_column"], columns["summary_column"])
        else:
            raise Rejected(
                422,
                f"task must be classification or summarisation, not {task!r}{closest(task, ['classification', 'summarisation'])}",
            )
    except NLPTransferError as e:
        raise Rejected(422, f"{path.name}: {e}") from e
    return sum(len(ds) for ds in checked.values()), columns
