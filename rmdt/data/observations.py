"""Dict observations (PointMaze, AntMaze, Kitchen, MiniGrid style) as one flat float vector.

The models take one array per step, so a ``gymnasium.spaces.Dict`` observation is flattened by
concatenating its numeric leaves in a recorded key order: dotted paths such as
``achieved_goal.kettle``, in the order of the space itself. The loader records that order with the
data and the evaluator flattens the environment's observations with the same order, so a feature
never changes place between training and evaluation. Leaves that are not numbers (MiniGrid's
``mission`` text) cannot enter a vector and are dropped; the loader records which.
"""
from __future__ import annotations

import numpy as np

NUMERIC_SPACES = ("Box", "Discrete", "MultiBinary", "MultiDiscrete")


def leaf_keys(space, prefix: str = "") -> tuple[list[str], list[str]]:
    """``(kept, dropped)`` dotted paths of a (nested) Dict space's leaves, in the space's order."""
    kept, dropped = [], []
    for key, sub in space.spaces.items():
        path = f"{prefix}{key}"
        if type(sub).__name__ == "Dict":
            k, d = leaf_keys(sub, f"{path}.")
            kept, dropped = kept + k, dropped + d
        else:
            (kept if type(sub).__name__ in NUMERIC_SPACES else dropped).append(path)
    return kept, dropped


def leaf(obs: dict, path: str):
    """The value at a dotted path of a nested dict; a KeyError names the path and what is there."""
    value = obs
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            known = ", ".join(value) if isinstance(value, dict) else type(value).__name__
            raise KeyError(f"observation has no key {path!r} (at {part!r}: {known})")
        value = value[part]
    return value


def flatten(obs: dict, keys: list[str], batch_dims: int = 1) -> np.ndarray:
    """``(*batch, D)`` float32: each key's leaf reshaped to ``(*batch, -1)``, concatenated in ``keys`` order.

    ``batch_dims`` is 1 for a stack of steps or environments, 0 for a single observation.
    """
    parts = []
    for path in keys:
        value = np.asarray(leaf(obs, path))
        parts.append(value.reshape(*value.shape[:batch_dims], -1).astype(np.float32))
    return np.concatenate(parts, axis=-1)


def flat_size(space, keys: list[str]) -> int:
    """D, the length of a flattened observation of ``space`` (a Dict space) for ``keys``."""
    total = 0
    for path in keys:
        sub = space
        for part in path.split("."):
            sub = sub.spaces[part]
        total += int(np.prod(sub.shape)) if sub.shape else 1
    return total
