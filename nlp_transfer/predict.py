"""Load a finished run (a local directory or a Hub repo id) and predict with it.

Only safetensors weights are read. An adapter is attached to the base model named in its
`nlp_transfer.json`, after checking that the base has the shape the adapter was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from nlp_transfer import catalog, export
from nlp_transfer.errors import CheckpointError, ConfigError
from nlp_transfer.rundir import RunDir
from nlp_transfer.tasks.spec import TASK_NAMES, TaskSpec, load_object, task_spec


def resolve_run_dir(name: str) -> Path:
    """A local run directory, or a Hub repo id downloaded through the Hub client."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        from nlp_transfer.hub import download

        return download(name)
    raise CheckpointError(f"no run directory at {name}")


def check_base(meta: dict[str, Any], base_config: Any, where: Path) -> None:
    expected = meta.get("base_fingerprint") or {}
    actual = export.base_fingerprint(base_config)
    diff = {k: (v, actual.get(k)) for k, v in expected.items() if actual.get(k) != v}
    if diff:
        details = ", ".join(f"{k}: adapter {a!r} vs base {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(
            f"the adapter in {where} was trained on another base model than {meta['base_model']!r} ({details})"
        )


def load_model(
    run_dir: Path, meta: dict[str, Any], auto_cls: Any, base: str | None = None, **kwargs: Any
) -> torch.nn.Module:
    """The trained model: full weights from run_dir, or the base (or `base` override) plus the adapter."""
    RunDir(run_dir).require_safetensors()
    try:
        if not meta.get("is_peft"):
            return auto_cls.from_pretrained(run_dir, use_safetensors=True, **kwargs)
        from peft import PeftModel

        resolved = catalog.resolve_model(base or meta["base_model"])
        model = auto_cls.from_pretrained(resolved.path, use_safetensors=True, **kwargs)
        check_base(meta, model.config, run_dir)
        return PeftModel.from_pretrained(model, run_dir)
    except CheckpointError:
        raise
    except (OSError, RuntimeError, ValueError, SafetensorError) as e:
        raise CheckpointError(f"could not load the model in {run_dir}: {str(e).splitlines()[0][:300]}") from e


def _spec(meta: dict[str, Any], run_dir: Path | str) -> TaskSpec:
    try:
        return task_spec(str(meta.get("task")))
    except ConfigError as e:
        raise CheckpointError(
            f"{run_dir} holds a run of task {meta.get('task')!r}, which has no predictor "
            f"(tasks with one: {', '.join(TASK_NAMES)})"
        ) from e


def model_class(meta: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The Auto class (and head kwargs for a base that has no head yet) the run's task trained."""
    return load_object(_spec(meta, "this run directory").task_class).model_class(meta)


@dataclass
class ClassifierPredictor:
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    meta: dict[str, Any]
    max_length: int = 512

    @torch.no_grad()
    def logits(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(
                texts[i : i + batch_size],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            out.append(self.model(**enc).logits.float())
        return torch.cat(out) if out else torch.empty(0, len(self.labels))

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """One dict per text: the label, its probability, and every class's probability."""
        probs = self.logits(texts, batch_size).softmax(-1)
        return [
            {
                "label": self.labels[int(p.argmax())],
                "score": float(p.max()),
                "probs": dict(zip(self.labels, map(float, p), strict=True)),
            }
            for p in probs
        ]


def load_classifier(run_dir: Path, meta: dict[str, Any], base: str | None = None) -> ClassifierPredictor:
    """A finished classification run (adapter on its base, or a full model) in eval mode."""
    tokenizer = _tokenizer(run_dir)
    cls, kwargs = model_class(meta)
    if not meta.get("is_peft"):
        kwargs = {}  # a full model's own config holds its head
    model = load_model(run_dir, meta, cls, base, **kwargs).eval()
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    max_length = RunDir(run_dir).max_length
    return ClassifierPredictor(model, tokenizer, meta["labels"], meta, max_length=max_length)


def load_predictor(name: str, base: str | None = None) -> ClassifierPredictor | Any:
    """`name`: a run directory or Hub repo id. `base` overrides the base model (e.g. a local copy).

    The run's task names its loader in tasks/spec.py (`predictor_loader(run_dir, meta, base)`)."""
    run_dir = resolve_run_dir(name)
    meta = RunDir(run_dir).meta()
    return load_object(_spec(meta, run_dir).predictor_loader)(run_dir, meta, base)


def _tokenizer(run_dir: Path) -> PreTrainedTokenizerBase:
    """The run's tokenizer; decoders without a pad token pad with their end-of-sequence token."""
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
