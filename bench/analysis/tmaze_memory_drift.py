"""Does a trained RMDT (or ELMUR) keep the T-Maze clue in its memory, segment after segment? Where does it lose it?

    python bench/analysis/tmaze_memory_drift.py runs/results/rmdt__0 runs/results/rmdt__3 [--length 3000] \
        [--plot docs/tmaze_memory_drift.png]

Rolls each checkpoint out (greedy, return 1) on ``--episodes`` corridors of one length, all in
lockstep, records every memory it writes at a segment boundary (a recording memory hook) and the
clue each corridor showed at its first step, and prints per boundary the clue separation: the
distance between the mean memories of clue +1 and clue -1 corridors over the mean distance of a
memory to its own clue's mean. A memory that carries the clue keeps it well above 1; once it falls
towards 0 the two clues' memories coincide and the turn is a coin flip. Also prints the success of
that rollout, so a drop in separation can be matched with a failed run. Beside it, how much the memory
written after a corridor's second segment depends on the memory before it (|J_old|) and on that segment's
observations (|J_in|): |J v| / |v| for a random v, over oracle corridors.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


class RecordingHook:
    """A memory hook that keeps a copy of every memory written and changes nothing."""

    def __init__(self) -> None:
        self.memories: list[torch.Tensor] = []

    def __call__(self, memory: torch.Tensor) -> torch.Tensor:
        self.memories.append(memory.detach().flatten(1).clone())
        return memory


class FirstObservation:
    """Wraps a vector env and keeps the observation its first ``reset`` returned (the clue's step)."""

    def __init__(self, env) -> None:
        self.env, self.first = env, None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        if self.first is None:
            self.first = np.array(obs)
        return obs, info

    def __getattr__(self, name):
        return getattr(self.env, name)


def separation(memory: torch.Tensor, clue: np.ndarray) -> float:
    """||mean(m | clue +1) - mean(m | clue -1)|| over the mean distance of a memory to its clue's mean."""
    up, down = memory[torch.as_tensor(clue > 0)], memory[torch.as_tensor(clue < 0)]
    spread = torch.cat([up - up.mean(0), down - down.mean(0)]).norm(dim=1).mean()
    return float((up.mean(0) - down.mean(0)).norm() / spread.clamp_min(1e-8))


def drift(run: str, length: int, episodes: int, seed: int) -> tuple[list[float], float]:
    """The clue separation after each segment boundary of one rollout, and that rollout's success rate."""
    from rmdt.envs.tmaze.env import TMazeVectorEnv
    from rmdt.envs.tmaze.evaluator import length_seed
    from rmdt.evaluation import load_policy
    from rmdt.evaluation.rollout import rollout

    policy = load_policy(run)
    hook, env = RecordingHook(), FirstObservation(TMazeVectorEnv(episodes, length))
    try:
        policy.set_memory_hook(hook)
    except NotImplementedError as error:
        raise SystemExit(f"{run}: {error}") from None
    out = rollout(policy, env, 1.0, length_seed(seed, length))
    if not hook.memories:
        raise SystemExit(f"{run}: the model carries no memory across segments (a DT) to follow")
    clue = env.first[:, 1]
    complete = [m for m in hook.memories if len(m) == episodes]  # the lockstep boundaries
    return [separation(m, clue) for m in complete], float(np.mean(out.returns >= 1.0))


def corridor_window(K: int, episodes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns-to-go, observations and actions of the first 2K steps of ``episodes`` long oracle corridors
    (all steps go right: the junction lies beyond the window)."""
    from rmdt.envs.tmaze.env import TMazeVectorEnv

    env = TMazeVectorEnv(episodes, 2 * K + 2)
    obs, _ = env.reset(seed=seed)
    steps, right = [obs], np.zeros(episodes, np.int64)
    for _ in range(2 * K - 1):
        steps.append(env.step(right)[0])
    observations = torch.as_tensor(np.stack(steps, 1), dtype=torch.float32)
    return torch.ones(episodes, 2 * K), observations, torch.zeros(episodes, 2 * K, dtype=torch.long)


def jacobians(run: str, episodes: int, seed: int) -> tuple[float, float]:
    """|J v| / |v| for random v of the memory written after a corridor's second segment, with respect to the
    memory before it (J_old) and to that segment's observations (J_in), over corridors of the oracle."""
    from rmdt.evaluation import load_policy

    policy = load_policy(run).eval()
    K = policy.config.context_len
    returns, observations, actions = corridor_window(K, episodes, seed)
    first = policy(returns[:, :K], observations[:, :K], actions[:, :K])
    old = first.memory.detach().requires_grad_()
    obs = observations[:, K:].clone().requires_grad_()
    carried = (old, first.slot_time) if hasattr(first, "slot_time") else old  # ELMUR's banks keep their times
    new = policy(returns[:, K:], obs, actions[:, K:], memory=carried).memory
    v = torch.randn(new.shape, generator=torch.Generator().manual_seed(seed))
    g_old, g_in = torch.autograd.grad((new * v).sum(), (old, obs))
    return float(g_old.norm() / v.norm()), float(g_in.norm() / v.norm())


def plot(curves: dict, K: dict, path) -> None:
    """``curves``: run name -> (separations, success); ``K``: run name -> its segment length."""
    from rmdt.plotting import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, (values, success) in curves.items():
        ax.plot(K[name] * np.arange(1, len(values) + 1), values, label=f"{name} (success {success:.2f})")
    ax.set(xlabel="step of the corridor (segment boundary)", ylabel="clue separation", yscale="symlog")
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="T-Maze run directories (or checkpoints) of RMDT models")
    parser.add_argument("--length", type=int, default=3000,
                        help="corridor length (default 3000: 100 boundaries at K=30)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=12345, help="evaluation seed (as evaluate.py's default)")
    parser.add_argument("--every", type=int, default=10, help="print every n-th boundary")
    parser.add_argument("--plot", help="PNG of separation against corridor step per run")
    args = parser.parse_args(argv)
    with torch.no_grad():
        curves = {Path(run).name: drift(run, args.length, args.episodes, args.seed) for run in args.runs}
    gains = {Path(run).name: jacobians(run, args.episodes, args.seed) for run in args.runs}
    boundaries = max(len(v) for v, _ in curves.values())
    shown = sorted({*range(0, boundaries, args.every), boundaries - 1})
    print("| run | \\|J_old\\| | \\|J_in\\| | success | " + " | ".join(f"seg {b + 1}" for b in shown) + " |")
    print("|---|---|---|---|" + "---|" * len(shown))
    for name, (values, success) in curves.items():
        cells = [f"{values[b]:.1f}" if b < len(values) else "" for b in shown]
        print(f"| {name} | {gains[name][0]:.3f} | {gains[name][1]:.3f} | {success:.2f} | " + " | ".join(cells) + " |")
    if args.plot:
        from rmdt.evaluation import load_policy

        plot(curves, {Path(run).name: load_policy(run).config.context_len for run in args.runs}, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
