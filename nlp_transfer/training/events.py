"""Training events as JSON lines, for whoever watches a run (the fine-tuning service tails them).

Off unless the environment variable NLP_TRANSFER_EVENTS_FILE names a file: the library never
depends on the service, it only appends `{"type": ..., "time": ..., ...}` lines there from the
main process. Each line is written with one `write` on a file opened for appending, so a reader
never sees two events interleaved, and at worst a torn last line if the process is killed.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV = "NLP_TRANSFER_EVENTS_FILE"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def emit(type_: str, **data: Any) -> None:
    """Append one event; a no-op when the variable is unset. Never raises into the training loop."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"type": type_, "time": time.time(), **data}, default=float) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
    except OSError:
        pass  # a watcher's file must never stop a training run
