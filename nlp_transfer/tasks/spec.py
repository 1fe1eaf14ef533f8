"""What each task is, in one place: the facts that export, predict, the card, the demo and the service
need without building a model. Light on purpose (no torch import), so any module may read it.

A task class (`nlp_transfer.tasks.<module>.<Class>`) does the work; its `TaskSpec` says what it is.
Adding a task means one entry in `SPECS` and one task module; nothing else compares task names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from nlp_transfer.config import closest
from nlp_transfer.errors import ConfigError


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the `task:` config value, written to nlp_transfer.json
    task_class: str  # "module:Class" of the task that trains it
    predictor_loader: str  # "module:function(run_dir, meta, base) -> predictor" used by predict, the demo, the service
    pipeline_tag: str  # Hugging Face Hub pipeline tag for the card
    phrase: str  # "a <phrase>" in the card's opening sentence
    auto_class: str  # transformers Auto class named in the card's usage section (decoder families)
    primary_metric: str  # the test metric a registry or a table shows first
    shown_metrics: tuple[tuple[str, str], ...]  # (metrics.json key, display name) for tables and the demo
    failure_modes: tuple[str, ...]  # the card's Limitations bullets
    demo_tab: str  # the demo tab that serves it
    example_input: str = "..."
    labelled: bool = False  # predictions are labels from a fixed label set (feedback, drift, per-class tables)
    extra: dict[str, Any] = field(default_factory=dict)


SPECS: dict[str, TaskSpec] = {
    "classification": TaskSpec(
        name="classification",
        task_class="nlp_transfer.tasks.classification:ClassificationTask",
        predictor_loader="nlp_transfer.predict:load_classifier",
        pipeline_tag="text-classification",
        phrase="text classifier",
        auto_class="AutoModelForSequenceClassification",
        primary_metric="accuracy",
        shown_metrics=(("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("examples", "examples")),
        failure_modes=(
            "Inputs that fit none of the labels still get one of them, often with high confidence.",
            "Rare classes and texts unlike the training examples are where most errors concentrate.",
            "The score is not a calibrated probability; check thresholds on your own data.",
        ),
        demo_tab="Sentiment",
        example_input="A tense, funny and surprisingly moving film.",
        labelled=True,
    ),
    "summarisation": TaskSpec(
        name="summarisation",
        task_class="nlp_transfer.tasks.summarisation:SummarisationTask",
        predictor_loader="nlp_transfer.tasks.summary_model:load_summariser",
        pipeline_tag="summarization",
        phrase="summariser",
        auto_class="AutoModelForCausalLM",
        primary_metric="rougeL",
        shown_metrics=(
            ("rouge1", "ROUGE-1"),
            ("rouge2", "ROUGE-2"),
            ("rougeL", "ROUGE-L"),
            ("rougeL_ci95", "ROUGE-L 95% CI"),
            ("n", "examples"),
        ),
        failure_modes=(
            "It can invent facts (names, dates, numbers) that are not in the source.",
            "Greedy decoding can fall into repetition loops; sampling or a repetition penalty helps.",
            "Long sources are truncated to fit the context, so late content is never seen.",
            "ROUGE rewards word overlap; it sees neither invented facts nor repetition.",
        ),
        demo_tab="Summarisation",
    ),
}
TASK_NAMES: tuple[str, ...] = tuple(SPECS)


def task_spec(name: str) -> TaskSpec:
    """The spec of a task name; an unknown name is one ConfigError with the closest known name."""
    try:
        return SPECS[name]
    except KeyError as e:
        known = list(SPECS)
        raise ConfigError(f"unknown task {name!r}{closest(str(name), known)} (tasks: {', '.join(known)})") from e


def load_object(path: str) -> Any:
    """Import "module:attribute" (task classes and predictor loaders are imported only when used)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
