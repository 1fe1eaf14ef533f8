"""F1 as an `evaluate` module, computed by scikit-learn.

It ships inside the package because `evaluate.load("f1")` fetches its script from the Hub, which is
unreachable offline; `evaluate.load(<this folder>)` reads it from disk instead.
"""

from __future__ import annotations

import datasets
import evaluate
from sklearn.metrics import f1_score

_INPUTS = """
Args:
    predictions (list[int]): predicted class ids.
    references (list[int]): true class ids, same length.
    average (str | None): "binary" (default, scores pos_label only), "macro" (unweighted mean over
        classes), "micro" (global counts), "weighted" (mean weighted by support) or None (one score
        per class, in `labels` order).
    labels (list[int] | None): classes to score and average over; default: every class seen in
        predictions or references. Pass all class ids so an unpredicted class counts as 0.
    pos_label (int): the positive class when average="binary".
    sample_weight (list[float] | None): per-example weights.
    zero_division (float): score used when a class has no predictions or no references (default 0).
Returns:
    {"f1": float}, or {"f1": list[float]} when average is None.
"""


class F1(evaluate.Metric):
    """Harmonic mean of precision and recall, averaged as asked."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="F1 score of predicted class ids against references (scikit-learn f1_score).",
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"
            ],
        )

    def _compute(
        self,
        predictions: list[int],
        references: list[int],
        average: str | None = "binary",
        labels: list[int] | None = None,
        pos_label: int = 1,
        sample_weight: list[float] | None = None,
        zero_division: float = 0.0,
    ) -> dict[str, float | list[float]]:
        score = f1_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        return {"f1": [float(s) for s in score] if average is None else float(score)}
