"""Metrics that work offline: evaluate modules shipped in this package, plus report-ready summaries."""

from nlp_transfer.metrics.classification import classification_metrics
from nlp_transfer.metrics.loader import KNOWN_METRICS, load_metric
from nlp_transfer.metrics.summarisation import paired_bootstrap, rouge_metrics

__all__ = ["KNOWN_METRICS", "classification_metrics", "load_metric", "paired_bootstrap", "rouge_metrics"]
