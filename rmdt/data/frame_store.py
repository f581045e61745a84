"""An on-disk store of pixel episodes: every frame once, memory-mapped; each step sees a stack of frames.

Atari datasets are too big for RAM (one DQN-Replay buffer is 1M frames, 7 GB) and a state is the
last 4 frames, so storing states would quadruple that. A store directory holds:

    frame_store.json    shapes, counts and provenance; written last, so its presence means complete
    frames.u8           raw uint8 frames (num_frames, H, W); every episode is preceded by stack-1
                        all-zero frames, so the first state of an episode is [0, 0, 0, frame_0]
                        (as DQN-Replay and ALE's vector env give it) and no stack needs a mask
    actions.npy  rewards.npy  episode_starts.npy   per step, as in ``Trajectories``

Frames are written with ``pwrite`` (never through a writable mapping, whose dirty pages would stay
resident) and read through a read-only ``np.memmap``, so only the pages a batch touches are loaded.
Batches carry each frame they need once, with an index, and the stacks are gathered on the device
(``FrameStacks``): a K=30, N=3 window of 4-frame stacks is 2.5 MB stacked, 0.7 MB as unique frames.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from rmdt.data.staging import make_staging
from rmdt.data.trajectories import DataError, Trajectories

MANIFEST = "frame_store.json"
FRAMES = "frames.u8"
FORMAT = "rmdt-frame-store-v1"


class StackedFrames:
    """Observations of a store as a read-only array-like (T, stack, H, W): ``view[index]`` gathers the
    stacks of any int index array (or int, or slice) into a new uint8 array of shape index.shape +
    (stack, H, W). It has ``shape``, ``dtype``, ``ndim`` and ``len``, which is all ``Trajectories``
    and ``SegmentSampler`` use."""

    def __init__(self, frames: np.ndarray, last_frame: np.ndarray, stack: int):
        self.frames = frames  # (num_frames, H, W), usually a read-only memmap
        self.last_frame = last_frame  # (T,) index into frames of the newest frame of each step's stack
        self.stack = stack
        self._offsets = np.arange(1 - stack, 1)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.last_frame), self.stack, *self.frames.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.frames.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.last_frame)

    def __getitem__(self, index) -> np.ndarray:
        last = np.asarray(self.last_frame[index])
        return np.asarray(self.frames[last[..., None] + self._offsets])

    def stacks(self, index: np.ndarray, mask: np.ndarray) -> "FrameStacks":
        """The stacks of steps ``index`` (int array) as unique frames and an index; where ``mask`` is
        False the stack is all zeros (padding), as ``view[index]`` zeroed there would be."""
        ids = self.last_frame[index[mask]][:, None] + self._offsets  # (real steps, stack) frame numbers
        unique, inverse = np.unique(ids.ravel(), return_inverse=True)
        frames = np.zeros((len(unique) + 1, *self.frames.shape[1:]), self.frames.dtype)  # last: the zero frame
        frames[:-1] = self.frames[unique]
        stack_index = np.full((*index.shape, self.stack), len(unique), np.int32)
        stack_index[mask] = inverse.reshape(ids.shape)
        return FrameStacks(torch.from_numpy(frames), torch.from_numpy(stack_index))


class FrameStacks:
    """Stacked pixel observations in transit: ``frames`` (F, H, W) holds every frame a batch needs
    once, ``index`` (..., stack) int32 the frames of each step's stack. ``to(device)`` copies both and
    gathers there, returning the (..., stack, H, W) tensor models take; rows index like a tensor's."""

    def __init__(self, frames: torch.Tensor, index: torch.Tensor):
        self.frames, self.index = frames, index

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.index.shape, *self.frames.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return self.frames.dtype

    def to(self, device, non_blocking: bool = False) -> torch.Tensor:
        return self.frames.to(device, non_blocking=non_blocking)[self.index.to(device, non_blocking=non_blocking)]

    def __getitem__(self, rows) -> "FrameStacks":
        return FrameStacks(self.frames, self.index[rows])

    def pin_memory(self) -> "FrameStacks":
        return FrameStacks(self.frames.pin_memory(), self.index.pin_memory())


def last_frames(episode_starts: np.ndarray, stack: int) -> np.ndarray:
    """Index of each step's newest frame: step t of episode e is frame t + (stack - 1) * (e + 1)."""
    lengths = np.diff(episode_starts)
    return np.arange(int(episode_starts[-1])) + np.repeat((stack - 1) * np.arange(1, len(lengths) + 1), lengths)


class FrameStoreWriter:
    """Builds a store in a hidden sibling directory and renames it into place on ``finish`` (a later
    writer in the same folder removes those that killed builds left).

    ``add_episode`` reserves the frames of one episode (after its zero padding) and returns the index
    of its first frame; frames are written then, or later at that index with ``write_frames`` (the
    DQN-Replay importer streams them in file order). Use as a context manager: leaving it without
    ``finish`` (after an error, say) removes the partial store.
    """

    def __init__(self, path, frame_shape, num_actions: int, stack: int = 4, metadata: dict | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists: remove it or choose another output directory")
        self.tmp = make_staging(self.path.parent, ".partial-", self.path.name)  # sweeps killed builds' first
        self.frame_shape, self.stack = tuple(int(n) for n in frame_shape), int(stack)
        self.frame_bytes = int(np.prod(self.frame_shape))
        self.num_actions, self.metadata = int(num_actions), dict(metadata or {})
        self.fd = os.open(self.tmp / FRAMES, os.O_WRONLY | os.O_CREAT, 0o644)
        self.actions, self.rewards, self.lengths = [], [], []
        self.num_frames = 0

    def add_episode(self, actions, rewards, frames: np.ndarray | None = None) -> int:
        actions, rewards = np.asarray(actions, np.int64), np.asarray(rewards, np.float32)
        if len(actions) == 0 or actions.shape != rewards.shape or actions.ndim != 1:
            raise ValueError(f"an episode needs >= 1 step and as many actions as rewards, got shapes "
                             f"{actions.shape} and {rewards.shape}")
        if actions.min() < 0 or actions.max() >= self.num_actions:
            raise ValueError(f"actions must lie in [0, {self.num_actions}), got {actions.min()}..{actions.max()}")
        first = self.num_frames + self.stack - 1
        self.num_frames = first + len(actions)
        self.actions.append(actions), self.rewards.append(rewards), self.lengths.append(len(actions))
        if frames is not None:
            if len(frames) != len(actions):
                raise ValueError(f"an episode of {len(actions)} steps needs as many frames, got {len(frames)}")
            self.write_frames(first, frames)
        return first

    def write_frames(self, first: int, frames: np.ndarray) -> None:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.shape[1:] != self.frame_shape:
            raise ValueError(f"frames must have shape (n, {self.frame_shape}), got {frames.shape}")
        data, offset = memoryview(frames).cast("B"), first * self.frame_bytes
        while len(data):
            written = os.pwrite(self.fd, data, offset)
            data, offset = data[written:], offset + written

    def finish(self) -> Path:
        """Writes the per-step arrays and the manifest, then moves the store into place."""
        if not self.lengths:
            raise DataError(f"{self.path}: no episodes to store")
        os.ftruncate(self.fd, self.num_frames * self.frame_bytes)  # the last padding frames read as zeros
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        starts = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        np.save(self.tmp / "actions.npy", np.concatenate(self.actions))
        np.save(self.tmp / "rewards.npy", np.concatenate(self.rewards))
        np.save(self.tmp / "episode_starts.npy", starts)
        manifest = {"format": FORMAT, "frame_shape": list(self.frame_shape), "stack": self.stack,
                    "num_frames": self.num_frames, "num_steps": int(starts[-1]), "num_episodes": len(self.lengths),
                    "num_actions": self.num_actions, **self.metadata}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "FrameStoreWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.fd is not None:  # an error, or finish() never called: leave nothing behind
            self.abort()


def is_frame_store(path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load_frame_store(path) -> Trajectories:
    """Opens a store (frames memory-mapped, nothing read yet) as ``Trajectories``; clear errors on damage."""
    path = Path(path)
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not a frame store (no {MANIFEST})") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{manifest_path}: not valid JSON ({error})") from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"{manifest_path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    arrays = {}
    for name in ("actions", "rewards", "episode_starts"):
        try:
            arrays[name] = np.load(path / f"{name}.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"{path / (name + '.npy')}: cannot be read ({error})") from None
    try:
        frame_shape, stack, num_frames = tuple(manifest["frame_shape"]), int(manifest["stack"]), int(manifest["num_frames"])
        num_actions = int(manifest["num_actions"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{manifest_path}: missing or bad entry ({error!r})") from None
    frames_path = path / FRAMES
    expected = num_frames * int(np.prod(frame_shape))
    size = frames_path.stat().st_size if frames_path.is_file() else -1
    if size != expected:
        raise DataError(f"{frames_path}: {size} bytes but {num_frames} frames of {frame_shape} need {expected} "
                        "(truncated or missing)")
    starts = arrays["episode_starts"]
    if starts.ndim != 1 or len(starts) < 2 or int(starts[-1]) + (stack - 1) * (len(starts) - 1) != num_frames:
        raise DataError(f"{path / 'episode_starts.npy'}: episodes of {int(starts[-1])} steps do not match "
                        f"{num_frames} frames in {frames_path}")
    frames = np.memmap(frames_path, dtype=np.uint8, mode="r", shape=(num_frames, *frame_shape))
    return Trajectories(observations=StackedFrames(frames, last_frames(starts, stack), stack),
                        actions=arrays["actions"], rewards=arrays["rewards"], episode_starts=starts,
                        source=str(path), num_actions=num_actions, metadata=manifest)
