"""Partial fine-tuning (`top_k`) and feature extraction (`frozen`).

Lower layers hold general features and upper layers task-specific ones, so training only the top K
blocks keeps most of the transfer at a fraction of the optimizer state. `frozen` is K = 0: the
pretrained encoder is a fixed feature extractor and only the new head trains. The parameters that
sit after the last block (BERT's pooler, GPT-2's ln_f, Llama's final norm) train with the head,
because the head reads them directly (all-MiniLM's pooler, for one, was never trained for this).
"""

from __future__ import annotations

import torch
from torch import nn

from nlp_transfer.errors import ConfigError
from nlp_transfer.methods.args import parse_args
from nlp_transfer.methods.registry import Method, Prepared, decay_groups, register


def find_blocks(base: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer blocks: the longest ModuleList of same-class modules."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in base.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            if best is None or len(module) > len(best[1]):
                best = (name, module)
    if best is None:
        raise ConfigError(
            f"top_k/frozen cannot find the layer stack of {type(base).__name__}; use full or a PEFT method"
        )
    return best


def split_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Parameters grouped as pre (embeddings), block_<i>, post (final norm/pooler) and head."""
    base = model.base_model
    if base is model:
        raise ConfigError(f"top_k/frozen need a base model with a task head; {type(model).__name__} has none")
    blocks_name, blocks = find_blocks(base)
    base_ids = {id(p) for p in base.parameters()}
    groups: dict[str, list] = {"pre": [], "post": [], "head": []}
    seen_block = False
    prefix = f"{blocks_name}."
    for name, p in base.named_parameters():
        if name.startswith(prefix):
            i = int(name[len(prefix) :].split(".", 1)[0])
            groups.setdefault(f"block_{i}", []).append((name, p))
            seen_block = True
        else:
            groups["post" if seen_block else "pre"].append((name, p))
    groups["head"] = [(n, p) for n, p in model.named_parameters() if id(p) not in base_ids]
    groups["n_blocks"] = len(blocks)  # type: ignore[assignment]
    return groups


def _prepare(model: nn.Module, args: dict, *, lr: float, weight_decay: float, name: str) -> Prepared:
    defaults = {"k": 2, "layer_lr_decay": 1.0} if name == "top_k" else {}
    opts = parse_args(name, args, defaults)
    k, decay = opts.get("k", 0), opts.get("layer_lr_decay", 1.0)
    groups = split_parameters(model)
    n_blocks = groups.pop("n_blocks")
    if not 0 <= k <= n_blocks:
        raise ConfigError(f"top_k: k must be between 0 and the model's {n_blocks} layers, not {k}")
    if not 0 < decay <= 1:
        raise ConfigError(f"top_k: layer_lr_decay must be in (0, 1], not {decay}")
    for p in model.parameters():
        p.requires_grad_(False)
    param_groups: list[dict] = []
    for key in ("head", "post"):
        for _, p in groups[key]:
            p.requires_grad_(True)
        param_groups += decay_groups(groups[key], lr, weight_decay)
    for depth in range(k):  # depth 0 = the top block, which gets the full LR
        block = groups[f"block_{n_blocks - 1 - depth}"]
        for _, p in block:
            p.requires_grad_(True)
        param_groups += decay_groups(block, lr * decay**depth, weight_decay)
    notes = [f"{name}: training the head, the post-block layers and the top {k} of {n_blocks} blocks"]
    if decay < 1:
        notes.append(
            f"layer-wise LR decay {decay}: block {n_blocks - k} trains at {lr * decay ** (k - 1):.2e}"
        )
    return Prepared(model, param_groups, is_peft=False, notes=notes)


def prepare_top_k(
    model: torch.nn.Module, args: dict, *, task: str, lr: float, weight_decay: float
) -> Prepared:
    return _prepare(model, args, lr=lr, weight_decay=weight_decay, name="top_k")


def prepare_frozen(
    model: torch.nn.Module, args: dict, *, task: str, lr: float, weight_decay: float
) -> Prepared:
    return _prepare(model, args, lr=lr, weight_decay=weight_decay, name="frozen")


register(Method("top_k", "train the top k layers and the head, {k: 2, layer_lr_decay: 1.0}", prepare_top_k))
register(
    Method(
        "frozen",
        "feature extraction: the pretrained base stays fixed, a new head trains (lr ~1e-3)",
        prepare_frozen,
    )
)
