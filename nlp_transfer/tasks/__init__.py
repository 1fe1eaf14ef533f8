"""Tasks: what the model predicts, how data becomes batches, and how results are scored."""

from __future__ import annotations

from nlp_transfer.config import closest
from nlp_transfer.errors import ConfigError
from nlp_transfer.tasks.base import Task


def get_task(name: str) -> type[Task]:
    if name == "classification":
        from nlp_transfer.tasks.classification import ClassificationTask

        return ClassificationTask
    if name == "summarisation":
        from nlp_transfer.tasks.summarisation import SummarisationTask

        return SummarisationTask
    known = ["classification", "summarisation"]
    raise ConfigError(f"unknown task {name!r}{closest(name, known)} (tasks: {', '.join(known)})")
