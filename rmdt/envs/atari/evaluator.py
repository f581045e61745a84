"""Atari evaluation: mean game score over many games played at once, with a 95% interval and a plot.

The target return defaults to the DT paper's per game (Chen et al., 2021) and the plot marks the
score RATE reports on the DQN-Replay 1% data, the anchor this project measures against.
"""
from __future__ import annotations

import time

from rmdt.envs.atari.env import AtariEnvs, rom_id
from rmdt.envs.atari.settings import Settings
from rmdt.envs.protocol import settings_unchanged as settings_from_data  # noqa: F401  (the Evaluator protocol)
from rmdt.evaluation import target_suffix
from rmdt.evaluation.rollout import mean_interval, rollout
from rmdt.plotting import episode_returns, pyplot, save_png

TARGET_RETURNS = {"breakout": 90.0, "qbert": 14000.0, "seaquest": 1150.0, "pong": 20.0}  # DT paper
RATE_RETURNS = {"breakout": 111.0, "qbert": 12487.0, "seaquest": 1038.0, "pong": 18.8}  # RATE paper, 1% data


def game_target(game: str) -> float:
    """The DT paper's target return for ``game`` (any spelling ``rom_id`` knows)."""
    rom = rom_id(game)
    if rom not in TARGET_RETURNS:
        raise ValueError(f"no default target return for {rom!r} (known: {', '.join(TARGET_RETURNS)}); "
                         "set evaluation.target_return")
    return TARGET_RETURNS[rom]


def default_target(settings: Settings) -> float:
    """The target return used when ``evaluation.target_return`` is null: the DT paper's for the game."""
    return game_target(settings.game)


def evaluate(policy, evaluation, settings: Settings, target_return: float, device="cpu", progress: bool = True,
             periodic: bool = False) -> list[dict]:
    """Plays ``evaluation.episodes`` games at once to game over (or ``max_steps``); one row for the game.

    Periodic evaluation during training plays the same protocol.
    """
    episodes, max_steps, target = evaluation.episodes, settings.max_steps, float(target_return)
    num_envs = min(episodes, evaluation.num_envs or episodes)
    env = AtariEnvs(settings.game, num_envs, sticky_actions=settings.sticky_actions, max_steps=max_steps)
    trained_actions = getattr(policy.config, "num_actions", None)
    if trained_actions is not None and trained_actions != env.num_actions:
        env.close()
        raise ValueError(f"the policy was trained with {trained_actions} actions but {env.game} has "
                         f"{env.num_actions}: evaluate it in the game its data came from")
    start = time.perf_counter()
    try:
        out = rollout(policy, env, target, evaluation.seed, episodes, device=device,
                      progress=env.game if progress else None, sample_actions=evaluation.sample_actions)
    finally:
        env.close()
    seconds = time.perf_counter() - start
    low, high = mean_interval(out.returns)
    return [{"game": env.game, "target_return": target, "mean_return": float(out.returns.mean()),
             "ci95": [low, high], "std_return": float(out.returns.std()), "returns": out.returns.tolist(),
             "mean_length": float(out.lengths.mean()), "episodes": episodes,
             "sticky_actions": settings.sticky_actions, "max_steps": max_steps,
             "episodes_per_second": episodes / seconds, "env_steps_per_second": out.env_steps / seconds}]


def describe(row: dict) -> str:
    low, high = row["ci95"]
    return (f"{row['game']}  return {row['mean_return']:.1f}  [{low:.1f}, {high:.1f}]  "
            f"target {row['target_return']:g}  "
            f"({row['episodes']} episodes, mean length {row['mean_length']:.0f}, {row['episodes_per_second']:.2f} "
            f"episodes/s, {row['env_steps_per_second']:,.0f} env steps/s)")


def scalars(results: list[dict]) -> dict[str, float]:
    return {f"return_{r['game']}{target_suffix(results, r)}": r["mean_return"] for r in results}


def plot(results: list[dict], path, title: str = "") -> None:
    """Each episode's score, the mean with its 95% interval, and RATE's reported score, per game (PNG)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.6), squeeze=False)
    for ax, row in zip(axes[0], results):
        episode_returns(ax, row)
        if row["game"] in RATE_RETURNS:
            ax.axhline(RATE_RETURNS[row["game"]], color="grey", linestyle=":", label="RATE paper")
        ax.set(xlim=(-0.5, 0.5), xticks=[], ylabel="game score",
               title=f"{row['game']} (target {row['target_return']:g})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
