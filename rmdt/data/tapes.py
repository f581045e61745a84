"""Tape-based batching (the memoroid paper, arXiv 2402.09900): each batch row is a tape of whole episodes laid end to end.

A tape has no padding and cuts no episode at its start: every episode on it begins at its first
step, and the start flags that recurrent models reset on are the steps where ``timesteps == 0``.
Only the last episode of a tape may be cut short by the tape's end (its prefix is still a valid
episode start). Batches are drawn reproducibly from ``(seed, step)`` like ``SegmentSampler``, so
resumed and multi-process runs see the same data.
"""
from __future__ import annotations

import numpy as np
import torch

from rmdt.data.returns import returns_to_go
from rmdt.data.segments import Batch, gather_observations
from rmdt.data.trajectories import DataError, Trajectories


class TapeSampler:
    """Draws ``batch_size`` tapes of ``tape_len`` steps, episodes chosen uniformly with replacement."""

    def __init__(self, trajectories: Trajectories, tape_len: int, discount: float = 1.0,
                 return_scale: float = 1.0, seed: int = 0) -> None:
        if not isinstance(tape_len, (int, np.integer)) or tape_len < 1:
            raise ValueError(f"tape_len must be an integer >= 1, got {tape_len!r}")
        if trajectories.num_steps == 0:
            raise DataError(f"{trajectories.source}: the dataset holds no steps")
        self.trajectories, self.tape_len, self.seed = trajectories, int(tape_len), seed
        self._rtg = returns_to_go(trajectories.rewards, trajectories.episode_starts, discount, return_scale)
        # Enough episodes to fill a tape even if every one is the shortest.
        self._draws = -(-self.tape_len // int(trajectories.episode_lengths.min()))

    def batch(self, step: int, batch_size: int) -> Batch:
        """The batch for optimizer step ``step``: the same for every process and every resume."""
        rng = np.random.default_rng([self.seed, step])
        return self.tapes(rng.integers(self.trajectories.num_episodes, size=(batch_size, self._draws)))

    def tapes(self, episodes: np.ndarray) -> Batch:
        """Rows of episode indices (B, n) laid end to end and cut to ``tape_len`` steps."""
        starts = self.trajectories.episode_starts
        lengths = np.diff(starts)[episodes]
        ends = np.cumsum(lengths, axis=1)  # (B, n): where each episode ends on its tape
        if np.any(ends[:, -1] < self.tape_len):
            raise ValueError(f"episodes cover {ends[:, -1].min()} steps, fewer than tape_len={self.tape_len}")
        position = np.arange(self.tape_len)
        slot = np.stack([np.searchsorted(row, position, side="right") for row in ends])  # episode on the tape
        timesteps = position - np.take_along_axis(ends - lengths, slot, axis=1)
        index = starts[np.take_along_axis(episodes, slot, axis=1)] + timesteps
        t = self.trajectories
        return Batch(
            returns_to_go=torch.from_numpy(self._rtg[index]),
            observations=gather_observations(t.observations, index, np.ones(index.shape, bool)),
            actions=torch.from_numpy(t.actions[index].astype(np.int64 if t.discrete else np.float32, copy=False)),
            rewards=torch.from_numpy(t.rewards[index]),
            timesteps=torch.from_numpy(timesteps.astype(np.int64)),
            mask=torch.ones(index.shape, dtype=torch.bool),
        )
