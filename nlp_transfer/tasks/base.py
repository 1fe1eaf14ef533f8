"""The contract between the generic pipeline and one task, as a base class every task inherits.

The required methods raise NotImplementedError; the optional hooks do nothing by default, so
`pipeline.run` calls every hook on every task instead of asking `hasattr` which ones exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import datasets
import torch
from accelerate import Accelerator
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase

from nlp_transfer.catalog import ResolvedModel
from nlp_transfer.train_config import TrainConfig

if TYPE_CHECKING:  # annotations only: a task module need not import the methods (and peft)
    from nlp_transfer.methods.registry import Prepared


class Task:
    """One task: its data, its model, its batches and its scores. Subclass and fill in the required part.

    Class attributes:
    - `name`: written to nlp_transfer.json; a key of `tasks.spec.SPECS` for tasks that `predict` can
      reload (the transfer package's language-modelling and multi-task tasks write their own names).
    - `peft_task`: key of `methods.peft_methods.TASK_TYPES` (which PEFT task type and head to save).
    - `feature_cache_ok`: the frozen method may train the head on cached encoder features
      (methods/feature_cache.py); only for tasks whose evaluation feeds the model nothing but its
      validation/test loaders.
    - `compute_copy_ok`: full fine-tuning under bf16 on one CPU may run a bf16 copy of the model
      (training/bf16_weights.py); off for tasks whose model wrapper keeps state that must stay in the
      trained model (buffers, running statistics, an iterator).
    """

    name: str = ""
    peft_task: str = ""
    feature_cache_ok: bool = False
    compute_copy_ok: bool = True

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    # --- required ---------------------------------------------------------------------------------

    def load_data(self) -> datasets.DatasetDict:
        """Validated train/validation(/test) splits; raises DataError before anything is written."""
        raise NotImplementedError

    def build_model(self, resolved: ResolvedModel, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
        """The model to adapt, fp32 weights, loaded from `resolved.path` (safetensors only)."""
        raise NotImplementedError

    def tokenize(
        self, data: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase
    ) -> datasets.DatasetDict:
        """Model inputs plus `labels`; lengths for length-grouped batching come from `input_ids`."""
        raise NotImplementedError

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        """The DataLoader's collate_fn: pads a list of tokenized rows into one batch."""
        raise NotImplementedError

    def evaluate(
        self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str
    ) -> dict[str, Any]:
        """Metrics over the whole split, each example counted once (gather_for_metrics)."""
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """Task facts for nlp_transfer.json (label names, prompt format, ...)."""
        raise NotImplementedError

    # --- optional hooks: the defaults do nothing ----------------------------------------------------

    def wrap_prepared(self, prepared: Prepared) -> Prepared:
        """After the method prepared the model: wrap it to add a loss term (distillation, domain
        adaptation). Default: unchanged."""
        return prepared

    def train_sampler(self, train: datasets.Dataset) -> Sampler[int] | None:
        """A sampler for the training batches (e.g. multi-task batches that each hold one task).
        Default None: the pipeline's seeded, length-grouped EpochSampler."""
        return None

    def before_training(
        self, accelerator: Accelerator, model: torch.nn.Module, eval_loaders: dict[str, Any]
    ) -> None:
        """Called once, after `accelerator.prepare` and before the first step: e.g. score the untrained
        model (summarisation's zero-shot baseline) or build extra evaluation loaders. Default: nothing."""

    def extra_files(self) -> dict[str, str]:
        """File name -> text, written into the run directory (main process) before export, e.g.
        samples.jsonl. Default: none."""
        return {}

    @staticmethod
    def model_class(meta: dict[str, Any]) -> tuple[type, dict[str, Any]]:
        """The transformers Auto class a finished run of this task reloads with, and the head kwargs a
        base model without that head needs (`predict.model_class`, merge)."""
        raise NotImplementedError
