"""Gradient reversal (Ganin & Lempitsky, 2015) and the domain classifier that sits behind it.

The domain classifier learns to tell source from target features; the reversal layer passes
features through unchanged but multiplies the gradient flowing back into the encoder by -lambda, so
the encoder learns features the classifier cannot separate: one backward pass trains both players
of the minimax game.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; gradient times -coeff backward."""
    return _Reverse.apply(x, coeff)


class DomainClassifier(nn.Module):
    """A small MLP: features -> logit of 'target domain'. Small, so it cannot memorise the batch."""

    def __init__(self, dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor, coeff: float) -> torch.Tensor:
        return self.net(grad_reverse(features, coeff)).squeeze(-1)


SCHEDULES = ("constant", "linear", "dann")


def schedule(name: str, progress: float, gamma: float = 10.0) -> float:
    """Weight in [0, 1] at training progress p in [0, 1].

    `dann` is 2 / (1 + exp(-gamma p)) - 1 from the DANN paper: near 0 while the task head is still
    random (aligning meaningless features only adds noise), near 1 after the first third.
    """
    p = min(max(progress, 0.0), 1.0)
    if name == "constant":
        return 1.0
    if name == "linear":
        return p
    if name == "dann":
        return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0
    raise ValueError(f"unknown lambda schedule {name!r}; use one of {', '.join(SCHEDULES)}")
