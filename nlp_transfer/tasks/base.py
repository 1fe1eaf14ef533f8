"""The contract between the generic pipeline and one task."""

from __future__ import annotations

from typing import Any, Protocol

import datasets
import torch
from accelerate import Accelerator
from transformers import PreTrainedTokenizerBase

from nlp_transfer.catalog import ResolvedModel
from nlp_transfer.train_config import TrainConfig


class Task(Protocol):
    name: str  # written to nlp_transfer.json
    peft_task: str  # key of methods.peft_methods.TASK_TYPES

    def __init__(self, cfg: TrainConfig) -> None: ...

    def load_data(self) -> datasets.DatasetDict:
        """Validated train/validation(/test) splits; raises DataError before anything is written."""

    def build_model(self, resolved: ResolvedModel, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module: ...

    def tokenize(self, data: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase) -> datasets.DatasetDict:
        """Model inputs plus `labels`; lengths for length-grouped batching come from `input_ids`."""

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any: ...

    def evaluate(self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str) -> dict[str, Any]:
        """Metrics over the whole split, each example counted once (gather_for_metrics)."""

    def metadata(self) -> dict[str, Any]:
        """Task facts for nlp_transfer.json (label names, ...)."""

    # Optional hooks the pipeline calls when a task defines them (not part of the required protocol):
    #   before_training(accelerator, model, eval_loaders) -> None   e.g. score the untrained model
    #   extra_files() -> dict[str, str]   file name -> text, written into the run directory before export
