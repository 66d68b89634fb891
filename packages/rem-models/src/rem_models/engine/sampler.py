"""Which samples each process trains on at each step: one global batch stream, split up.

The run's samples are a fixed function of the seed: epoch ``e`` visits the dataset in the
order of a permutation drawn from ``seed`` and ``e``, and step ``s`` takes the next
``batch_size`` positions of that stream. Each process then takes its contiguous share of the
global batch and cuts it into ``grad_accum`` micro-batches. So one process with accumulation,
or several processes, see exactly the same global batch per step, and resuming at step ``s``
needs nothing but ``s``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class TrainBatchSampler(torch.utils.data.Sampler[list[tuple[int, int, int]]]):
    """Yields this process's micro-batches for steps ``start_step .. steps-1``.

    Each item is ``(index, step, slot)``: the dataset index plus where the sample sits in the
    run (``slot`` is its position in the global batch), which seeds its augmentation.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        steps: int,
        start_step: int = 0,
        world_size: int = 1,
        rank: int = 0,
        grad_accum: int = 1,
        seed: int = 0,
    ) -> None:
        if num_samples < 1:
            raise ValueError("cannot sample from an empty dataset")
        if batch_size % (world_size * grad_accum):
            raise ValueError("batch_size must split evenly over processes and accumulation steps")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.steps = steps
        self.start_step = start_step
        self.world_size = world_size
        self.rank = rank
        self.grad_accum = grad_accum
        self.seed = seed
        self.micro = batch_size // (world_size * grad_accum)
        self._epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def _position(self, position: int) -> int:
        """Dataset index at ``position`` of the infinite, epoch-shuffled stream."""
        epoch, offset = divmod(position, self.num_samples)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, 7919, epoch])
            self._order = rng.permutation(self.num_samples)
            self._epoch = epoch
        return int(self._order[offset])

    def global_batch(self, step: int) -> list[int]:
        """The dataset indices of step ``step``, for all processes together."""
        first = step * self.batch_size
        return [self._position(first + j) for j in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        share = self.batch_size // self.world_size
        for step in range(self.start_step, self.steps):
            batch = self.global_batch(step)
            lo = self.rank * share
            for m in range(self.grad_accum):
                slots = range(lo + m * self.micro, lo + (m + 1) * self.micro)
                yield [(batch[j], step, j) for j in slots]

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.grad_accum


def shard_indices(num_items: int, world_size: int, rank: int) -> list[int]:
    """Indices a process handles at inference: every ``world_size``-th, starting at ``rank``."""
    return list(range(rank, num_items, world_size))
