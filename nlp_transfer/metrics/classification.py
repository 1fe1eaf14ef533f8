"""Classification scores for a run report: accuracy, macro-F1, per-class scores and the confusion.

Accuracy and macro-F1 go through the shipped `evaluate` modules (the same path a Trainer's
compute_metrics uses); the per-class table and confusion matrix come straight from scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from nlp_transfer.errors import DataError
from nlp_transfer.metrics.loader import load_metric


def _as_ids(values: Sequence[int], what: str, n_labels: int) -> list[int]:
    ids = [int(v) for v in values]
    bad = [v for v in ids if not 0 <= v < n_labels]
    if bad:
        raise DataError(
            f"{what} hold class id {bad[0]}, outside 0..{n_labels - 1} for {n_labels} label names"
        )
    return ids


def classification_metrics(
    predictions: Sequence[int], references: Sequence[int], label_names: list[str]
) -> dict[str, Any]:
    """Scores over every class in `label_names` (ids are positions in that list).

    Macro-F1 averages over all named classes, so a class absent from both predictions and references
    counts as 0 instead of dropping out of the mean (the number stays comparable across splits). The result holds only floats, ints, lists and dicts (JSON-safe).
    """
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references")
    if len(references) == 0:
        raise DataError("no examples to score")
    if len(set(label_names)) != len(label_names) or not label_names:
        raise DataError(f"label names must be distinct and non-empty, got {label_names}")
    labels = list(range(len(label_names)))
    preds = _as_ids(predictions, "predictions", len(labels))
    refs = _as_ids(references, "references", len(labels))

    accuracy = load_metric("accuracy").compute(predictions=preds, references=refs)["accuracy"]
    macro_f1 = load_metric("f1").compute(predictions=preds, references=refs, average="macro", labels=labels)[
        "f1"
    ]
    precision, recall, f1, support = precision_recall_fscore_support(
        refs, preds, labels=labels, average=None, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    return {
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(refs, preds, labels=labels).tolist(),
    }
