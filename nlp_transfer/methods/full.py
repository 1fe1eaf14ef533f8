"""Full fine-tuning: every weight trains. Use a low LR (~5e-5) so the pretrained features survive."""

from __future__ import annotations

import torch

from nlp_transfer.methods.args import parse_args
from nlp_transfer.methods.registry import Method, Prepared, decay_groups, register, trainable


def prepare(model: torch.nn.Module, args: dict, *, task: str, lr: float, weight_decay: float) -> Prepared:
    parse_args("full", args, {})
    for p in model.parameters():
        p.requires_grad_(True)
    return Prepared(model, decay_groups(trainable(model), lr, weight_decay), is_peft=False)


register(Method("full", "all weights train (use lr ~5e-5)", prepare))
