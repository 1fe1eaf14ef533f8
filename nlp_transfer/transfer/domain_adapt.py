"""Unsupervised domain adaptation: labelled source data, unlabelled target data, one classifier.

Loss = task loss on a source batch + lambda(p) * distance(source features, target features), where
the features are what the classification head reads and p is training progress. Two distances:
- `mmd`: multi-kernel MMD between the two feature batches (DAN);
- `adversarial`: a domain classifier behind a gradient-reversal layer (DANN): it learns to tell
  the domains apart, the reversed gradient teaches the encoder to make them indistinguishable.
`none` is the source-only baseline. Target labels are never used for training or model selection
(selection is on source validation); the target test split is only scored.

`DomainAdaptModel` wraps the classifier so the generic loop needs nothing new: each training
forward draws the next target batch itself. Resuming restores the weights and the lambda schedule
(a buffer) but not the position in the target stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader
from transformers.modeling_outputs import SequenceClassifierOutput

from nlp_transfer.config import opt
from nlp_transfer.data import validate
from nlp_transfer.errors import ConfigError
from nlp_transfer.methods.registry import Prepared, decay_groups
from nlp_transfer.tasks.classification import ClassificationTask
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.training.loop import total_steps
from nlp_transfer.transfer import derived_datasets as derived
from nlp_transfer.transfer.common import HeadInput
from nlp_transfer.transfer.grl import SCHEDULES, DomainClassifier, schedule
from nlp_transfer.transfer.mmd import mmd2
from nlp_transfer.transfer.tracked import TrackedTask

MODES = ("none", "mmd", "adversarial")


@dataclass
class DomainAdaptation:
    target_dataset: str = opt("rt_typos", "unlabelled target domain: rt_typos, a built-in, a file or a directory; "
                              "its train split's text is used without labels, its test split is only scored")
    target_text_column: str = opt("text", "text column of the target dataset")
    target_label_column: str = opt("label", "label column of the target test split (scoring only)")
    mode: str = opt("mmd", "none (source only) | mmd | adversarial")
    lam: float = opt(1.0, "weight of the distance at full schedule (adversarial: the reversed-gradient scale)")
    schedule: str = opt("dann", "lambda over training progress p: constant | linear | dann (2/(1+exp(-10p))-1)")
    domain_lr: float = opt(1e-3, "learning rate of the domain classifier (adversarial); new weights learn faster")
    domain_hidden: int = opt(256, "hidden units of the domain classifier")

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.lam < 0:
            raise ConfigError(f"lam must be >= 0, not {self.lam}")


def cycle(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    """Endless target batches; the loader reshuffles at each pass."""
    while True:
        yield from loader


class DomainAdaptModel(nn.Module):
    def __init__(
        self, model: nn.Module, target_batches: Iterator[dict[str, torch.Tensor]], *, mode: str, lam: float,
        schedule_name: str, total_calls: int, domain_hidden: int = 256,
    ):  # fmt: skip
        super().__init__()
        if mode not in ("mmd", "adversarial"):
            raise ConfigError(f"DomainAdaptModel needs mode mmd or adversarial, not {mode!r}")
        self.model, self.mode, self.lam, self.schedule_name = model, mode, lam, schedule_name
        self.total_calls = max(total_calls, 1)
        self.target_batches = target_batches
        self.features = HeadInput(model)
        hidden = model.config.hidden_size
        self.domain = DomainClassifier(hidden, domain_hidden) if mode == "adversarial" else None
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))  # in checkpoints: the schedule resumes
        self.stats = self._fresh_stats()

    @staticmethod
    def _fresh_stats() -> dict[str, float]:
        return {"distance": 0.0, "domain_accuracy": math.nan, "n": 0}

    @property
    def config(self) -> Any:
        return self.model.config

    def current_lambda(self) -> float:
        return self.lam * schedule(self.schedule_name, int(self.calls) / self.total_calls)

    def distance(self, source: torch.Tensor, target: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        """The alignment loss term (already weighted for mmd) and, for adversarial, the domain accuracy."""
        if self.mode == "mmd":
            return lam * mmd2(source, target), math.nan
        logits = self.domain(torch.cat([source, target]).float(), lam)
        domain = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(logits.device)
        accuracy = float(((logits > 0).float() == domain).float().mean())
        return F.binary_cross_entropy_with_logits(logits, domain), accuracy

    def forward(self, **batch: torch.Tensor) -> SequenceClassifierOutput:
        if not self.training:
            return self.model(**batch)
        out = self.model(**batch)
        source = self.features.take(batch.get("attention_mask"))
        device = out.logits.device
        target_batch = {k: v.to(device) for k, v in next(self.target_batches).items() if k != "labels"}
        self.model(**target_batch)
        target = self.features.take(target_batch.get("attention_mask"))
        lam = self.current_lambda()
        extra, accuracy = self.distance(source, target, lam)
        self.calls += 1
        n = self.stats["n"]
        value = float(extra.detach()) / lam if self.mode == "mmd" and lam > 0 else float(extra.detach())
        self.stats["n"] = n + 1
        self.stats["distance"] = (self.stats["distance"] * n + value) / (n + 1)
        if not math.isnan(accuracy):
            prev = 0.0 if math.isnan(self.stats["domain_accuracy"]) else self.stats["domain_accuracy"]
            self.stats["domain_accuracy"] = (prev * n + accuracy) / (n + 1)
        return SequenceClassifierOutput(loss=out.loss + extra, logits=out.logits)

    def pop_stats(self) -> dict[str, float]:
        """Running means since the last call (for the validation history), then reset."""
        out = {"da_lambda": self.current_lambda(), f"da_{self.mode}": self.stats["distance"]}
        if self.mode == "adversarial":
            out["da_domain_accuracy"] = self.stats["domain_accuracy"]
        self.stats = self._fresh_stats()
        return out

    def save_pretrained(self, path: Any, state_dict: dict[str, torch.Tensor] | None = None, **kwargs: Any) -> None:
        """The classifier as a plain model (what predict loads); the domain classifier beside it in
        its own file (trained weights, useful to probe the learned features; nothing loads it)."""
        state_dict = state_dict if state_dict is not None else self.state_dict()
        inner = {k[len("model.") :]: v for k, v in state_dict.items() if k.startswith("model.")}
        self.model.save_pretrained(path, state_dict=inner, **kwargs)
        domain = {k: v.contiguous() for k, v in state_dict.items() if k.startswith("domain.")}
        if domain:
            save_file(domain, str(Path(path) / "domain_classifier.safetensors"))


class DomainAdaptTask(TrackedTask):
    """Classification on the source dataset, adapted towards an unlabelled target, scored on both."""

    # DomainAdaptModel counts its calls in a buffer (the lambda schedule, saved in checkpoints), keeps
    # running statistics and a target-batch iterator: a bf16 copy would train those in the copy.
    compute_copy_ok = False

    def __init__(self, cfg: TrainConfig, da: DomainAdaptation):
        super().__init__(cfg, track=False)
        da.validate()
        self.da = da
        self.wrapper: DomainAdaptModel | None = None

    def load_data(self) -> datasets.DatasetDict:
        data = super().load_data()
        target = derived.load(self.da.target_dataset, self.cfg.seed)
        for split in ("train", "test"):
            if split not in target:
                raise ConfigError(f"target dataset {self.da.target_dataset!r} needs a {split} split (has {', '.join(target)})")
        col, lab = self.da.target_text_column, self.da.target_label_column
        names = {k: v for k, v in ((col, "text"), (lab, "label")) if k != v}
        self.target_train = target["train"].select_columns([col]).rename_columns({k: v for k, v in names.items() if k == col})
        test, _ = validate.classification(datasets.DatasetDict(test=target["test"].select_columns([col, lab])), col, lab, self.labels)
        test = test["test"]
        if self.cfg.max_eval_samples:
            test = test.select(range(min(self.cfg.max_eval_samples, len(test))))
        self.target_test = test
        return data

    def tokenize(self, data: datasets.DatasetDict, tokenizer: Any) -> datasets.DatasetDict:
        encoded = super().tokenize(data, tokenizer)
        enc = lambda b: tokenizer(b["text"], truncation=True, max_length=self.cfg.max_length)  # noqa: E731
        self.target_train_enc = self.target_train.map(enc, batched=True, remove_columns=["text"])
        test = datasets.DatasetDict(test=self.target_test)
        self.target_test_enc = ClassificationTask.tokenize(self, test, tokenizer)["test"]
        return encoded

    def wrap_prepared(self, prepared: Prepared) -> Prepared:
        if self.da.mode == "none":
            return prepared
        cfg = self.cfg
        steps = total_steps(cfg, math.ceil(self.n_train / cfg.batch_size))
        wrapper = DomainAdaptModel(
            prepared.model, self._target_stream(), mode=self.da.mode, lam=self.da.lam, schedule_name=self.da.schedule,
            total_calls=steps * cfg.grad_accum, domain_hidden=self.da.domain_hidden,
        )  # fmt: skip
        groups = list(prepared.param_groups)
        if wrapper.domain is not None:
            groups += decay_groups(list(wrapper.domain.named_parameters()), self.da.domain_lr, cfg.weight_decay)
        self.wrapper = wrapper
        note = f"domain adaptation: {self.da.mode}, lambda {self.da.lam} ({self.da.schedule} schedule), target {self.da.target_dataset}"
        return Prepared(wrapper, groups, prepared.is_peft, [*prepared.notes, note])

    def _target_stream(self) -> Iterator[dict[str, torch.Tensor]]:
        """Lazy: the pipeline wraps the model before it tokenizes, so the loader is built on first use."""
        generator = torch.Generator().manual_seed(self.cfg.seed + 1)
        loader = DataLoader(self.target_train_enc, batch_size=self.cfg.batch_size, shuffle=True, drop_last=True,
                            collate_fn=self._collate, generator=generator)  # fmt: skip
        yield from cycle(loader)

    def before_training(self, accelerator: Accelerator, model: torch.nn.Module, eval_loaders: dict[str, Any]) -> None:
        loader = DataLoader(self.target_test_enc, batch_size=self.cfg.eval_batch_size, collate_fn=self._collate)
        self._loaders = {"target_test": accelerator.prepare_data_loader(loader)}

    def evaluate(self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str) -> dict[str, Any]:
        metrics = super().evaluate(accelerator, model, loader, split)
        if split == "validation" and self.wrapper is not None:
            metrics.update(self.wrapper.pop_stats())
        if split == "test":
            target = super().evaluate(accelerator, model, self._loaders["target_test"], "target_test")
            metrics["target"] = {k: target[k] for k in ("accuracy", "macro_f1", "per_class", "examples")}
        return metrics

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "domain_adaptation": {"mode": self.da.mode, "target_dataset": self.da.target_dataset}}
