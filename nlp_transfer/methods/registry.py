"""Name -> method. A method turns a freshly loaded model into (model to train, optimizer groups)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from nlp_transfer.config import closest
from nlp_transfer.errors import ConfigError


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


def register(method: Method) -> Method:
    _METHODS[method.name] = method
    return method


def available() -> dict[str, str]:
    return {name: m.help for name, m in sorted(_METHODS.items())}


def get_method(name: str) -> Method:
    if name in _METHODS:
        return _METHODS[name]
    if name.startswith("peft:"):
        from nlp_transfer.methods.peft_methods import generic_peft

        return generic_peft(name.split(":", 1)[1])
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
