"""Load the metric modules shipped in this package through `evaluate`.

`evaluate.load("accuracy")` fetches a script from the Hub and fails offline, so names are mapped to
the folders next to this file; a local path never touches the network. `evaluate` copies the script
into its modules cache (keyed by the script's hash), so edits to a script take effect on next load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import evaluate

from nlp_transfer.errors import AssetError, ConfigError

KNOWN_METRICS = ("accuracy", "f1", "rouge")


def metric_path(name: str) -> Path:
    """The folder holding `<name>/<name>.py`, or a ConfigError naming the metrics we ship."""
    if name not in KNOWN_METRICS:
        raise ConfigError(f"unknown metric {name!r}; known metrics: {', '.join(KNOWN_METRICS)}")
    path = Path(__file__).parent / name
    if not (path / f"{name}.py").is_file():
        raise AssetError(
            f"metric script {path / (name + '.py')} is missing: nlp-transfer was installed without its "
            "package data; reinstall it"
        )
    return path


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """`evaluate.load` for a shipped metric; kwargs go to `evaluate.load`.

    Predictions are kept in memory by default (no arrow files or locks under the evaluate cache);
    pass `num_process`/`process_id` for distributed evaluation, which needs the on-disk cache.
    """
    kwargs.setdefault("keep_in_memory", kwargs.get("num_process", 1) == 1)
    return evaluate.load(str(metric_path(name)), **kwargs)
