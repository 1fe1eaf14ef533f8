"""Score a finished run on a dataset split (its own test split by default): `nlp-transfer eval`."""

from __future__ import annotations

import time
from typing import Any

import datasets

from nlp_transfer.data import sources, validate
from nlp_transfer.errors import DataError
from nlp_transfer.metrics.classification import classification_metrics
from nlp_transfer.predict import load_predictor, resolve_run_dir
from nlp_transfer.rundir import RunDir
from nlp_transfer.tasks.spec import task_spec


def evaluate_run(
    name: str,
    dataset: str | None = None,
    split: str = "test",
    text_column: str | None = None,
    label_column: str | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    run_dir = resolve_run_dir(name)
    run = RunDir(run_dir)
    meta, config = run.meta(), run.config()
    raw = sources.load_source(
        dataset or config.get("dataset", meta.get("dataset")), int(config.get("seed", 42))
    )
    if split not in raw:
        raise DataError(f"no split {split!r} in the dataset; it has {', '.join(raw)}")
    one = datasets.DatasetDict({split: raw[split]})
    predictor = load_predictor(str(run_dir))
    start = time.perf_counter()
    if task_spec(meta["task"]).labelled:  # classification: labels scored against the run's label set
        data, labels = validate.classification(
            one,
            text_column or config.get("text_column", "text"),
            label_column or config.get("label_column", "label"),
            meta["labels"],
        )
        preds = predictor.predict(data[split]["text"], batch_size=batch_size)
        index = {name: i for i, name in enumerate(labels)}
        metrics = classification_metrics([index[p["label"]] for p in preds], data[split]["label"], labels)
    else:
        from nlp_transfer.metrics.summarisation import rouge_metrics

        data = validate.summarisation(
            one, text_column or config.get("text_column", "document"), config.get("summary_column", "summary")
        )
        metrics = rouge_metrics(predictor.summarise(data[split]["document"]), data[split]["summary"])
    metrics["examples"] = len(data[split])
    metrics["eval_time_s"] = round(time.perf_counter() - start, 2)
    return metrics
