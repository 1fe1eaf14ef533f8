"""Sequence classification: encoder ([CLS] + pooler) or decoder (last real token) + linear head."""

from __future__ import annotations

import time
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from nlp_transfer.catalog import ResolvedModel
from nlp_transfer.data import sources, validate
from nlp_transfer.metrics.classification import classification_metrics
from nlp_transfer.tasks.base import Task
from nlp_transfer.train_config import TrainConfig


def build_classifier(
    path: str, labels: list[str], pad_token_id: int | None, trust_remote_code: bool
) -> torch.nn.Module:
    """A base model with a fresh classification head, to train (predict.load_classifier reloads a run)."""
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        dtype=torch.float32,  # trainable weights stay fp32; autocast handles speed
    )
    if model.config.pad_token_id is None and pad_token_id is not None:
        model.config.pad_token_id = pad_token_id  # decoders find the last real token through it
    return model


class ClassificationTask(Task):
    name = "classification"
    peft_task = "classification"
    feature_cache_ok = True  # the frozen method may train the head on cached encoder features

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.labels: list[str] = []

    @staticmethod
    def model_class(meta: dict[str, Any]) -> tuple[type, dict[str, Any]]:
        labels = meta["labels"]
        kwargs = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {n: i for i, n in enumerate(labels)},
        }
        return AutoModelForSequenceClassification, kwargs

    def load_data(self) -> datasets.DatasetDict:
        cfg = self.cfg
        raw = sources.select_splits(
            sources.load_source(cfg.dataset, cfg.seed), cfg.train_split, cfg.validation_split, cfg.test_split
        )
        # validate before carving held-out splits, so error row numbers are the file's own
        data, self.labels = validate.classification(raw, cfg.text_column, cfg.label_column, cfg.labels)
        data = sources.ensure_splits(
            data, "train", cfg.validation_split and "validation", cfg.test_split and "test", cfg.seed
        )
        if cfg.max_train_samples:
            data["train"] = data["train"].select(range(min(cfg.max_train_samples, len(data["train"]))))
        if cfg.max_eval_samples:
            for split in ("validation", "test"):
                if split in data:
                    data[split] = data[split].select(range(min(cfg.max_eval_samples, len(data[split]))))
        return data

    def build_model(self, resolved: ResolvedModel, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
        return build_classifier(
            resolved.path, self.labels, tokenizer.pad_token_id, self.cfg.trust_remote_code
        )

    def tokenize(
        self, data: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase
    ) -> datasets.DatasetDict:
        def encode(batch: dict[str, list]) -> dict[str, list]:
            enc = tokenizer(batch["text"], truncation=True, max_length=self.cfg.max_length)
            enc["labels"] = batch["label"]
            return enc

        return data.map(encode, batched=True, remove_columns=["text", "label"], desc="tokenize")

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(tokenizer)

    def evaluate(
        self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str
    ) -> dict[str, Any]:
        preds, refs, losses = [], [], []
        start = time.perf_counter()
        with torch.no_grad():
            for batch in loader:
                logits = model(**batch).logits.float()
                loss = F.cross_entropy(logits, batch["labels"], reduction="none")
                p, r, lo = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"], loss))
                preds.append(p.cpu())
                refs.append(r.cpu())
                losses.append(lo.cpu())
        elapsed = time.perf_counter() - start
        pred, ref = torch.cat(preds), torch.cat(refs)
        metrics = classification_metrics(pred.tolist(), ref.tolist(), self.labels)
        metrics["loss"] = float(torch.cat(losses).mean())
        metrics["examples"] = int(ref.numel())
        metrics["eval_latency_ms_per_example"] = 1000 * elapsed / max(int(ref.numel()), 1)
        return metrics

    def metadata(self) -> dict[str, Any]:
        return {"labels": self.labels}
