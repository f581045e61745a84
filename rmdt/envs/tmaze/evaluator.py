"""T-Maze evaluation: success rate per corridor length, with a 95% interval and a plot."""
from __future__ import annotations

import time

import numpy as np

from rmdt.envs.protocol import no_default_target as default_target  # noqa: F401  (the Evaluator protocol)
from rmdt.envs.protocol import settings_unchanged as settings_from_data  # noqa: F401
from rmdt.envs.tmaze.env import TMazeVectorEnv
from rmdt.envs.tmaze.settings import Settings
from rmdt.evaluation import by_target, target_suffix
from rmdt.evaluation.rollout import rollout, wilson_interval
from rmdt.plotting import pyplot, save_png


def length_seed(seed: int, length: int) -> int:
    """The environment seed of one corridor length: distinct per length, so every length draws its own
    clues and its row is an independent sample."""
    return int(np.random.SeedSequence([seed, length]).generate_state(1)[0])


def evaluate(policy, evaluation, settings: Settings, target_return: float, device="cpu", progress: bool = True,
             periodic: bool = False) -> list[dict]:
    """One batch of ``evaluation.episodes`` corridors per length; success means the episode earned reward 1.

    Lengths: ``settings.corridor_lengths``, or ``settings.periodic_lengths`` during training.
    """
    episodes, results = evaluation.episodes, []
    for length in settings.periodic_lengths if periodic else settings.corridor_lengths:
        env = TMazeVectorEnv(episodes, length)
        start = time.perf_counter()
        out = rollout(policy, env, target_return, length_seed(evaluation.seed, length), device=device,
                      progress=f"T-Maze L={length}" if progress else None, sample_actions=evaluation.sample_actions)
        seconds = time.perf_counter() - start
        successes = int(np.sum(out.returns >= 1.0))
        low, high = wilson_interval(successes, episodes)
        results.append({"corridor_length": length, "success_rate": successes / episodes,
                        "ci95": [low, high], "episodes": episodes,
                        "env_steps_per_second": out.env_steps / seconds})
    return results


def describe(row: dict) -> str:
    low, high = row["ci95"]
    return (f"L={row['corridor_length']:>6}  target {row['target_return']:g}  success {row['success_rate']:.2f}  "
            f"[{low:.2f}, {high:.2f}]  ({row['episodes']} episodes, {row['env_steps_per_second']:,.0f} env steps/s)")


def scalars(results: list[dict]) -> dict[str, float]:
    return {f"success_L{r['corridor_length']}{target_suffix(results, r)}": r["success_rate"] for r in results}


def plot(results: list[dict], path, title: str = "") -> None:
    """Success rate versus corridor length (log scale) with 95% intervals, one line per target return (PNG)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    groups = by_target(results)
    for i, (target, rows) in enumerate(groups.items()):
        shift = 1.04 ** (i - (len(groups) - 1) / 2)  # side by side on the log axis, so equal rates stay visible
        lengths = np.array([r["corridor_length"] for r in rows]) * shift
        rate = np.array([r["success_rate"] for r in rows])
        ci = np.array([r["ci95"] for r in rows])
        yerr = np.clip([rate - ci[:, 0], ci[:, 1] - rate], 0, None)  # rounding can make one side -1e-17
        ax.errorbar(lengths, rate, yerr=yerr, marker="o", capsize=3,
                    label=f"target {target:g}" if target is not None else None)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel="corridor length", ylabel="success rate", title=title)
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
