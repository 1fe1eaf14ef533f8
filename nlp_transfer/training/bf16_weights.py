"""bf16 compute weights over fp32 master weights, for full and partial fine-tuning on one CPU process.

Under bf16 autocast a step casts every linear weight to bf16 in the forward, keeps the residual
stream, LayerNorm, GELU, softmax and dropout in fp32, and casts each weight gradient back. Running
the whole model in bf16 halves the bytes those element-wise ops move, which is where a CPU step of
a small encoder spends much of its time (MiniLM full fine-tuning: ~335 -> ~290 ms per step of 32).
The weights that *train* must stay fp32, or small updates round away; so they live in a master
copy that the optimizer, the checkpoints, the best-weight snapshot and the export see, and a bf16
copy runs forward and backward:

- each compute weight's gradient is added to its master's fp32 `.grad` as soon as it is ready (a
  post-accumulate hook; gradient accumulation sums in fp32) and freed;
- the optimizer, gradient clipping, the scheduler and `save_state` work on the master model only;
- before a forward, the compute copy is refreshed if the watched optimizer stepped or any master
  tensor changed in place since the last refresh (version counters: loading a checkpoint, restoring
  the best weights), so no caller has to remember to sync.

Not for adapters (their frozen base is stored in bf16 already, `cpu_speed.store_frozen_linears`),
several processes (DDP reduces the gradients of the parameters it wraps) or DeepSpeed/FSDP (which
keep their own fp32 masters).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class Bf16ComputeModel(nn.Module):
    """`master` (fp32, the registered submodule) plus a bf16 twin that does the arithmetic."""

    def __init__(self, master: nn.Module):
        super().__init__()
        self.master = master
        compute = copy.deepcopy(master).to(torch.bfloat16)
        object.__setattr__(self, "_compute", compute)  # not a submodule: invisible to state_dict/parameters
        pairs = list(zip(master.parameters(), compute.parameters(), strict=True))
        self._masters = [m for m, _ in pairs] + list(master.buffers())
        self._copies = [c for _, c in pairs] + list(compute.buffers())
        self._synced: list[int] = [t._version for t in self._masters]
        self._stale = False
        self._device_type = next(master.parameters()).device.type
        for m, c in pairs:
            if m.requires_grad:
                c.register_post_accumulate_grad_hook(_to_master(m))
            else:
                c.requires_grad_(False)

    def watch(self, optimizer: torch.optim.Optimizer) -> None:
        """Mark the copy stale after every step of `optimizer` (fused AdamW bumps no version counter)."""
        optimizer.register_step_post_hook(lambda *_: setattr(self, "_stale", True))

    def _refresh(self) -> None:
        versions = [t._version for t in self._masters]
        if self._stale or versions != self._synced:
            with torch.no_grad():
                torch._foreach_copy_(self._copies, self._masters)
            self._synced, self._stale = versions, False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._refresh()
        # Accelerate wraps a prepared model's forward in autocast. With every weight already bf16 it
        # changed no result here (bit-identical runs), but the copy's arithmetic should not depend on
        # which autocast ops a torch version upcasts to fp32.
        with torch.autocast(self._device_type, enabled=False):
            return self._compute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if "_modules" not in self.__dict__ or "master" not in self._modules:
                raise
            # config, generate(), ...: the master's, which is always current (generate() on the bf16
            # copy would bypass the refresh in forward and could run on stale weights)
            return getattr(self._modules["master"], name)

    def train(self, mode: bool = True) -> Bf16ComputeModel:
        super().train(mode)
        self._compute.train(mode)
        return self


def _to_master(master: torch.Tensor) -> Any:
    def hook(p: torch.Tensor) -> None:
        grad = p.grad.to(torch.float32)
        master.grad = grad if master.grad is None else master.grad.add_(grad)
        p.grad = None

    return hook
