"""Memory Maze (Pasukonis et al., 2022) as gymnasium environments, without the old ``gym`` package.

The agent sees 64x64 RGB frames (the border shows the colour of the current target) and earns 1
each time it touches the target of that colour; the next colour is then drawn. Actions:
0 noop, 1 forward, 2 turn left, 3 turn right, 4 forward + left, 5 forward + right.

``memory-maze`` 1.0.3 imports ``gym`` when its package is imported and raises without it, so the
tasks module is loaded under an empty package instead (``_tasks``) and the dm_env is wrapped here.
Rendering is headless: ``MUJOCO_GL`` defaults to ``egl`` (mesa's software EGL works on CPU);
``osmesa`` works too if ``libosmesa6`` is installed.

A maze's layout comes from labmaze's own generator, seeded only when the task is built, so a
seeded ``reset`` rebuilds the task (~3 s) and an unseeded one draws the next maze (~2 s). With
``global_observables=True`` the info dict carries the layout, the agent's position and direction
and the targets' positions (grid units, ``maze_layout[y, x] == 1`` is free floor): what the oracle
in ``rmdt.envs.memory_maze.recipe`` plans with. Policies only ever see the image.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import types
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rmdt.envs.memory_maze.settings import NATIVE_STEPS

NOOP, FORWARD, LEFT, RIGHT, FORWARD_LEFT, FORWARD_RIGHT = range(6)
GLOBAL_KEYS = ("maze_layout", "agent_pos", "agent_dir", "target_pos", "targets_pos", "target_color")
IMAGE_SHAPE = (64, 64, 3)


def _tasks() -> types.ModuleType:
    """``memory_maze.tasks`` without running ``memory_maze/__init__.py`` (which needs old ``gym``)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    if "memory_maze" not in sys.modules:
        # Look for the package directory itself: a script named memory_maze.py (such as the dataset
        # recipe, run as a script) would shadow it in importlib.util.find_spec.
        found = [Path(entry or ".") / "memory_maze" for entry in sys.path
                 if (Path(entry or ".") / "memory_maze" / "tasks.py").is_file()]
        if not found:
            raise ImportError("Memory Maze needs the memory-maze extra: "
                              'pip install -c constraints.txt -e ".[memory-maze]"')
        # dm_control logs this on every reset of a maze (the agent is placed, not thrown): noise.
        logging.getLogger("absl").addFilter(lambda record: "Cannot set velocity" not in record.getMessage())
        package = types.ModuleType("memory_maze")
        package.__path__ = [str(found[0])]
        sys.modules["memory_maze"] = package
    return importlib.import_module("memory_maze.tasks")


def env_spec(maze_size: int = 9, max_episode_steps: int | None = None) -> gym.envs.registration.EnvSpec:
    """The spec recorded in datasets: the registered id of the size, with this episode length."""
    steps = max_episode_steps or NATIVE_STEPS[maze_size]
    return gym.envs.registration.EnvSpec(
        id=f"rmdt/MemoryMaze-{maze_size}x{maze_size}-v0", entry_point="rmdt.envs.memory_maze.env:MemoryMazeEnv",
        kwargs={"maze_size": maze_size, "max_episode_steps": steps}, max_episode_steps=steps)


class MemoryMazeEnv(gym.Env):
    """One Memory Maze; episodes end by truncation after ``max_episode_steps`` (never terminate)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    observation_space = gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)
    action_space = gym.spaces.Discrete(6)

    def __init__(self, maze_size: int = 9, max_episode_steps: int | None = None,
                 global_observables: bool = False, render_mode: str | None = None) -> None:
        if maze_size not in NATIVE_STEPS:
            raise ValueError(f"maze_size must be one of {sorted(NATIVE_STEPS)}, got {maze_size}")
        native = NATIVE_STEPS[maze_size]
        steps = native if max_episode_steps is None else int(max_episode_steps)
        if not 1 <= steps <= native:
            raise ValueError(f"max_episode_steps must be in [1, {native}] for {maze_size}x{maze_size}, got {steps}")
        self.maze_size, self.max_episode_steps = maze_size, steps
        self.global_observables, self.render_mode = global_observables, render_mode
        self._dm = None
        self._t = 0
        self._done = True
        self._image = np.zeros(IMAGE_SHAPE, np.uint8)

    def _build(self, seed: int) -> None:
        self.close()
        make = getattr(_tasks(), f"memory_maze_{self.maze_size}x{self.maze_size}")
        self._dm = make(global_observables=True, seed=seed)

    def _info(self, observation) -> dict:
        if not self.global_observables:
            return {}
        return {k: np.array(observation[k]) for k in GLOBAL_KEYS}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None or self._dm is None:
            self._build(int(self.np_random.integers(2**31 - 1)))
        step = self._dm.reset()
        self._t, self._done = 0, False
        self._image = np.array(step.observation["image"])
        return self._image, self._info(step.observation)

    def step(self, action):
        if self._done:
            raise RuntimeError("Memory Maze episode is over: call reset() before step()")
        action = int(action)
        if not 0 <= action < 6:
            raise ValueError(f"Memory Maze actions are 0..5, got {action}")
        step = self._dm.step(action)
        self._t += 1
        self._image = np.array(step.observation["image"])
        terminated = bool(step.last() and step.discount == 0.0)
        truncated = not terminated and (step.last() or self._t >= self.max_episode_steps)
        self._done = terminated or truncated
        return self._image, float(step.reward or 0.0), terminated, truncated, self._info(step.observation)

    def render(self):
        return self._image.copy()

    def close(self) -> None:
        if self._dm is not None:
            self._dm.close()
            self._dm = None


class MemoryMazeVectorEnv(VectorEnv):
    """``num_envs`` mazes stepped one after another (each step costs a render; there is no batching
    to gain in MuJoCo here). No auto-reset: a finished maze keeps its last frame, pays 0 and stays
    done until the next ``reset``. ``reset(seed=s)`` seeds maze i with ``s + i``; a list of seeds
    gives each its own, and ``options={"reset_mask": mask}`` resets only those mazes."""

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}
    frozen_when_done = True  # a finished maze may be stepped: it stays done at no cost (rollout's queue)

    def __init__(self, num_envs: int = 1, maze_size: int = 9, max_episode_steps: int | None = None) -> None:
        self.num_envs = int(num_envs)
        self.envs = [MemoryMazeEnv(maze_size, max_episode_steps) for _ in range(self.num_envs)]
        self.single_observation_space = MemoryMazeEnv.observation_space
        self.single_action_space = MemoryMazeEnv.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.done = np.ones(self.num_envs, bool)
        self._obs = np.zeros((self.num_envs, *IMAGE_SHAPE), np.uint8)

    def reset(self, *, seed=None, options=None):
        rows = np.ones(self.num_envs, bool)
        if options and "reset_mask" in options:
            rows = np.asarray(options["reset_mask"], bool)
        if seed is None or isinstance(seed, int):
            seed = [None if seed is None else seed + i for i in range(self.num_envs)]
        for i in np.flatnonzero(rows):
            self._obs[i], _ = self.envs[i].reset(seed=seed[i])
        self.done[rows] = False
        return self._obs.copy(), {}

    def step(self, actions):
        actions = np.asarray(actions).reshape(self.num_envs)
        reward = np.zeros(self.num_envs, np.float32)
        terminated, truncated = np.zeros(self.num_envs, bool), np.zeros(self.num_envs, bool)
        for i in np.flatnonzero(~self.done):
            self._obs[i], reward[i], terminated[i], truncated[i], _ = self.envs[i].step(actions[i])
        self.done |= terminated | truncated
        return self._obs.copy(), reward, terminated, truncated, {}

    def close_extras(self, **kwargs) -> None:
        for env in self.envs:
            env.close()
