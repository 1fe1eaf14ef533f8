"""ROUGE as an `evaluate` module, computed by Google's `rouge-score` package.

It ships inside the package because `evaluate.load("rouge")` fetches its script from the Hub, which
is unreachable offline; `evaluate.load(<this folder>)` reads it from disk instead. Aggregates are
plain means of per-example F-measures (no resampling), so they are exact and reproducible.
"""

from __future__ import annotations

import datasets
import evaluate
from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_INPUTS = """
Args:
    predictions (list[str]): generated texts.
    references (list[str] | list[list[str]]): one reference per prediction, or several (the best
        match counts, as in rouge-score's score_multi).
    rouge_types (list[str] | None): default rouge1, rouge2, rougeL, rougeLsum. rougeLsum treats
        newlines as sentence breaks, so put one sentence per line if you want it to differ from rougeL.
    use_stemmer (bool): Porter-stem tokens before matching (default False).
    use_aggregator (bool): True (default) gives the mean F-measure per type, False a list with one
        F-measure per example.
    tokenizer: optional object with a `tokenize(text) -> list[str]` method (default: rouge-score's
        lowercase alphanumeric tokenizer, English only).
Returns:
    {rouge_type: float} or {rouge_type: list[float]}.
"""


class Rouge(evaluate.Metric):
    """N-gram (rouge1/2) and longest-common-subsequence (rougeL/Lsum) overlap F-measures."""

    def _info(self) -> evaluate.MetricInfo:
        # Single-reference first: a plain string must never be read as a list of references.
        return evaluate.MetricInfo(
            description="ROUGE F-measures between generated and reference texts (rouge-score package).",
            citation="",
            inputs_description=_INPUTS,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str] | list[list[str]],
        rouge_types: list[str] | None = None,
        use_stemmer: bool = False,
        use_aggregator: bool = True,
        tokenizer: object | None = None,
    ) -> dict[str, float | list[float]]:
        types = list(rouge_types or ROUGE_TYPES)
        scorer = rouge_scorer.RougeScorer(types, use_stemmer=use_stemmer, tokenizer=tokenizer)
        per_example: dict[str, list[float]] = {t: [] for t in types}
        for prediction, reference in zip(predictions, references, strict=True):
            if isinstance(reference, str):
                scores = scorer.score(reference, prediction)
            else:
                scores = scorer.score_multi(reference, prediction)
            for t in types:
                per_example[t].append(float(scores[t].fmeasure))
        if not use_aggregator:
            return per_example
        return {t: sum(v) / len(v) for t, v in per_example.items()}
