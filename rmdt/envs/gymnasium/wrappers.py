"""Wrappers that show an environment's observations the way rmdt's datasets stored them.

POPGym and MiniGrid: the dataset recipes (``rmdt.envs.popgym.recipe``, ``rmdt.envs.minigrid.recipe``)
step their environments through these same wrappers, so evaluation reproduces the training
observations exactly: the gymnasium evaluator applies the one named in a config (``env_args: {id:
popgym-RepeatFirstEasy-v0, wrapper: popgym_flat}``), or by default the suite's own
(``default_wrapper``). Each wrapper keeps the original environment reachable as ``env.unwrapped``,
where the recipes' privileged oracles read the hidden state. Dict observations of any environment
are flattened by ``FlattenDictObservation`` in the order the loader recorded.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from rmdt.data.observations import flat_size, flatten, leaf_keys

MINIGRID_VIEW = 7  # MiniGrid's default agent view: 7x7 cells in front of the agent


class FlattenDictObservation(gym.ObservationWrapper):
    """A Dict observation as one float32 vector: its numeric leaves concatenated in ``keys`` order
    (dotted paths, as ``rmdt.data.observations`` records them when loading a dataset; None: the
    space's own order, which is the order the loader uses for data from the same environment)."""

    def __init__(self, env: gym.Env, keys: list[str] | None = None):
        super().__init__(env)
        space = env.observation_space
        self.keys = list(keys) if keys is not None else leaf_keys(space)[0]
        known = set(leaf_keys(space)[0])
        unknown = [k for k in self.keys if k not in known]
        if unknown:
            raise ValueError(f"obs_keys {unknown} are not numeric entries of {env.spec.id if env.spec else env}'s "
                             f"observations (it has: {', '.join(sorted(known))})")
        size = flat_size(space, self.keys)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def observation(self, observation):
        return flatten(observation, self.keys, batch_dims=0)


class PopgymFlat(gym.Wrapper):
    """POPGym with a flat float32 observation and one Discrete action.

    Observations: ``gymnasium.spaces.flatten`` of POPGym's space (Discrete -> one-hot, MultiDiscrete ->
    one-hot per entry, Tuple -> concatenation in order, Box -> flattened), as float32.
    Actions: a MultiDiscrete action (MineSweeper, Battleship: a cell ``(row, column)``) becomes one
    Discrete index, ``numpy.ravel_multi_index`` of the entries (row-major); Discrete stays as it is.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._obs_space = env.observation_space
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (gym.spaces.flatdim(self._obs_space),), np.float32)
        space = env.action_space
        if isinstance(space, gym.spaces.MultiDiscrete):
            self.nvec = tuple(int(n) for n in space.nvec.reshape(-1))
        elif isinstance(space, gym.spaces.Discrete):
            self.nvec = None
        else:
            raise ValueError(f"popgym_flat needs Discrete or MultiDiscrete actions, got {space}")
        self.action_space = gym.spaces.Discrete(int(np.prod(self.nvec)) if self.nvec else int(space.n))

    def flat_action(self, action) -> int:
        """The Discrete index of an action of the wrapped environment."""
        if self.nvec is None:
            return int(action)
        return int(np.ravel_multi_index(tuple(int(a) for a in np.asarray(action).reshape(-1)), self.nvec))

    def native_action(self, index):
        return int(index) if self.nvec is None else np.array(np.unravel_index(int(index), self.nvec), np.int64)

    def _flat(self, obs) -> np.ndarray:
        return gym.spaces.flatten(self._obs_space, obs).astype(np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._flat(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.native_action(action))
        return self._flat(obs), float(reward), terminated, truncated, info


class MinigridSymbolic(gym.ObservationWrapper):
    """MiniGrid's partial view as one flat uint8 vector: ``image`` (7x7x3 object, colour and state
    indices, row-major over (x, y, channel) as MiniGrid stores it: 147 entries), then ``direction``
    (0-3): 148 entries. The mission string is dropped (MiniGrid-Memory's is constant). Integers, so
    no dataset statistics apply; the ``symbolic_grid`` encoder embeds the indices."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        image = env.observation_space["image"]
        if image.shape != (MINIGRID_VIEW, MINIGRID_VIEW, 3):
            raise ValueError(f"minigrid_symbolic needs a {MINIGRID_VIEW}x{MINIGRID_VIEW}x3 view, got {image.shape}")
        self.observation_space = gym.spaces.Box(0, 255, (MINIGRID_VIEW * MINIGRID_VIEW * 3 + 1,), np.uint8)

    def observation(self, observation) -> np.ndarray:
        return np.concatenate([observation["image"].reshape(-1), [observation["direction"]]]).astype(np.uint8)


WRAPPERS = {"popgym_flat": PopgymFlat, "minigrid_symbolic": MinigridSymbolic}


def default_wrapper(env_id: str | None) -> str | None:
    """The wrapper rmdt's datasets of a suite use: ``popgym_flat`` for POPGym ids,
    ``minigrid_symbolic`` for MiniGrid-Memory ids, None for anything else."""
    if env_id and env_id.startswith("popgym-"):
        return "popgym_flat"
    if env_id and env_id.startswith("MiniGrid-Memory"):
        return "minigrid_symbolic"
    return None


def wrap(env: gym.Env, name: str | None) -> gym.Env:
    """``env`` inside the wrapper called ``name`` (None: unchanged); a clear error for unknown names."""
    if name is None:
        return env
    if name not in WRAPPERS:
        raise ValueError(f"unknown environment wrapper {name!r} (known: {', '.join(WRAPPERS)})")
    return WRAPPERS[name](env)


def make(env_id: str, wrapper: str | None, **kwargs) -> gym.Env:
    """``gymnasium.make(env_id)`` inside ``wrapper``, importing the suite package that registers the id."""
    if env_id.startswith("popgym-"):
        _require("popgym", "popgym")
    elif env_id.startswith("MiniGrid-"):
        _require("minigrid", "minigrid")
    return wrap(gym.make(env_id, **kwargs), wrapper)


def _require(module: str, extra: str) -> None:
    """Imports the suite package ``module`` (which registers its ids), never a same-named single file:
    ``python datasets/popgym.py`` puts ``datasets/`` first on ``sys.path``, where popgym.py would stand in
    for the package."""
    path = sys.path[:]
    sys.path[:] = [entry for entry in path if not (Path(entry or ".") / f"{module}.py").is_file()]
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is not installed: pip install -c constraints.txt -e '.[{extra}]'") from error
    finally:
        sys.path[:] = path
