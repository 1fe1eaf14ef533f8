"""Feature caching for `frozen`: run the frozen encoder once, then train the head on its outputs.

When no encoder weight trains, every epoch recomputes the same encoder outputs; computing them once
(eval mode, no grad) and training pooler + classifier on the cached first-token states turns each
further epoch into a few milliseconds of head arithmetic. What changes: the encoder's own dropout no
longer perturbs the features (the head's dropout still does). The saved run is the whole model, and
its test metrics come from that model on the tokenized test split, so the cache cannot hide a bug.

Supported: heads of BERT's shape (pooler -> dropout -> linear classifier: BERT, MiniLM, and the
other `*ForSequenceClassification` classes built that way) in a single process. Anything else
trains the usual way, and the run says why.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers.modeling_outputs import SequenceClassifierOutput


def unsupported_reason(model: nn.Module, num_processes: int) -> str | None:
    """None when the head can train on cached features, else why not (logged by the pipeline)."""
    if num_processes > 1:
        return "feature caching runs in one process only"
    base = getattr(model, "base_model", None)
    if base is None or base is model or getattr(base, "pooler", None) is None:
        return f"{type(model).__name__} has no pooler -> classifier head"
    if not isinstance(getattr(model, "classifier", None), nn.Linear) or not isinstance(getattr(model, "dropout", None), nn.Dropout):
        return f"{type(model).__name__}'s head is not pooler -> dropout -> linear"
    return None


class CachedFeatureHead(nn.Module):
    """The model's own pooler, dropout and classifier (the same parameters), fed cached features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.pooler, self.dropout, self.classifier = model.base_model.pooler, model.dropout, model.classifier

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        logits = self.classifier(self.dropout(self.pooler(features.unsqueeze(1))))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class FeatureDataset(Dataset):
    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"features": self.features[i], "labels": self.labels[i]}


@torch.no_grad()
def encode(accelerator: Accelerator, model: nn.Module, loader: DataLoader, split: str) -> FeatureDataset:
    """First-token states of the frozen encoder for every example, in the loader's (unshuffled) order."""
    was_training = model.training
    model.eval()
    base = model.base_model.to(accelerator.device)
    feats, labels = [], []
    for batch in tqdm(loader, desc=f"cache {split} features", disable=not accelerator.is_local_main_process):
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with accelerator.autocast():
            hidden = base(**inputs).last_hidden_state[:, 0]
        feats.append(hidden.float().cpu())
        labels.append(batch["labels"].cpu())
    model.train(was_training)
    return FeatureDataset(torch.cat(feats), torch.cat(labels))
