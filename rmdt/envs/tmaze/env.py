"""T-Maze, RATE's variant of the passive T-Maze (Ni et al., 2023): a pure test of long memory.

The agent walks a corridor from x=0 to the junction at x=L; x is hidden. Observation
``[y, clue, flag, noise]``: y is 0 in the corridor and +1/-1 after turning up/down; the clue (+1 up,
-1 down: the rewarded side) is shown only at t=0 and is 0 afterwards; flag is 1 exactly when the
agent stands at the junction still in the corridor; noise is uniform on {-1, 0, 1} every step.
Actions: 0 right, 1 up, 2 left, 3 down; moving into a wall does nothing (up/down inside the
corridor, left at x=0, right at the junction). Turning up or down at the junction ends the episode
with reward 1 if the side matches the clue and 0 otherwise; there is no step penalty. The episode
is truncated after L + 2 steps (the oracle needs L + 1). Clues are drawn at random on reset.

``TMazeVectorEnv`` runs many corridors (of one or of different lengths) as numpy arrays in one
object, so evaluating 100 corridors costs about as much as one. It does not auto-reset: a finished
corridor no longer moves, reports zero reward and stays done until it is reset
(``reset(options={"reset_mask": mask})`` resets only some). Reset with one seed per corridor (a
list), each corridor draws its clue and noise from its own generator, so an episode does not
depend on the corridors beside it (what rollouts need); an int or no seed keeps one generator for
the batch (what the dataset recipe was built with).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

RIGHT, UP, LEFT, DOWN = 0, 1, 2, 3
OBS_DIM = 4


def oracle_actions(corridor_length: int, clue: int) -> np.ndarray:
    """The optimal episode: right L times, then turn to the clue's side."""
    return np.array([RIGHT] * corridor_length + [UP if clue > 0 else DOWN], dtype=np.int64)


def _check_lengths(corridor_length, num_envs: int) -> np.ndarray:
    lengths = np.broadcast_to(np.asarray(corridor_length, dtype=np.int64), (num_envs,)).copy()
    if np.any(lengths < 1):
        raise ValueError(f"corridor_length must be >= 1, got {corridor_length}")
    return lengths


class _Corridors:
    """The state of n corridors and their dynamics, shared by the single and the vector env.

    Random draws come from ``rngs`` (one generator per corridor) when set, else from the ``rng``
    passed in (one for all).
    """

    def __init__(self, lengths: np.ndarray) -> None:
        n = len(lengths)
        self.rngs: list[np.random.Generator] | None = None
        self.length = lengths
        self.x = np.zeros(n, np.int64)
        self.y = np.zeros(n, np.int64)
        self.clue = np.ones(n, np.int64)
        self.t = np.zeros(n, np.int64)
        self.done = np.ones(n, bool)

    def reset(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.x[rows] = self.y[rows] = self.t[rows] = 0
        if self.rngs is None:
            self.clue[rows] = rng.choice(np.array([-1, 1]), size=int(rows.sum()))
        else:
            self.clue[rows] = [self.rngs[i].choice(np.array([-1, 1])) for i in np.flatnonzero(rows)]
        self.done[rows] = False
        return self.observe(rng)

    def step(self, actions: np.ndarray, rng: np.random.Generator):
        actions = np.asarray(actions, dtype=np.int64).reshape(self.x.shape)
        if np.any((actions < 0) | (actions > 3)):
            raise ValueError(f"T-Maze actions must be in {{0, 1, 2, 3}}, got {np.unique(actions)}")
        live = ~self.done
        at_junction = self.x == self.length
        self.x += (live & (actions == RIGHT) & ~at_junction).astype(np.int64)
        self.x -= (live & (actions == LEFT) & (self.x > 0)).astype(np.int64)
        turned = live & at_junction & ((actions == UP) | (actions == DOWN))
        self.y[turned] = np.where(actions[turned] == UP, 1, -1)
        reward = (turned & (self.y == self.clue)).astype(np.float32)
        self.t += live
        terminated = turned
        truncated = live & ~turned & (self.t >= self.length + 2)
        self.done |= terminated | truncated
        return self.observe(rng), reward, terminated, truncated

    def observe(self, rng: np.random.Generator) -> np.ndarray:
        obs = np.empty((len(self.x), OBS_DIM), np.float32)
        obs[:, 0] = self.y
        obs[:, 1] = np.where(self.t == 0, self.clue, 0)
        obs[:, 2] = (self.x == self.length) & (self.y == 0)
        if self.rngs is None:
            obs[:, 3] = rng.integers(-1, 2, size=len(self.x))
        else:
            obs[:, 3] = [g.integers(-1, 2) for g in self.rngs]
        return obs


class TMazeEnv(gym.Env):
    """One T-Maze corridor as a gymnasium environment (``gym.make("rmdt/TMaze-v0", corridor_length=L)``)."""

    metadata = {"render_modes": []}
    observation_space = gym.spaces.Box(-1.0, 1.0, (OBS_DIM,), np.float32)
    action_space = gym.spaces.Discrete(4)

    def __init__(self, corridor_length: int = 10) -> None:
        self.corridor_length = int(_check_lengths(corridor_length, 1)[0])
        self._maze = _Corridors(np.array([self.corridor_length]))

    @property
    def clue(self) -> int:
        return int(self._maze.clue[0])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs = self._maze.reset(np.ones(1, bool), self.np_random)
        return obs[0], {"clue": self.clue}

    def step(self, action):
        if self._maze.done[0]:
            raise RuntimeError("T-Maze episode is over: call reset() before step()")
        obs, reward, terminated, truncated = self._maze.step(np.array([action]), self.np_random)
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}


class TMazeVectorEnv(VectorEnv):
    """Many T-Maze corridors stepped together as numpy arrays (no auto-reset; see module doc)."""

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}
    frozen_when_done = True  # a finished corridor may be stepped: it stays done at no cost (rollout's queue)

    def __init__(self, num_envs: int = 1, corridor_length=10) -> None:
        self.num_envs = int(num_envs)
        self.corridor_length = _check_lengths(corridor_length, self.num_envs)
        self.single_observation_space = TMazeEnv.observation_space
        self.single_action_space = TMazeEnv.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._maze = _Corridors(self.corridor_length)

    @property
    def clue(self) -> np.ndarray:
        return self._maze.clue.copy()

    @property
    def done(self) -> np.ndarray:
        return self._maze.done.copy()

    def reset(self, *, seed=None, options=None):
        """Restarts every corridor, or those in ``options["reset_mask"]``; ``seed``: an int (or None)
        seeds the batch's one generator, a list of ``num_envs`` seeds (None entries: drawn) gives
        each restarted corridor its own."""
        rows = np.ones(self.num_envs, bool)
        if options and "reset_mask" in options:
            rows = np.asarray(options["reset_mask"], bool)
        if isinstance(seed, (list, tuple, np.ndarray)):
            if len(seed) != self.num_envs:
                raise ValueError(f"T-Maze reset: {len(seed)} seeds for {self.num_envs} corridors")
            super().reset()
            if self._maze.rngs is None:
                self._maze.rngs = [np.random.default_rng(self.np_random.integers(2**63)) for _ in range(self.num_envs)]
            for i in np.flatnonzero(rows):
                self._maze.rngs[i] = np.random.default_rng(
                    seed[i] if seed[i] is not None else self.np_random.integers(2**63))
        else:
            super().reset(seed=seed)
            self._maze.rngs = None
        return self._maze.reset(rows, self.np_random), {"clue": self.clue}

    def step(self, actions):
        obs, reward, terminated, truncated = self._maze.step(actions, self.np_random)
        return obs, reward, terminated, truncated, {}
