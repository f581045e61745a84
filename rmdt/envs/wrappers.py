"""Observation wrappers that show an environment's observations the way the training data stored them."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from rmdt.data.observations import flat_size, flatten, leaf_keys


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
