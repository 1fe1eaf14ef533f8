"""Knowledge distillation: a fine-tuned teacher's soft labels train a smaller or adapter-based student.

Loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y)
(Hinton et al., 2015). The temperature T > 1 exposes the teacher's relative confidence in the wrong
classes ("dark knowledge"); the T^2 keeps the soft term's gradient scale independent of T. alpha = 0
is plain supervised training of the same student, the baseline distillation must beat.

Students: the same pretrained architecture with fewer layers (`student_layers`: layers kept evenly
spaced from the bottom to the top, initialised from the pretrained ones as DistilBERT did), and/or
any method of the registry (e.g. lora: an adapter student on the frozen base). The teacher is a
finished classification run directory; it runs in eval mode without gradients on each batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from nlp_transfer.config import opt
from nlp_transfer.errors import ConfigError
from nlp_transfer.methods.registry import Prepared
from nlp_transfer.methods.top_k import find_blocks
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.transfer.tracked import TrackedTask


@dataclass
class Distillation:
    teacher: str = opt("", "directory of a finished classification run (the fine-tuned teacher)")
    temperature: float = opt(2.0, "softmax temperature of the soft labels; 1 = the teacher's own probabilities")
    alpha: float = opt(0.5, "weight of the soft-label loss; 1 - alpha goes to the hard labels; 0 = no teacher")
    student_layers: int = opt(0, "keep this many transformer layers of the student (evenly spaced); 0 = all")

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, not {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], not {self.alpha}")
        if self.student_layers < 0:
            raise ConfigError(f"student_layers must be >= 0, not {self.student_layers}")


def kept_layers(n_layers: int, keep: int) -> list[int]:
    """Evenly spaced layer indices, always including the first and the last."""
    if not 1 <= keep <= n_layers:
        raise ConfigError(f"student_layers must be between 1 and the model's {n_layers} layers, not {keep}")
    return sorted({int(round(x)) for x in np.linspace(0, n_layers - 1, keep)})


def shrink(model: nn.Module, keep: int) -> nn.Module:
    """Drop transformer layers in place, keeping `keep` evenly spaced pretrained ones."""
    base = model.base_model
    name, blocks = find_blocks(base)
    indices = kept_layers(len(blocks), keep)
    parent_name, _, attr = name.rpartition(".")
    parent = base.get_submodule(parent_name) if parent_name else base
    setattr(parent, attr, nn.ModuleList([blocks[i] for i in indices]))
    model.config.num_hidden_layers = len(indices)
    return model


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    soft = F.kl_div(F.log_softmax(student.float() / temperature, -1), F.softmax(teacher.float() / temperature, -1), reduction="batchmean")
    hard = F.cross_entropy(student.float(), labels)
    return alpha * temperature**2 * soft + (1 - alpha) * hard


class DistillModel(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float, alpha: float):
        super().__init__()
        self.student, self.teacher, self.temperature, self.alpha = student, teacher, temperature, alpha
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()

    @property
    def config(self) -> Any:
        return self.student.config

    def train(self, mode: bool = True) -> DistillModel:
        super().train(mode)
        self.teacher.eval()  # the teacher's dropout stays off: its soft labels must be its best guess
        return self

    def forward(self, **batch: torch.Tensor) -> SequenceClassifierOutput:
        out = self.student(**batch)
        if not self.training or "labels" not in batch or self.alpha == 0:
            return out
        with torch.no_grad():
            teacher = self.teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
        loss = distill_loss(out.logits, teacher, batch["labels"], self.temperature, self.alpha)
        return SequenceClassifierOutput(loss=loss, logits=out.logits)

    def save_pretrained(self, path: Any, state_dict: dict[str, torch.Tensor] | None = None, **kwargs: Any) -> None:
        """Export the student alone: that is the model being shipped."""
        if state_dict is not None:
            state_dict = {k[len("student.") :]: v for k, v in state_dict.items() if k.startswith("student.")}
        self.student.save_pretrained(path, state_dict=state_dict, **kwargs)


def load_teacher(run_dir: str) -> tuple[nn.Module, Any, list[str]]:
    from nlp_transfer.predict import load_predictor

    if not run_dir or not Path(run_dir).is_dir():
        raise ConfigError(f"teacher must be the directory of a finished classification run, not {run_dir!r}")
    predictor = load_predictor(run_dir)
    return predictor.model, predictor.tokenizer, predictor.labels


class DistillTask(TrackedTask):
    def __init__(self, cfg: TrainConfig, kd: Distillation, **tracked: Any):
        super().__init__(cfg, **tracked)
        kd.validate()
        self.kd = kd

    def build_model(self, resolved: Any, tokenizer: Any) -> nn.Module:
        self._tokenizer = tokenizer  # the pipeline wraps the model before it tokenizes
        model = super().build_model(resolved, tokenizer)
        return shrink(model, self.kd.student_layers) if self.kd.student_layers else model

    def wrap_prepared(self, prepared: Prepared) -> Prepared:
        if self.kd.alpha == 0:
            return prepared
        teacher, teacher_tok, labels = load_teacher(self.kd.teacher)
        if labels != self.labels:
            raise ConfigError(f"the teacher predicts {labels}, the student's data has labels {self.labels}")
        if teacher_tok.get_vocab() != self._tokenizer.get_vocab():
            raise ConfigError("teacher and student must share a tokenizer: the student reads the teacher's input ids")
        note = f"distillation from {self.kd.teacher}: T={self.kd.temperature}, alpha={self.kd.alpha}"
        return Prepared(DistillModel(prepared.model, teacher, self.kd.temperature, self.kd.alpha), prepared.param_groups, prepared.is_peft, [*prepared.notes, note])

    def metadata(self) -> dict[str, Any]:
        kd = {"teacher": self.kd.teacher, "temperature": self.kd.temperature, "alpha": self.kd.alpha, "student_layers": self.kd.student_layers}
        return {**super().metadata(), "distillation": kd}


def latency_ms(model: nn.Module, tokenizer: Any, texts: list[str], batch_size: int = 32, max_length: int = 128, repeats: int = 3) -> float:
    """Best-of-`repeats` milliseconds per example for batched CPU inference (fp32, no autocast)."""
    model.eval()
    batches = [tokenizer(texts[i : i + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt") for i in range(0, len(texts), batch_size)]
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for enc in batches:
                model(**enc)
            best = min(best, time.perf_counter() - start)
    return 1000 * best / max(len(texts), 1)


def weights_mb(run_dir: str | Path) -> float:
    return sum(p.stat().st_size for p in Path(run_dir).glob("*.safetensors")) / 2**20
