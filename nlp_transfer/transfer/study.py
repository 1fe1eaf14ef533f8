"""One fine-tuning run of a label-budget study, reduced to the numbers a table needs.

Few labels need many epochs (16 examples at batch 16 is one step per epoch), so a run trains for
max(min_steps, epochs x batches) optimizer steps and evaluates `evals` times, whatever the budget.
Checkpoints are off (a study re-runs a lost run instead) and, unless kept, weights are deleted after
the metrics are read: a 4-budget x 3-seed x 3-method study would otherwise leave ~3 GB behind.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from nlp_transfer import pipeline
from nlp_transfer.transfer.common import drop_weights, train_config
from nlp_transfer.transfer.tracked import TrackedTask

NO_CHECKPOINTS = 10**9  # save_every beyond any run's length


def budget_run(
    base: dict[str, Any], overrides: dict[str, Any], *, seed: int, output_dir: Path, n_train: int | None = None,
    per_class: int | None = None, min_steps: int = 60, evals: int = 5, validation_size: int | None = 256,
    track: bool = True, keep_weights: bool = False, n_available: int | None = None, track_examples: int = 500,
) -> dict[str, Any]:  # fmt: skip
    """Train on `n_train` examples (or `per_class` per class) and return the run's summary row."""
    probe = train_config(base, **overrides)
    n = per_class * len(probe.labels or [0, 0]) if per_class else (n_train or n_available or 0)
    batches = max(1, math.ceil(n / probe.batch_size))
    steps = max(min_steps, math.ceil(probe.epochs * batches / probe.grad_accum))
    cfg = train_config(
        base, **{**overrides, "seed": seed, "max_train_samples": n_train, "max_steps": steps, "eval_every": math.ceil(steps / evals),
                 "save_every": NO_CHECKPOINTS, "output_dir": str(output_dir), "overwrite_output_dir": True, "report_to": "none"},
    )  # fmt: skip
    task = TrackedTask(cfg, per_class=per_class, validation_size=validation_size, track=track,
                       train_eval_max=track_examples, test_track_max=track_examples)  # fmt: skip
    start = time.perf_counter()
    metrics = pipeline.run(cfg, task=task)
    wall = time.perf_counter() - start
    if not keep_weights:
        drop_weights(output_dir)
    history = metrics.get("history") or [{}]
    last = history[-1]
    sign = -1.0 if cfg.metric_for_best.endswith("loss") else 1.0  # the loop's rule: losses lower, the rest higher
    best = max(history, key=lambda h: sign * h.get(cfg.metric_for_best, -sign * math.inf))
    return {
        "seed": seed,
        "n_train": task.n_train,
        "steps": metrics["train"]["steps"],
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "test_tracked_best": best.get("test_accuracy"),  # test subset scored at each validation pass
        "test_accuracy_last": last.get("test_accuracy"),
        "val_accuracy_best": best.get("accuracy"),
        "val_accuracy_last": last.get("accuracy"),
        "train_accuracy_last": last.get("train_accuracy"),
        "best_step": metrics["best"]["step"],
        "stopped_early": metrics["train"]["stopped_early"],
        "train_time_s": metrics["train"]["train_time_s"],
        "wall_time_s": round(wall, 1),
        "majority_accuracy": max(metrics["test"]["per_class"][c]["support"] for c in task.labels) / metrics["test"]["examples"],
    }


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
