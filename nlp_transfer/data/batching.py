"""Deterministic, resumable sampling: the order of epoch e depends only on (seed, e).

That is what makes resume exact: after a restart the loop replays the same permutation and skips
the batches it already trained on. Length grouping (transformers' megabatch scheme) puts reviews of
similar length in one batch, so dynamic padding pads little; batches are still shuffled.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class EpochSampler(Sampler[int]):
    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.epoch = 0
        self.generator = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        self.generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.group_by_length:
            order = get_length_grouped_indices(self.lengths, self.batch_size, generator=self.generator)
        else:
            order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        return iter(order)
