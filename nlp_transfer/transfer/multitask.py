"""Multi-task learning: one shared encoder, one classification head per task, mixed task-pure batches.

Each batch holds one task (so every head sees full batches and batch statistics stay per task);
which task comes next is drawn by a sampling rule over the tasks' training-set sizes n_i:
- proportional: p_i ~ n_i (every example equally often; big tasks dominate),
- uniform: p_i = 1/K (small tasks revisited often; risk of overfitting them),
- temperature: p_i ~ n_i^(1/T) (T = 1 proportional, T -> inf uniform; T = 2 is a common middle).
Sampling is seeded per epoch, so a resumed run replays the same task order.

The saved run is one directory: the shared encoder (a plain `save_pretrained` model at the top, so
it also loads with AutoModel), `heads.safetensors` and `multitask.json`; `load_task_model(dir, task)`
gives a classifier for any one task. Methods: full, top_k and frozen (the heads always train); PEFT
adapters are refused, as saving them would need the heads as `modules_to_save`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Sampler
from transformers import AutoModel, DataCollatorWithPadding
from transformers.modeling_outputs import SequenceClassifierOutput

from nlp_transfer.errors import ConfigError
from nlp_transfer.metrics.classification import classification_metrics
from nlp_transfer.tasks.base import Task
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.transfer.common import train_config
from nlp_transfer.transfer.tracked import load_classification

RULES = ("proportional", "uniform", "temperature")
POOLINGS = ("mean", "pooler")
META = "multitask.json"
HEADS = "heads.safetensors"


def mixing_weights(sizes: list[int], rule: str, temperature: float = 2.0) -> list[float]:
    """Probability of drawing each task's next batch."""
    if rule not in RULES:
        raise ConfigError(f"sampling must be one of {', '.join(RULES)}, not {rule!r}")
    if rule == "temperature" and temperature <= 0:
        raise ConfigError(f"sampling temperature must be positive, not {temperature}")
    n = np.asarray(sizes, dtype=float)
    w = {"proportional": n, "uniform": np.ones_like(n), "temperature": n ** (1.0 / temperature)}[rule]
    return (w / w.sum()).tolist()


class TaskBatchSampler(Sampler[int]):
    """Indices in blocks of `batch_size` from one task each; the DataLoader cuts them into batches.

    An epoch is ceil(N / batch_size) batches (N = all tasks' examples). Within a task, examples are
    drawn without replacement from a fresh permutation, reshuffled when used up.
    """

    def __init__(self, task_ids: list[int], batch_size: int, weights: list[float], seed: int):
        self.by_task = [np.flatnonzero(np.asarray(task_ids) == t) for t in range(len(weights))]
        if any(len(idx) == 0 for idx in self.by_task):
            raise ConfigError("every task needs training examples")
        self.batch_size, self.weights, self.seed, self.epoch = batch_size, np.asarray(weights), seed, 0
        self.n_batches = -(-len(task_ids) // batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches * self.batch_size

    def task_order(self) -> list[int]:
        rng = np.random.default_rng(self.seed * 1_000_003 + self.epoch)
        return rng.choice(len(self.weights), size=self.n_batches, p=self.weights).tolist()

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng(self.seed * 1_000_003 + self.epoch + 1)
        pools: list[list[int]] = [[] for _ in self.by_task]
        for task in self.task_order():
            for _ in range(self.batch_size):
                if not pools[task]:
                    pools[task] = rng.permutation(self.by_task[task]).tolist()
                yield pools[task].pop()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class MultiTaskModel(nn.Module):
    """Shared encoder + {task: dropout -> linear} heads over the pooled features.

    `pooling`: "mean" of the token states (default: what sentence-embedding checkpoints such as
    all-MiniLM-L6-v2 were trained for, and heads on it learn from few steps) or "pooler", the
    encoder's own [CLS] pooler as BertForSequenceClassification uses it.
    """

    def __init__(self, encoder: nn.Module, tasks: dict[str, list[str]], dropout: float = 0.1, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.encoder, self.task_names, self.tasks, self.pooling = encoder, list(tasks), tasks, pooling
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({t: nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, len(labels))) for t, labels in tasks.items()})
        self.max_labels = max(len(labels) for labels in tasks.values())

    @property
    def config(self) -> Any:
        return self.encoder.config

    @property
    def base_model(self) -> nn.Module:  # lets top_k / frozen tell the shared encoder from the heads
        return self.encoder

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        pooled = getattr(out, "pooler_output", None) if self.pooling == "pooler" else None
        return pooled if pooled is not None else mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task_ids: torch.Tensor,
                labels: torch.Tensor | None = None, **extra: torch.Tensor) -> SequenceClassifierOutput:  # fmt: skip
        feats = self.features(input_ids, attention_mask, **extra)
        logits = feats.new_full((len(feats), self.max_labels), -1e4, dtype=torch.float32)
        loss = feats.new_zeros((), dtype=torch.float32)
        for t, name in enumerate(self.task_names):
            rows = (task_ids == t).nonzero(as_tuple=True)[0]
            if len(rows) == 0:
                continue
            task_logits = self.heads[name](feats[rows]).float()
            logits[rows, : task_logits.shape[1]] = task_logits
            if labels is not None:
                loss = loss + F.cross_entropy(task_logits, labels[rows], reduction="sum")
        loss = loss / len(feats) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, path: Any, state_dict: dict[str, torch.Tensor] | None = None, **kwargs: Any) -> None:
        path = Path(path)
        state_dict = state_dict if state_dict is not None else self.state_dict()
        encoder = {k[len("encoder.") :]: v for k, v in state_dict.items() if k.startswith("encoder.")}
        self.encoder.save_pretrained(path, state_dict=encoder, **{k: v for k, v in kwargs.items() if k == "safe_serialization"})
        heads = {k: v.contiguous() for k, v in state_dict.items() if k.startswith("heads.")}
        save_file(heads, str(path / HEADS))
        (path / META).write_text(json.dumps({"tasks": self.tasks, "pooling": self.pooling}, indent=2) + "\n")


class TaskClassifier(nn.Module):
    """One task's view of a saved multi-task model: a classifier like any other (logits over its labels)."""

    def __init__(self, model: MultiTaskModel, task: str):
        super().__init__()
        self.model, self.task_id = model, model.task_names.index(task)
        self.labels = model.tasks[task]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: Any) -> SequenceClassifierOutput:
        task_ids = torch.full((len(input_ids),), self.task_id, device=input_ids.device)
        out = self.model(input_ids, attention_mask, task_ids, **extra)
        return SequenceClassifierOutput(logits=out.logits[:, : len(self.labels)])


def load_task_model(run_dir: str | Path, task: str) -> TaskClassifier:
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / META).read_text())
    if task not in meta["tasks"]:
        raise ConfigError(f"{run_dir} has no task {task!r}; its tasks: {', '.join(meta['tasks'])}")
    model = MultiTaskModel(AutoModel.from_pretrained(run_dir, use_safetensors=True), meta["tasks"], pooling=meta.get("pooling", "mean"))
    model.heads.load_state_dict({k[len("heads.") :]: v for k, v in load_file(str(run_dir / HEADS)).items()})
    return TaskClassifier(model.eval(), task)


class MultiTaskTask(Task):
    """Several classification datasets at once: one encoder, one head per task, task-pure batches."""

    name = "multitask_classification"
    peft_task = "features"

    def __init__(self, cfg: TrainConfig, tasks: dict[str, dict[str, Any]], sampling: str = "temperature", temperature: float = 2.0,
                 pooling: str = "mean"):  # fmt: skip
        if not tasks:
            raise ConfigError("multi-task learning needs at least one task")
        if cfg.method not in ("full", "top_k", "frozen"):
            raise ConfigError(f"multi-task supports methods full, top_k and frozen, not {cfg.method!r}")
        mixing_weights([1] * len(tasks), sampling, temperature)  # validate early
        super().__init__(cfg)
        self.task_specs, self.sampling, self.temperature, self.pooling = tasks, sampling, temperature, pooling
        self.labels: dict[str, list[str]] = {}
        self.sizes: dict[str, int] = {}

    def load_data(self) -> datasets.DatasetDict:
        parts: dict[str, list[datasets.Dataset]] = {"train": [], "validation": [], "test": []}
        for t, (name, spec) in enumerate(self.task_specs.items()):
            spec = dict(spec)
            cap = spec.pop("max_train_samples", None)
            data, self.labels[name] = load_classification(train_config({**spec, "seed": self.cfg.seed}, where=f"tasks.{name}"))
            if cap:
                data["train"] = data["train"].select(range(min(int(cap), len(data["train"]))))
            self.sizes[name] = len(data["train"])
            for split in parts:
                if split in data:
                    ds = data[split]
                    if split != "train" and self.cfg.max_eval_samples:
                        ds = ds.select(range(min(self.cfg.max_eval_samples, len(ds))))
                    ds = ds.cast_column("label", datasets.Value("int64")).add_column("task_ids", [t] * len(ds))
                    parts[split].append(ds)
        return datasets.DatasetDict({s: datasets.concatenate_datasets(p) for s, p in parts.items() if p})

    def build_model(self, resolved: Any, tokenizer: Any) -> nn.Module:
        encoder = AutoModel.from_pretrained(resolved.path, use_safetensors=True, dtype=torch.float32)
        return MultiTaskModel(encoder, self.labels, pooling=self.pooling)

    def tokenize(self, data: datasets.DatasetDict, tokenizer: Any) -> datasets.DatasetDict:
        def encode(batch: dict[str, list]) -> dict[str, list]:
            enc = tokenizer(batch["text"], truncation=True, max_length=self.cfg.max_length)
            enc["labels"], enc["task_ids"] = batch["label"], batch["task_ids"]
            return enc

        return data.map(encode, batched=True, remove_columns=data["train"].column_names, desc="tokenize")

    def collator(self, tokenizer: Any) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(tokenizer)

    def train_sampler(self, train: datasets.Dataset) -> TaskBatchSampler:
        weights = mixing_weights([self.sizes[n] for n in self.labels], self.sampling, self.temperature)
        return TaskBatchSampler(train["task_ids"], self.cfg.batch_size, weights, self.cfg.seed)

    def evaluate(self, accelerator: Accelerator, model: nn.Module, loader: Any, split: str) -> dict[str, Any]:
        preds, refs, tasks, losses = [], [], [], []
        with torch.no_grad():
            for batch in loader:
                out = model(**batch)
                logits = out.logits.float()
                loss = F.cross_entropy(logits, batch["labels"], reduction="none")
                p, r, t, lo = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"], batch["task_ids"], loss))
                preds.append(p.cpu()), refs.append(r.cpu()), tasks.append(t.cpu()), losses.append(lo.cpu())
        pred, ref, task = torch.cat(preds), torch.cat(refs), torch.cat(tasks)
        metrics: dict[str, Any] = {"loss": float(torch.cat(losses).mean()), "examples": int(ref.numel()), "per_task": {}}
        for t, name in enumerate(self.labels):
            rows = task == t
            if rows.any():
                m = classification_metrics(pred[rows].tolist(), ref[rows].tolist(), self.labels[name])
                metrics["per_task"][name] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "examples": int(rows.sum())}
                metrics[f"{name}_accuracy"], metrics[f"{name}_macro_f1"] = m["accuracy"], m["macro_f1"]
        per_task = metrics["per_task"].values()
        metrics["accuracy"] = float(np.mean([m["accuracy"] for m in per_task]))
        metrics["macro_f1"] = float(np.mean([m["macro_f1"] for m in per_task]))
        return metrics

    def metadata(self) -> dict[str, Any]:
        weights = mixing_weights([self.sizes[n] for n in self.labels], self.sampling, self.temperature)
        return {"tasks": self.labels, "train_sizes": self.sizes, "sampling": self.sampling, "temperature": self.temperature,
                "mixing_weights": dict(zip(self.labels, weights, strict=True))}  # fmt: skip
