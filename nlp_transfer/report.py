"""The table a finished run prints: what a user looks at first."""

from __future__ import annotations

from typing import Any

from nlp_transfer.train_config import TrainConfig


def print_summary(cfg: TrainConfig, metrics: dict[str, Any]) -> None:
    test, train = metrics.get("test", {}), metrics.get("train", {})
    rows = [("model", cfg.model), ("method", cfg.method), ("dataset", cfg.dataset)]
    for key in ("accuracy", "macro_f1", "rouge1", "rouge2", "rougeL", "examples"):
        if key in test:
            rows.append(
                (f"test {key}", f"{test[key]:.4f}" if isinstance(test[key], float) else str(test[key]))
            )
    zero = test.get("zero_shot", {})
    if "rougeL" in zero:
        rows.append(("zero-shot test rougeL", f"{zero['rougeL']:.4f}"))
    rows += [
        ("trainable params", f"{metrics.get('trainable_params', 0):,} of {metrics.get('total_params', 0):,}"),
        (
            "train time",
            f"{train.get('train_time_s', 0):.1f} s ({train.get('samples_per_s', 0):.1f} samples/s)",
        ),
        ("precision", str(train.get("mixed_precision"))),
        ("peak memory", f"{metrics.get('peak_memory_mb', 0):.0f} MB"),
        ("saved to", cfg.output_dir),
    ]
    rows += [("WARNING", w) for w in metrics.get("warnings", [])]
    width = max(len(k) for k, _ in rows)
    print("\n" + "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
