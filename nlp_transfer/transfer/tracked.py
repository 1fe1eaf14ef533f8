"""Classification runs for transfer studies: label budgets, k-per-class subsets, and learning curves.

`TrackedTask` is the built-in classification task with three additions, all needed to compare
methods honestly at small label budgets:
- the training set can be k examples per class (seeded), not just the first N;
- the validation split can be capped (model selection should not cost more labels than training);
- at every validation pass it also scores (a fixed subset of) the test split and of the training
  examples, so the run's history shows the train-validation gap (overfitting) and what early
  stopping / best-weight selection bought on test, without a second run. Selection still uses
  validation only; the run's final test score is always on the whole test split.
It also reads the derived datasets of `transfer.derived_datasets` (rt_subjectivity, rt_typos).
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from nlp_transfer.data import validate
from nlp_transfer.data.sources import ensure_splits, select_splits
from nlp_transfer.errors import DataError
from nlp_transfer.tasks.classification import ClassificationTask
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.transfer import derived_datasets as derived


def load_classification(cfg: TrainConfig, dataset: str | None = None) -> tuple[datasets.DatasetDict, list[str]]:
    """Validated train/validation(/test) splits and label names, as the built-in task loads them."""
    raw = select_splits(derived.load(dataset or cfg.dataset, cfg.seed), cfg.train_split, cfg.validation_split, cfg.test_split)
    data, labels = validate.classification(raw, cfg.text_column, cfg.label_column, cfg.labels)
    data = ensure_splits(data, "train", cfg.validation_split and "validation", cfg.test_split and "test", cfg.seed)
    return data, labels


def k_per_class(labels: list[int], k: int, seed: int) -> list[int]:
    """k indices of each class, drawn with `seed`; DataError when a class has fewer than k."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    picked = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        if len(idx) < k:
            raise DataError(f"class {cls} has only {len(idx)} training examples, fewer than k={k}")
        picked.extend(rng.choice(idx, size=k, replace=False).tolist())
    return sorted(picked)


class TrackedTask(ClassificationTask):
    feature_cache_ok = False  # its extra evaluations feed raw text to the model being trained

    def __init__(
        self, cfg: TrainConfig, *, per_class: int | None = None, validation_size: int | None = None,
        track: bool = True, train_eval_max: int = 512, test_track_max: int = 500,
    ):  # fmt: skip
        super().__init__(cfg)
        self.per_class, self.validation_size, self.track = per_class, validation_size, track
        self.train_eval_max, self.test_track_max = train_eval_max, test_track_max
        self._train_eval: Any = None
        self._collate: Any = None
        self._loaders: dict[str, Any] = {}

    def load_data(self) -> datasets.DatasetDict:
        cfg = self.cfg
        data, self.labels = load_classification(cfg)
        if self.per_class:
            data["train"] = data["train"].select(k_per_class(data["train"]["label"], self.per_class, cfg.seed))
        elif cfg.max_train_samples:
            data["train"] = data["train"].select(range(min(cfg.max_train_samples, len(data["train"]))))
        self.n_train = len(data["train"])
        if self.validation_size and "validation" in data:
            data["validation"] = data["validation"].select(range(min(self.validation_size, len(data["validation"]))))
        if cfg.max_eval_samples:
            for split in ("validation", "test"):
                if split in data:
                    data[split] = data[split].select(range(min(cfg.max_eval_samples, len(data[split]))))
        return data

    def tokenize(self, data: datasets.DatasetDict, tokenizer: Any) -> datasets.DatasetDict:
        encoded = super().tokenize(data, tokenizer)
        train = encoded["train"]
        self._train_eval = train.select(range(min(self.train_eval_max, len(train))))
        test = encoded.get("test")
        self._test_track = test.select(range(min(self.test_track_max, len(test)))) if test is not None else None
        return encoded

    def collator(self, tokenizer: Any) -> Any:
        self._collate = super().collator(tokenizer)
        return self._collate

    def before_training(self, accelerator: Accelerator, model: torch.nn.Module, eval_loaders: dict[str, Any]) -> None:
        if not self.track:
            return
        self._loaders = {}
        for split, ds in (("train", self._train_eval), ("test", self._test_track)):
            if ds is not None:
                loader = DataLoader(ds, batch_size=self.cfg.eval_batch_size, collate_fn=self._collate)
                self._loaders[split] = accelerator.prepare_data_loader(loader)

    def evaluate(self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str) -> dict[str, Any]:
        metrics = super().evaluate(accelerator, model, loader, split)
        if split == "validation" and self.track:
            for other in ("train", "test"):
                if other in self._loaders:
                    m = super().evaluate(accelerator, model, self._loaders[other], other)
                    metrics[f"{other}_accuracy"], metrics[f"{other}_macro_f1"] = m["accuracy"], m["macro_f1"]
        return metrics
