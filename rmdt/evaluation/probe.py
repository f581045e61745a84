"""Memory probe: what does the memory carry? Evaluate with it intact, zeroed and shuffled.

The same evaluation (same environments, same seed) runs three times; in the last two every memory
written at a segment boundary is replaced before the next segment reads it, by zeros or by the
memory of another environment of the batch (a fresh derangement at each boundary, so none keeps
its own). Rows run their own episodes (rollout's queue), so a shuffle mixes only the rows that
cross a segment boundary at the same step, which are at the same position of their segments. A model whose decisions depend on what memory carries from earlier segments loses
performance; one with no memory (DT) gets exactly the same results. Goes through the env registry,
so it works in every environment ``evaluate.py`` knows.
"""
from __future__ import annotations

import numpy as np
import torch

from rmdt.plotting import pyplot, save_png

INTERVENTIONS = ("intact", "zeroed", "shuffled")


def zero_memory(memory: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(memory)


class ShuffleMemory:
    """Gives every environment the memory of another one, with a new derangement at each call.

    A call holds the rows that cross a segment boundary together. A row that crosses alone (its
    episode restarted out of step with the others) gets a random one of the memories the previous
    call wrote instead, another row's unless that call held only itself.
    """

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.previous: torch.Tensor | None = None  # the memories the last call received

    def __call__(self, memory: torch.Tensor) -> torch.Tensor:
        n = memory.shape[0]
        if n < 2:
            if self.previous is None:
                raise ValueError("shuffling memory across environments needs at least 2 environments per batch")
            pick = torch.randint(len(self.previous), (1,), generator=self.generator)
            out, self.previous = self.previous[pick.to(memory.device)], memory
            return out
        order = torch.randperm(n, generator=self.generator)
        source = torch.empty_like(order)
        source[order] = order.roll(1)  # order[i] reads order[i - 1]'s memory: nobody reads its own
        self.previous = memory
        return memory[source.to(memory.device)]


def intervention(name: str, seed: int = 0):
    """The memory hook of an intervention (None for ``intact``); ``seed`` fixes the shuffles."""
    if name not in INTERVENTIONS:
        raise ValueError(f"memory intervention {name!r} is unknown (known: {', '.join(INTERVENTIONS)})")
    return {"intact": None, "zeroed": zero_memory, "shuffled": ShuffleMemory(seed)}[name]


def memory_probe(policy, evaluation, overrides: dict | None = None, device="cpu", progress: bool = True,
                 cache: bool = False) -> dict:
    """Evaluates ``policy`` once per intervention; returns the report (rows and scalars per intervention).

    ``evaluation`` and ``overrides`` are as for ``rmdt.evaluation.evaluate_policy``. ``cache``: the
    intervention zeroes or shuffles the hidden-state cache (RMDT ``cache_len``) too, together with
    the memory. Models without segment memory to intervene on (``set_memory_hook`` not
    implemented) raise NotImplementedError.
    """
    from rmdt.evaluation import env_evaluator, evaluate_policy

    by_intervention = {}
    for name in INTERVENTIONS:
        policy.set_memory_hook(intervention(name), cache=True) if cache else policy.set_memory_hook(intervention(name))
        try:
            report = evaluate_policy(policy, evaluation, overrides, device, progress)
        finally:
            policy.set_memory_hook(None)
        by_intervention[name] = {"results": report["results"],
                                 "scalars": env_evaluator(report["env"]).scalars(report["results"])}
    intact = by_intervention["intact"]["scalars"]
    for name in INTERVENTIONS[1:]:
        by_intervention[name]["drop"] = {k: intact[k] - v for k, v in by_intervention[name]["scalars"].items()}
    return {"env": report["env"], "target_return": report["target_return"], "seed": report["seed"],
            "cache": cache, "interventions": by_intervention}


def plot_probe(report: dict, path, title: str = "") -> None:
    """Grouped bars: each evaluated scalar (e.g. success at one corridor length) under each intervention."""
    plt = pyplot()
    names = list(report["interventions"]["intact"]["scalars"])
    x = np.arange(len(names))
    width = 0.8 / len(INTERVENTIONS)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 3.6))
    for i, (intervention_name, color) in enumerate(zip(INTERVENTIONS, ("#1b7837", "#b2182b", "#2166ac"))):
        values = [report["interventions"][intervention_name]["scalars"][n] for n in names]
        bars = ax.bar(x + (i - 1) * width, values, width, label=f"memory {intervention_name}", color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, names, fontsize=8)
    ax.set(ylabel="evaluation scalar", title=title or f"memory probe ({report['env']})")
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(INTERVENTIONS), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
