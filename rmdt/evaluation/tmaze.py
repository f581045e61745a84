"""T-Maze evaluation: success rate per corridor length, with a 95% interval and a plot."""
from __future__ import annotations

import time

import numpy as np

from rmdt.envs.tmaze import TMazeVectorEnv
from rmdt.evaluation.rollout import rollout, wilson_interval
from rmdt.plotting import pyplot, save_png


def evaluate(policy, settings: dict, device="cpu", progress: bool = True, periodic: bool = False) -> list[dict]:
    """One batch of ``episodes`` corridors per length; success means the episode earned reward 1.

    Lengths: ``corridor_lengths``, or ``periodic_lengths`` for the evaluation during training.
    """
    episodes, results = int(settings["episodes"]), []
    for length in settings["periodic_lengths" if periodic else "corridor_lengths"]:
        env = TMazeVectorEnv(episodes, int(length))
        start = time.perf_counter()
        out = rollout(policy, env, settings["target_return"], settings["seed"], device=device,
                      progress=f"T-Maze L={length}" if progress else None,
                      sample_actions=bool(settings.get("sample_actions", False)))
        seconds = time.perf_counter() - start
        successes = int(np.sum(out.returns >= 1.0))
        low, high = wilson_interval(successes, episodes)
        results.append({"corridor_length": int(length), "success_rate": successes / episodes,
                        "ci95": [low, high], "episodes": episodes,
                        "env_steps_per_second": out.env_steps / seconds})
    return results


def describe(row: dict) -> str:
    low, high = row["ci95"]
    return (f"L={row['corridor_length']:>6}  success {row['success_rate']:.2f}  [{low:.2f}, {high:.2f}]  "
            f"({row['episodes']} episodes, {row['env_steps_per_second']:,.0f} env steps/s)")


def scalars(results: list[dict]) -> dict[str, float]:
    return {f"success_L{r['corridor_length']}": r["success_rate"] for r in results}


def plot(results: list[dict], path, title: str = "") -> None:
    """Success rate versus corridor length (log scale) with 95% intervals, as a PNG."""
    plt = pyplot()
    lengths = np.array([r["corridor_length"] for r in results])
    rate = np.array([r["success_rate"] for r in results])
    ci = np.array([r["ci95"] for r in results])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    yerr = np.clip([rate - ci[:, 0], ci[:, 1] - rate], 0, None)  # rounding can make one side -1e-17
    ax.errorbar(lengths, rate, yerr=yerr, marker="o", capsize=3)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel="corridor length", ylabel="success rate", title=title)
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
