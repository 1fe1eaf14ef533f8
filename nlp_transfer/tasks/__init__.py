"""Tasks: what the model predicts, how data becomes batches, and how results are scored.

Each task's facts live in `tasks/spec.py` (`SPECS`); the class that trains it is named there and
imported only when asked for, so reading the spec (config validation, the demo, the card) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nlp_transfer.tasks.spec import load_object, task_spec

if TYPE_CHECKING:
    from nlp_transfer.tasks.base import Task


def get_task(name: str) -> type[Task]:
    """The task class of a task name; an unknown name is one ConfigError with the closest known name."""
    return load_object(task_spec(name).task_class)
