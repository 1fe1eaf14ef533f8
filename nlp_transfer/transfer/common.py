"""Small helpers the transfer recipes share: configs built on TrainConfig, run clean-up, statistics."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from nlp_transfer.config import from_dict
from nlp_transfer.rundir import CHECKPOINTS_DIR
from nlp_transfer.train_config import TrainConfig


def train_config(base: dict[str, Any], where: str = "train", **overrides: Any) -> TrainConfig:
    """A validated TrainConfig from a recipe's `train:` mapping plus per-run overrides.

    The transfer recipes keep TrainConfig as the one source of truth for training options: their
    own configs hold a `train:` mapping of TrainConfig keys, checked here with the same messages.
    A `task` override that TrainConfig does not know (masked_lm) is set after validation.
    """
    task = overrides.pop("task", None)
    cfg = from_dict(TrainConfig, {**base, **overrides}, where=where)
    return dataclasses.replace(cfg, task=task) if task else cfg


def drop_weights(run_dir: str | Path) -> None:
    """Delete the weights and checkpoints of a finished study run (metrics, config and card stay)."""
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    for path in run_dir.glob("*.safetensors"):
        path.unlink()


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


def find_head(model: torch.nn.Module) -> torch.nn.Module:
    """The classification head (`classifier` in BERT-likes, `score` in decoders), outermost match,
    so a PEFT `modules_to_save` wrapper is found rather than one of its copies."""
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in ("classifier", "score"):
            return module
    raise ValueError(f"no classification head named classifier or score in {type(model).__name__}")


def pool(features: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """[B, H] features as they are; [B, T, H] (decoder heads see every position) -> the last real token."""
    if features.ndim == 2:
        return features
    if attention_mask is None:
        return features[:, -1]
    positions = torch.arange(features.shape[1], device=features.device)
    last = (attention_mask.to(features.device) * positions).argmax(-1)
    return features[torch.arange(len(features), device=features.device), last]


class HeadInput:
    """Records what goes into the classification head: the features the classifier decides from."""

    def __init__(self, model: torch.nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = find_head(model).register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        self.value = args[0]

    def take(self, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.value is None:
            raise RuntimeError("the classification head did not run")
        value, self.value = self.value, None
        return pool(value, attention_mask)


def recipe_main(config_cls: type, study: Any, argv: list[str]) -> int:
    """CLI shell of a transfer recipe: parse the config (YAML + flags), run, print; one-line errors."""
    from nlp_transfer import log
    from nlp_transfer.config import parse_config
    from nlp_transfer.errors import NLPTransferError

    log.setup()
    try:
        cfg = parse_config(config_cls, argv)
        print(study(cfg))
    except NLPTransferError as e:
        return log.report_error(e)
    return 0
