"""Warnings a finished run owes its user: a classifier that learned only the majority class, and
validation loss that rose while training went on (overfitting).

Both are cheap to detect from what the run already measured (the test confusion matrix and the
validation history), and both are easy to miss in a table of averages: a collapsed sentiment model
still shows 0.58 accuracy on Rotten Tomatoes. The transfer report (`nlp_transfer/transfer/report.py`)
does the fuller study: pretrained vs scratch over label budgets, and train-validation gaps.
"""

from __future__ import annotations

from typing import Any

COLLAPSE_SHARE = 0.98  # one class gets this share of all test predictions
COLLAPSE_MARGIN = 0.01  # accuracy no more than this above always answering the majority class
OVERFIT_RISE = 0.10  # final validation loss this fraction above its minimum


def collapse_warning(test: dict[str, Any], labels: list[str]) -> str | None:
    """The model answers (almost) one class, or does no better than answering the majority class."""
    confusion = test.get("confusion_matrix")
    if not confusion or len(labels) < 2:
        return None
    n = sum(map(sum, confusion))
    predicted = [sum(row[j] for row in confusion) for j in range(len(labels))]
    majority_rate = max(map(sum, confusion)) / n
    top = max(range(len(labels)), key=predicted.__getitem__)
    share = predicted[top] / n
    if share < COLLAPSE_SHARE and test["accuracy"] > majority_rate + COLLAPSE_MARGIN:
        return None
    return (
        f"the model predicts {labels[top]!r} for {share:.0%} of the {n} test examples "
        f"(accuracy {test['accuracy']:.3f}, majority-class rate {majority_rate:.3f}): it has not learned "
        "the task. Usual causes: too few optimizer steps for this LR (a new head needs a few hundred), "
        "an LR so high that training diverged (watch the loss), or labels that do not follow the text."
    )


def overfit_warning(history: list[dict[str, Any]]) -> str | None:
    """Validation loss ended well above its best value."""
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    if len(losses) < 2:
        return None
    best_step, best = min(losses, key=lambda x: x[1])
    last_step, last = losses[-1]
    if best <= 0 or last < best * (1 + OVERFIT_RISE) or last_step == best_step:
        return None
    return (
        f"validation loss rose from {best:.4f} at step {best_step} to {last:.4f} at step {last_step} "
        f"(+{last / best - 1:.0%}): the model is overfitting. The exported weights are the best-scoring "
        "checkpoint's; fewer epochs, early_stopping_patience, more data or a smaller method "
        "(lora, top_k) would spend less compute on it."
    )


def run_warnings(metrics: dict[str, Any], labels: list[str] | None) -> list[str]:
    found = [overfit_warning(metrics.get("history", []))]
    if labels and "test" in metrics:
        found.append(collapse_warning(metrics["test"], labels))
    return [w for w in found if w]
