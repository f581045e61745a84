"""Memory Maze evaluation: total reward per episode with a 95% interval, a plot, and optionally a GIF.

``evaluation.episodes`` mazes (episode k's maze seeded from (seed, k), rmdt.evaluation.rollout), played
as a queue over ``evaluation.num_envs`` mazes, each ``settings.max_steps`` steps. The periodic
evaluation during training uses the same settings.
"""
from __future__ import annotations

import time

import numpy as np

from rmdt.envs.memory_maze.env import MemoryMazeVectorEnv
from rmdt.envs.memory_maze.settings import Settings
from rmdt.envs.protocol import no_default_target as default_target  # noqa: F401  (the Evaluator protocol)
from rmdt.envs.protocol import settings_unchanged as settings_from_data  # noqa: F401
from rmdt.evaluation import target_suffix
from rmdt.evaluation.rollout import mean_interval, rollout
from rmdt.plotting import episode_returns, pyplot, save_png

ENVS_AT_ONCE = 4


class _FirstEpisodeFrames:
    """Passes a vector env through and keeps the frames env 0 shows until its episode ends."""

    def __init__(self, env) -> None:
        self.env, self.num_envs, self.frames = env, env.num_envs, []
        self.metadata, self.frozen_when_done = env.metadata, env.frozen_when_done
        self._done = False

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        if "reset_mask" not in (kwargs.get("options") or {}):  # later restarts of single mazes: not episode 0
            self.frames, self._done = [obs[0].copy()], False
        return obs, info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if not self._done:
            self.frames.append(obs[0].copy())
            self._done = bool(terminated[0] or truncated[0])
        return obs, reward, terminated, truncated, info


def save_gif(frames: list, path, scale: int = 4, fps: int = 8) -> None:
    """Frames (H, W, 3) uint8 as an animated GIF, enlarged ``scale`` times so 64x64 is watchable."""
    from PIL import Image

    from rmdt.atomic import atomic_path

    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)


def evaluate(policy, evaluation, settings: Settings, target_return: float, device="cpu", progress: bool = True,
             periodic: bool = False) -> list[dict]:
    """One row: the total reward of each of ``episodes`` episodes, their mean and its 95% interval.

    Episodes run as a queue over ``num_envs`` mazes (default ``ENVS_AT_ONCE``): each live maze holds
    ~0.9 GB of renderer memory, and stepping is sequential anyway, so more mazes would only save
    policy calls.
    """
    size, steps, episodes = settings.maze_size, settings.max_steps, evaluation.episodes
    env = MemoryMazeVectorEnv(min(episodes, evaluation.num_envs or ENVS_AT_ONCE), size, steps)
    recorder = _FirstEpisodeFrames(env)
    start = time.perf_counter()
    try:
        out = rollout(policy, recorder, target_return, evaluation.seed, episodes, device=device,
                      progress=f"Memory Maze {size}x{size}" if progress else None,
                      sample_actions=evaluation.sample_actions)
    finally:
        env.close()
    seconds = time.perf_counter() - start  # includes building and resetting the mazes
    returns, env_steps = out.returns.tolist(), out.env_steps
    if settings.gif:
        save_gif(recorder.frames, settings.gif)
    low, high = mean_interval(returns)
    return [{"maze_size": size, "max_steps": steps, "mean_return": float(np.mean(returns)),
             "ci95": [low, high], "returns": returns, "episodes": episodes,
             "env_steps_per_second": env_steps / seconds}]


def describe(row: dict) -> str:
    low, high = row["ci95"]
    return (f"Memory Maze {row['maze_size']}x{row['maze_size']} T={row['max_steps']}  "
            f"target {row['target_return']:g}  return {row['mean_return']:.2f}  [{low:.2f}, {high:.2f}]  "
            f"({row['episodes']} episodes, {row['env_steps_per_second']:.1f} env steps/s)")


def scalars(results: list[dict]) -> dict[str, float]:
    return {f"return_{r['maze_size']}x{r['maze_size']}_T{r['max_steps']}{target_suffix(results, r)}": r["mean_return"]
            for r in results}


def plot(results: list[dict], path, title: str = "") -> None:
    """Each episode's total reward (dots) with the mean and its 95% interval, per setting, as a PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(results), 3.6))
    for i, row in enumerate(results):
        episode_returns(ax, row, x=i, seed=i, color="C0")
    ax.set_xticks(range(len(results)), [f"{r['maze_size']}x{r['maze_size']}\nT={r['max_steps']}\n"
                                        f"target {r['target_return']:g}" for r in results])
    ax.set(xlim=(-0.6, len(results) - 0.4), ylabel="total reward per episode", title=title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_png(fig, path)
