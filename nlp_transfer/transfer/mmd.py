"""Multi-kernel maximum mean discrepancy (MMD), the distance DAN (Long et al., 2015) minimises.

MMD^2 between two samples is ||mean phi(x) - mean phi(y)||^2 in a kernel's feature space. One
Gaussian kernel is only sensitive at its own bandwidth, so several are averaged (bandwidth = the
median pairwise distance times a few factors): the distance then responds to shifts at any scale
without tuning, and stays in [0, 2] whatever the number of kernels, so lambda means the same
thing for any `factors` (a sum of 5 kernels made lambda 0.5 act like 2.5 and collapsed training).
The biased (V-statistic) estimate is used because it is exactly 0 for identical batches and never
negative, which keeps the training signal well-behaved at small batch sizes.
"""

from __future__ import annotations

import torch

DEFAULT_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def gaussian_kernels(x: torch.Tensor, y: torch.Tensor, factors: tuple[float, ...] = DEFAULT_FACTORS) -> torch.Tensor:
    """Mean of Gaussian kernels over the pooled sample [x; y]; bandwidths from the median distance."""
    z = torch.cat([x, y]).float()
    d2 = torch.cdist(z, z).pow(2)
    off = d2[~torch.eye(len(z), dtype=torch.bool, device=z.device)]
    base = off.median().detach().clamp_min(1e-6) if off.numel() else torch.ones((), device=z.device)
    return sum(torch.exp(-d2 / (2 * base * f)) for f in factors) / len(factors)


def mmd2(x: torch.Tensor, y: torch.Tensor, factors: tuple[float, ...] = DEFAULT_FACTORS) -> torch.Tensor:
    """Biased multi-kernel MMD^2 between feature batches x [n, d] and y [m, d] (differentiable)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd2 needs two [batch, dim] tensors of one dim, got {tuple(x.shape)} and {tuple(y.shape)}")
    k = gaussian_kernels(x, y, factors)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
