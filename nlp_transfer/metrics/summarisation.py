"""ROUGE for summaries, with bootstrap intervals because test sets here are small (tens of examples).

A ROUGE mean over ~25 examples moves by several points between resamples, so every score comes with
its example count and a 95% interval, and system comparisons use a paired bootstrap on the same
examples rather than two unrelated intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nlp_transfer.errors import DataError
from nlp_transfer.metrics.loader import load_metric

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _bootstrap_mean_ci(values: np.ndarray, n: int, seed: int) -> list[float]:
    """Percentile 95% interval of the mean over `n` resamples with replacement."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def rouge_metrics(
    predictions: list[str], references: list[str], *, use_stemmer: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Mean ROUGE F-measures, mean prediction length in words, n, and a bootstrap CI for rougeL.

    Stemming is on (the usual choice for English summarisation) so "runs" matches "run".
    """
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise DataError("no summaries to score")
    per_example = load_metric("rouge").compute(
        predictions=list(predictions),
        references=list(references),
        use_stemmer=use_stemmer,
        use_aggregator=False,
    )
    scores: dict[str, Any] = {key: float(np.mean(per_example[key])) for key in ROUGE_KEYS}
    scores["rougeL_ci95"] = _bootstrap_mean_ci(np.asarray(per_example["rougeL"]), n=1000, seed=seed)
    scores["mean_prediction_words"] = float(np.mean([len(p.split()) for p in predictions]))
    scores["n"] = len(predictions)
    return scores


def paired_bootstrap(
    a_scores: Sequence[float], b_scores: Sequence[float], n: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Mean of b - a per example and its 95% interval, resampling examples jointly.

    `a` is the baseline, `b` the system under test: a positive mean_diff with an interval above 0
    means b is better on these examples. Pairing removes the example-difficulty variance that two
    separate intervals would double-count.
    """
    if len(a_scores) != len(b_scores):
        raise DataError(
            f"paired bootstrap needs scores on the same examples: {len(a_scores)} vs {len(b_scores)}"
        )
    if not len(a_scores):
        raise DataError("no scores to compare")
    diff = np.asarray(b_scores, dtype=float) - np.asarray(a_scores, dtype=float)
    return {"mean_diff": float(diff.mean()), "ci95": _bootstrap_mean_ci(diff, n=n, seed=seed)}
