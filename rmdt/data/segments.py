"""Cutting episodes into windows of N consecutive segments of K (return-to-go, observation, action) steps.

Padding convention: a window always begins at a real step of one episode and never crosses into the
next. When the episode ends before the window does, the remaining steps are padding *on the right*:
their arrays are zero and ``mask`` is False there. Models split a window of ``N * K`` steps into N
segments of K in order, so the first segment always holds real data.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch

from rmdt.data.frame_store import FrameStacks, StackedFrames
from rmdt.data.returns import returns_to_go
from rmdt.data.trajectories import DataError, Trajectories

WindowStarts = Literal["episode", "uniform"]


@dataclass
class Batch:
    """A batch of windows, shape (B, L) in front with L = N * K; padded steps are zero, mask False."""

    returns_to_go: torch.Tensor  # (B, L) float32, already divided by the return scale
    observations: torch.Tensor | FrameStacks  # (B, L, *obs_shape), dtype of the dataset (float32 or uint8
    #   pixels); frame stores: FrameStacks (unique frames + index) until ``to`` gathers the stacks
    actions: torch.Tensor  # (B, L) int64 for discrete actions, (B, L, act_dim) float32 for continuous
    rewards: torch.Tensor  # (B, L) float32 reward after each action
    timesteps: torch.Tensor  # (B, L) int64 step index within the episode (0 on padding)
    mask: torch.Tensor  # (B, L) bool, True on real steps

    def to(self, device) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    def pin_memory(self) -> "Batch":
        """The batch in page-locked memory, so that ``to(cuda)`` copies it asynchronously."""
        return Batch(**{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    def __getitem__(self, rows) -> "Batch":
        """Rows of the batch, e.g. one process's shard of a global batch."""
        return Batch(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def __len__(self) -> int:
        return self.mask.shape[0]


class SegmentSampler:
    """Draws windows of ``num_segments * context_len`` steps, reproducibly from ``(seed, step)``.

    ``window_starts="episode"`` starts windows only at episode starts (memory tasks whose cue is at
    t=0, such as T-Maze); ``"uniform"`` starts them at any step, every step equally likely.
    """

    def __init__(self, trajectories: Trajectories, context_len: int, num_segments: int,
                 window_starts: WindowStarts = "episode", discount: float = 1.0,
                 return_scale: float = 1.0, seed: int = 0) -> None:
        for name, value in (("context_len (K)", context_len), ("num_segments (N)", num_segments)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if window_starts not in ("episode", "uniform"):
            raise ValueError(f"window_starts must be 'episode' or 'uniform', got {window_starts!r}")
        if trajectories.num_steps == 0:
            raise DataError(f"{trajectories.source}: the dataset holds no steps")
        self.trajectories = trajectories
        self.context_len, self.num_segments = int(context_len), int(num_segments)
        self.window_len = self.context_len * self.num_segments
        self.seed = seed
        starts = trajectories.episode_starts
        self._rtg = returns_to_go(trajectories.rewards, starts, discount, return_scale)
        # For every step: the index one past its episode's end, and its episode's first index.
        lengths = np.diff(starts)
        self._episode_end = np.repeat(starts[1:], lengths)
        self._episode_begin = np.repeat(starts[:-1], lengths)
        self.candidates = starts[:-1] if window_starts == "episode" else np.arange(trajectories.num_steps)

    def batch(self, step: int, batch_size: int) -> Batch:
        """The batch for optimizer step ``step``: the same for every process and every resume."""
        rng = np.random.default_rng([self.seed, step])
        return self.windows(self.candidates[rng.integers(len(self.candidates), size=batch_size)])

    def windows(self, first_steps: np.ndarray) -> Batch:
        """Windows that begin at the given flat step indices."""
        first_steps = np.asarray(first_steps, dtype=np.int64)
        index = first_steps[:, None] + np.arange(self.window_len)
        mask = index < self._episode_end[first_steps][:, None]
        index = np.where(mask, index, first_steps[:, None])  # any valid row; zeroed below
        t = self.trajectories

        def gather(array: np.ndarray) -> torch.Tensor:
            out = array[index]
            out[~mask] = 0
            return torch.from_numpy(out)

        return Batch(
            returns_to_go=gather(self._rtg),
            observations=gather_observations(t.observations, index, mask),
            actions=gather(t.actions.astype(np.int64 if t.discrete else np.float32, copy=False)),
            rewards=gather(t.rewards),
            timesteps=torch.from_numpy(np.where(mask, index - self._episode_begin[first_steps][:, None], 0)),
            mask=torch.from_numpy(mask),
        )


def gather_observations(observations, index: np.ndarray, mask: np.ndarray):
    """Observations of steps ``index``, zero where ``mask`` is False; a frame store's as ``FrameStacks``."""
    if isinstance(observations, StackedFrames):
        return observations.stacks(index, mask)
    out = observations[index]
    out[~mask] = 0
    return torch.from_numpy(out)
