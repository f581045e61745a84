"""Has a trained segment model (RMDT, DT, DT-NK) learned the decision at the end of its episodes?

    python bench/analysis/decision_accuracy.py runs/memory_suites/runs/minigrid_memory_dt_nk__0 [...] \
        [--last 4] [--turns 0 1]

On memory tasks the action that needs the memory comes late (MiniGrid-Memory: the turn towards the
object that matches the cue; T-Maze: the turn at the junction) and is a small share of the steps,
so a run's overall action accuracy hides whether it was learned. This runs each checkpoint on its
own training data, every episode that fits in one window (from its first step, as training sees
it), and prints the accuracy of the greedy action against the data's action in four groups: the
last ``--last`` steps of an episode or the earlier ones, and turns (``--turns``: MiniGrid's left
and right are 0 1, the default; T-Maze's up and down are 1 3) or other actions. A late-turn
accuracy near 0.5 with the others high says the training budget did not learn the cue-to-turn
association, whatever the memory.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def accuracy_groups(run: str, last: int, turns, batch_size: int = 256) -> dict[str, tuple[int, float]]:
    """{group: (steps, accuracy)} of the run's greedy actions on its training episodes."""
    from rmdt.config import load_config
    from rmdt.data import load_config_data
    from rmdt.data.segments import SegmentSampler
    from rmdt.evaluation import checkpoint_policy

    config = load_config(f"{run}/config.yaml")
    if config.model.kind != "rmdt":
        raise SystemExit(f"{run}: model.kind {config.model.kind!r}; this check runs segment models (rmdt, dt)")
    _, policy, _ = checkpoint_policy(run, "cpu")
    trajectories = load_config_data(config.data)
    d = config.data
    sampler = SegmentSampler(trajectories, d.context_len, d.num_segments, "episode", d.discount, d.return_scale)
    starts = trajectories.episode_starts[:-1][trajectories.episode_lengths <= sampler.window_len]
    if not len(starts):
        raise SystemExit(f"{run}: no episode fits in one window of {sampler.window_len} steps")
    hits: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            b = sampler.windows(starts[i:i + batch_size])
            correct = (policy(b.returns_to_go, b.observations, b.actions, b.mask).action_preds.argmax(-1)
                       == b.actions).numpy()
            late = (b.timesteps >= b.mask.sum(1, keepdim=True) - last).numpy()
            turn = np.isin(b.actions.numpy(), turns)
            real = b.mask.numpy()
            for name, where in (("late turns", late & turn), ("late others", late & ~turn),
                                ("early turns", ~late & turn), ("early others", ~late & ~turn)):
                hits.setdefault(name, []).append(correct[where & real])
    return {name: (sum(map(len, parts)), float(np.concatenate(parts).mean()))
            for name, parts in hits.items() if sum(map(len, parts))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (with final/ and config.yaml)")
    parser.add_argument("--last", type=int, default=4, help="steps at an episode's end that count as late")
    parser.add_argument("--turns", type=int, nargs="+", default=[0, 1], help="the actions that count as turns")
    args = parser.parse_args(argv)
    groups = ("late turns", "late others", "early turns", "early others")
    print("| run | " + " | ".join(groups) + " |\n|---|" + "---|" * len(groups))
    for run in args.runs:
        result = accuracy_groups(run.rstrip("/"), args.last, args.turns)
        cells = [f"{result[g][1]:.2f} ({result[g][0]})" if g in result else "-" for g in groups]
        print(f"| {run.rstrip('/').split('/')[-1]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
