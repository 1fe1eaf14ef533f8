"""Accuracy as an `evaluate` module, computed by scikit-learn.

It ships inside the package because `evaluate.load("accuracy")` fetches its script from the Hub,
which is unreachable offline; `evaluate.load(<this folder>)` reads it from disk instead.
"""

from __future__ import annotations

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_INPUTS = """
Args:
    predictions (list[int]): predicted class ids.
    references (list[int]): true class ids, same length.
    normalize (bool): True (default) gives the fraction correct, False the count correct.
    sample_weight (list[float] | None): per-example weights.
Returns:
    {"accuracy": float}
"""


class Accuracy(evaluate.Metric):
    """Fraction of predictions equal to their reference."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Fraction of predicted class ids equal to the reference ids (scikit-learn accuracy_score).",
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"
            ],
        )

    def _compute(
        self,
        predictions: list[int],
        references: list[int],
        normalize: bool = True,
        sample_weight: list[float] | None = None,
    ) -> dict[str, float]:
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
