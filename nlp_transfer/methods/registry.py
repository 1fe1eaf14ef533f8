"""Name -> method. A method turns a freshly loaded model into (model to train, optimizer groups)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlp_transfer.config import closest
from nlp_transfer.errors import ConfigError

if TYPE_CHECKING:  # annotations only: the model card reads CARD_NOTES without importing torch
    import torch


@dataclass
class Prepared:
    model: torch.nn.Module
    param_groups: list[dict[str, Any]]
    is_peft: bool
    notes: list[str] = field(default_factory=list)  # said once at start: what trains and why


@dataclass
class Method:
    name: str
    help: str
    prepare: Callable[..., Prepared]  # (model, args: dict, *, task, lr, weight_decay) -> Prepared
    is_peft: bool = False


_METHODS: dict[str, Method] = {}
# "prefix:" -> factory(rest of the name) for open-ended families such as "peft:<PEFT type>". The modules
# that define methods register themselves here, so this module imports none of them (no cycle).
_FAMILIES: dict[str, Callable[[str], Method]] = {}
# What the model card says each method did to the base model (completes "Method: ...").
CARD_NOTES = {
    "full": "full fine-tuning: every weight of the base model was updated",
    "top_k": "partial fine-tuning: only the top layers and the task head were updated, the rest stayed frozen",
    "frozen": "a frozen base model: only the task head on top of it was trained",
    "lora": "LoRA: small low-rank matrices trained beside the frozen base weights",
    "dora": "DoRA: LoRA whose updates are split into a learned magnitude and a direction",
    "ia3": "(IA)³: learned vectors that rescale attention keys/values and feed-forward activations",
    "prefix": "prefix tuning: trained key/value vectors prepended in every attention layer",
    "prompt": "prompt tuning: trained soft-prompt embeddings in front of the input",
    "adalora": "AdaLoRA: LoRA that reallocates its rank budget across layers during training",
    "loha": "LoHa: low-rank Hadamard-product updates beside the frozen base weights",
    "lokr": "LoKr: low-rank Kronecker-product updates beside the frozen base weights",
}


def register(method: Method) -> Method:
    _METHODS[method.name] = method
    return method


def register_family(prefix: str, factory: Callable[[str], Method]) -> None:
    _FAMILIES[prefix] = factory


def available() -> dict[str, str]:
    return {name: m.help for name, m in sorted(_METHODS.items())}


def get_method(name: str) -> Method:
    if name in _METHODS:
        return _METHODS[name]
    for prefix, factory in _FAMILIES.items():
        if name.startswith(prefix):
            return factory(name[len(prefix) :])
    raise ConfigError(
        f"unknown method {name!r}{closest(name, list(_METHODS))} (methods: {', '.join(sorted(_METHODS))})"
    )


def decay_groups(named: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: no decay on biases and norm weights, which only shrinks them toward zero."""
    decay = [p for n, p in named if p.ndim >= 2]
    no_decay = [p for n, p in named if p.ndim < 2]
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
