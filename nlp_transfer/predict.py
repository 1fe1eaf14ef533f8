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
from nlp_transfer.errors import CheckpointError


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
    export.require_safetensors(run_dir)
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
        raise CheckpointError(
            f"could not load the model in {run_dir}: {str(e).splitlines()[0][:300]}"
        ) from None


def model_class(meta: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The Auto class (and head kwargs for a base that has no head yet) the run's task trained."""
    if meta["task"] == "classification":
        from transformers import AutoModelForSequenceClassification

        labels = meta["labels"]
        kwargs = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {n: i for i, n in enumerate(labels)},
        }
        return AutoModelForSequenceClassification, kwargs
    if meta["task"] == "summarisation":
        from nlp_transfer.tasks.summariser import generator_class

        return generator_class(meta.get("family", "decoder")), {}
    raise CheckpointError(f"no model class for a run of task {meta['task']!r}")


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


def load_predictor(name: str, base: str | None = None) -> ClassifierPredictor | Any:
    """`name`: a run directory or Hub repo id. `base` overrides the base model (e.g. a local copy)."""
    run_dir = resolve_run_dir(name)
    meta = export.read_meta(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if meta["task"] == "classification":
        cls, kwargs = model_class(meta)
        if not meta.get("is_peft"):
            kwargs = {}  # a full model's own config holds its head
        model = load_model(run_dir, meta, cls, base, **kwargs).eval()
        labels = meta["labels"]
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        max_length = int(_run_config(run_dir).get("max_length", 512))
        return ClassifierPredictor(model, tokenizer, labels, meta, max_length=max_length)
    if meta["task"] == "summarisation":
        from nlp_transfer.tasks.summarisation import load_summariser

        return load_summariser(run_dir, meta, base)
    raise CheckpointError(f"{run_dir}: unknown task {meta['task']!r}")


def _run_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / "run_config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}
