"""Atari 2600 games (ale-py, ROMs bundled) as a batch of environments for evaluation and data collection.

``ale_py.vector_env.AtariVectorEnv`` is a gymnasium ``VectorEnv`` that steps many games in C++ and
does the standard Nature-DQN preprocessing itself: up to ``noop_max`` no-op starts, frame skip 4
with a max over the last two frames, 84x84 grayscale, and a stack of the last 4 frames that starts
as [0, 0, 0, frame_0]. Those are frame for frame the observations of gymnasium's
``AtariPreprocessing`` + ``FrameStackObservation(padding_type="zero")`` (tests/test_atari.py checks
it), laid out as DQN-Replay's states (Dopamine preprocesses the same way, without no-op starts).
It runs at about the speed of those wrappers in a SyncVectorEnv (``bench/perf/atari.py``, figures in
docs/performance.md). Seeding a game reloads its ROM, which costs ALE a fraction of a second per game.

As in the DT and RATE evaluations, rewards are raw game scores (not clipped), no FIRE is pressed on
reset and an episode ends at game over, not at a lost life. Sticky actions
(``repeat_action_probability``) are a setting: 0 in DT and RATE, 0.25 in Dopamine, which recorded
DQN-Replay.
"""
from __future__ import annotations

import re

import numpy as np
from gymnasium.vector import VectorEnv

from rmdt.suggest import did_you_mean

FRAME_SKIP = 4
STACK = 4
NOOP_MAX = 30
MAX_STEPS = 27_000  # agent steps per episode: the usual 108k-frame cap at frame skip 4


def rom_id(game: str) -> str:
    """ALE's ROM id for ``Breakout``, ``breakout``, ``MsPacman``, ``ALE/Pong-v5`` or ``QbertNoFrameskip-v4``."""
    from ale_py import roms

    known = roms.get_all_rom_ids()
    match = re.fullmatch(r"(?:ALE/)?(\w+?)(?:NoFrameskip)?(?:-v\d+)?", game)
    base = match.group(1) if match else game
    name = base if base in known else re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()
    if name not in known:
        hint = did_you_mean(name, known, list_known=False)
        raise ValueError(f"unknown Atari game {game!r}: ALE has no ROM {name!r}{hint}")
    return name


def num_actions(game: str) -> int:
    """Size of the game's minimal action set (what DQN-Replay and the envs here use)."""
    import ale_py
    from ale_py import roms

    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.loadROM(roms.get_rom_path(rom_id(game)))
    return len(ale.getMinimalActionSet())


class AtariEnvs(VectorEnv):
    """``num_envs`` games stepped together; observations (num_envs, 4, 84, 84) uint8.

    It does not auto-reset, as ``rmdt.evaluation.rollout`` expects: a finished game stays done, its
    observation stays frozen and it pays nothing until ``reset``. (ALE restarts finished games
    underneath; this class hides that.)
    """

    frozen_when_done = True  # a finished game may be stepped: it stays done (rollout's queue)

    def __init__(self, game: str, num_envs: int, sticky_actions: float = 0.0, max_steps: int = MAX_STEPS,
                 noop_max: int = NOOP_MAX, num_threads: int = 1):
        from ale_py.vector_env import AtariVectorEnv

        if not 0.0 <= sticky_actions <= 1.0:
            raise ValueError(f"sticky_actions must be a probability in [0, 1], got {sticky_actions}")
        if num_envs < 1 or max_steps < 1:
            raise ValueError(f"num_envs and max_steps must be >= 1, got {num_envs} and {max_steps}")
        self.game = rom_id(game)
        self.env = AtariVectorEnv(
            self.game, num_envs, num_threads=num_threads, max_num_frames_per_episode=max_steps * FRAME_SKIP,
            repeat_action_probability=sticky_actions, frameskip=FRAME_SKIP, stack_num=STACK, noop_max=noop_max,
            img_height=84, img_width=84, grayscale=True, maxpool=True, episodic_life=False,
            reward_clipping=False, use_fire_reset=False)
        self.num_envs = num_envs
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space
        self.observation_space, self.action_space = self.env.observation_space, self.env.action_space
        self.num_actions = int(self.single_action_space.n)
        self.done = np.ones(num_envs, bool)
        self.obs = None

    def reset(self, *, seed=None, options: dict | None = None):
        """Restarts every game, or those in ``options["reset_mask"]``; an int seed gives game i the
        seed ``seed + i``, a list of ``num_envs`` seeds (None entries: drawn) one each."""
        rows = np.ones(self.num_envs, bool)
        if options and "reset_mask" in options:
            rows = np.asarray(options["reset_mask"], bool)
        if isinstance(seed, (list, tuple, np.ndarray)):
            drawn = np.random.default_rng().integers(2**31 - 1, size=self.num_envs)
            seed = np.array([drawn[i] if s is None else s for i, s in enumerate(seed)], np.int64)[rows]
        elif isinstance(seed, int):
            seed = np.flatnonzero(rows) + seed
        obs, info = self.env.reset(seed=seed, options=None if rows.all() else {"reset_mask": rows})
        self.done[rows] = False
        if self.obs is not None and not rows.all():
            obs = np.where(rows[:, None, None, None], obs, self.obs)
        self.obs = obs
        return obs, info

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        if np.any((actions < 0) | (actions >= self.num_actions)):
            raise ValueError(f"{self.game} actions must lie in [0, {self.num_actions}), got {np.unique(actions)}")
        obs, reward, terminated, truncated, info = self.env.step(actions)
        was_done = self.done.copy()
        if was_done.any():
            obs = np.where(was_done[:, None, None, None], self.obs, obs)
        reward = np.where(was_done, 0.0, reward).astype(np.float32)
        terminated, truncated = terminated & ~was_done, truncated & ~was_done
        self.done |= terminated | truncated
        self.obs = obs
        return obs, reward, terminated, truncated, info

    def close(self, **kwargs) -> None:
        self.env.close()
